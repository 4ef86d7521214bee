"""Low-res mask logits (256 x 256) to the original image size, in numpy, as the decoder graphs do.

The fast decoder's per-click graph (``decoder_click.onnx``) stops at the low-res logits; the
contract's upscaling is done here for the picked masks only:
  SAM v1: bilinear (``align_corners=False``) x4 to the 1024 frame, crop to the resized image
    (long side 1024), bilinear to (H, W);
  SAM 2: bilinear straight from 256 x 256 to (H, W).
Both are separable: along each axis an output sample is a convex combination of at most 4 (SAM v1)
or 2 (SAM 2) consecutive low-res samples (:func:`axis_taps`), so the resize is a banded matrix per
axis, applied as small dense products of 64 output rows (columns) at a time: about
``H x W x 12`` multiply-adds, in BLAS. The results equal the graphs' up to float32 rounding, so
thresholded masks differ only where a logit is within about 1e-5 of 0.
"""

from __future__ import annotations

import functools

import numpy as np

from sam_onnx.families import family_of
from sam_onnx.preprocess import linear_taps, resized_hw

LOW_RES = 256
FRAME = 1024  # SAM v1's padded input side, 4 x LOW_RES


def axis_taps(orig_size: int, resized_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis, the low-res indexes (``out x K`` int64, ascending) and weights (``out x K``
    float32, summing to 1) of each of ``orig_size`` output samples. ``resized_size``: SAM v1's
    crop in the 1024 frame (K = 4); None for SAM 2's direct resize (K = 2)."""
    if resized_size is None:
        i0, i1, w0, w1 = linear_taps(LOW_RES, orig_size)
        return np.stack([i0, i1], 1), np.stack([w0, w1], 1)
    a0, a1, wa0, wa1 = linear_taps(LOW_RES, FRAME)  # x4 to the 1024 frame, first resized_size used
    b0, b1, wb0, wb1 = linear_taps(resized_size, orig_size)
    index = np.stack([a0[b0], a1[b0], a0[b1], a1[b1]], 1)
    weight = np.stack([wb0 * wa0[b0], wb0 * wa1[b0], wb1 * wa0[b1], wb1 * wa1[b1]], 1)
    return index, weight.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _bands(orig_hw: tuple[int, int], family: str) -> tuple[list, list]:
    """(row bands, column bands) for an image of size ``orig_hw`` (H, W): the resize along each
    axis as :data:`BAND` consecutive output samples at a time, each band ``(start, end, lo, hi,
    weights)`` with ``weights`` ``(end - start) x (hi - lo)`` float32 over low-res samples
    ``lo..hi-1``. Cached: a person clicks many times on one image."""
    if family_of(family).resize == "square":  # straight to (H, W)
        taps = axis_taps(orig_hw[0], None), axis_taps(orig_hw[1], None)
    else:
        h, w = resized_hw(orig_hw)
        taps = axis_taps(orig_hw[0], h), axis_taps(orig_hw[1], w)
    return _axis_bands(*taps[0]), _axis_bands(*taps[1])


BAND = 64  # output samples per band: small products that stay in cache
# Products stay under OpenBLAS's multithreading threshold (m*n*k < 262144): on a busy machine its
# worker threads wait for a time slice, and a 0.2 ms product took 100+ ms.
SINGLE_THREAD_MACS = 200_000


def _axis_bands(index: np.ndarray, weight: np.ndarray) -> list:
    dense = np.zeros((len(index), LOW_RES), np.float32)
    np.add.at(dense, (np.arange(len(index))[:, None], index), weight)
    bands = []
    for start in range(0, len(index), BAND):
        end = min(start + BAND, len(index))
        lo, hi = int(index[start:end].min()), int(index[start:end].max()) + 1
        bands.append((start, end, lo, hi, np.ascontiguousarray(dense[start:end, lo:hi])))
    return bands


def _resized(low_res: np.ndarray, orig_hw: tuple[int, int], family: str, out: np.ndarray, threshold: bool):
    """Fill ``out`` (``M x H x W``, float32 logits or bool masks) from ``low_res`` ``M x 256 x 256``:
    rows first (``H x 256``), then each column band as one small matrix product."""
    rows, cols = _bands(tuple(int(v) for v in orig_hw), family)
    low_res = low_res.astype(np.float32, copy=False)
    for m in range(low_res.shape[0]):
        partial = np.empty((out.shape[1], LOW_RES), np.float32)
        for start, end, lo, hi, weights in rows:
            step = max(8, SINGLE_THREAD_MACS // weights.size)
            for left in range(0, LOW_RES, step):
                right = left + step
                np.matmul(weights, low_res[m, lo:hi, left:right], out=partial[start:end, left:right])
        for start, end, lo, hi, weights in cols:
            step = max(8, SINGLE_THREAD_MACS // weights.size)
            for top in range(0, len(partial), step):
                block = partial[top : top + step, lo:hi] @ weights.T
                out[m, top : top + step, start:end] = block > 0 if threshold else block
    return out


def upscale_logits(low_res: np.ndarray, orig_hw: tuple[int, int], family: str) -> np.ndarray:
    """``M x 256 x 256`` float32 logits -> ``M x H x W`` float32 at ``orig_hw`` (H, W)."""
    out = np.empty((low_res.shape[0], int(orig_hw[0]), int(orig_hw[1])), np.float32)
    return _resized(low_res, orig_hw, family, out, threshold=False)


def upscale_masks(low_res: np.ndarray, orig_hw: tuple[int, int], family: str) -> np.ndarray:
    """``M x 256 x 256`` float32 logits -> ``M x H x W`` bool (logit > 0) at ``orig_hw`` (H, W):
    ``upscale_logits(...) > 0`` without holding the float32 logits."""
    out = np.empty((low_res.shape[0], int(orig_hw[0]), int(orig_hw[1])), bool)
    return _resized(low_res, orig_hw, family, out, threshold=True)
