"""Low-res mask logits (256 x 256) to the original image size, in numpy, as the decoder graphs do.

The fast decoder's per-click graph (``decoder_click.onnx``) stops at the low-res logits; the
contract's upscaling is done here for the picked masks only:
  SAM v1: bilinear (``align_corners=False``) x4 to the 1024 frame, crop to the resized image
    (long side 1024), bilinear to (H, W);
  SAM 2: bilinear straight from 256 x 256 to (H, W).
Both are separable: along each axis an output sample is a convex combination of at most 4 (SAM v1)
or 2 (SAM 2) consecutive low-res samples (:func:`axis_taps`). The results equal the graphs' up to
float32 rounding, so thresholded masks differ only where a logit is within about 1e-5 of 0.

:func:`upscale_masks` returns thresholded masks without computing most logits: a convex
combination of values of one sign has that sign, so only output pixels whose low-res window
holds both signs are computed; the rest repeat the window's sign.
"""

from __future__ import annotations

import functools

import numpy as np

from sam_onnx.preprocess import resized_hw

LOW_RES = 256
FRAME = 1024  # SAM v1's padded input side, 4 x LOW_RES


def _linear(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Taps of a 1-D linear resize ``in_size -> out_size`` (``align_corners=False``): the two
    input indexes (int64) and the weight of the second (float64) per output sample."""
    src = np.maximum((in_size / out_size) * (np.arange(out_size) + 0.5) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src), in_size - 1).astype(np.int64)
    frac = np.clip(src - i0, 0.0, 1.0)
    return i0, np.minimum(i0 + 1, in_size - 1), frac


def axis_taps(orig_size: int, resized_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis, the low-res indexes (``out x K`` int64, ascending) and weights (``out x K``
    float32, summing to 1) of each of ``orig_size`` output samples. ``resized_size``: SAM v1's
    crop in the 1024 frame (K = 4); None for SAM 2's direct resize (K = 2)."""
    if resized_size is None:
        i0, i1, f = _linear(LOW_RES, orig_size)
        return np.stack([i0, i1], 1), np.stack([1 - f, f], 1).astype(np.float32)
    a0, a1, fa = _linear(LOW_RES, FRAME)  # x4 to the 1024 frame, first resized_size used
    b0, b1, fb = _linear(resized_size, orig_size)
    index = np.stack([a0[b0], a1[b0], a0[b1], a1[b1]], 1)
    weight = np.stack([(1 - fb) * (1 - fa[b0]), (1 - fb) * fa[b0], fb * (1 - fa[b1]), fb * fa[b1]], 1)
    return index, weight.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _taps(orig_hw: tuple[int, int], family: str):
    """(row taps, column taps) of :func:`axis_taps` for an image of size ``orig_hw`` (H, W);
    cached, as a person clicks many times on one image (the arrays are not to be written)."""
    if family == "sam2":
        return axis_taps(orig_hw[0], None), axis_taps(orig_hw[1], None)
    h, w = resized_hw(orig_hw)
    return axis_taps(orig_hw[0], h), axis_taps(orig_hw[1], w)


def _rows(low_res: np.ndarray, taps) -> np.ndarray:
    """``M x 256 x 256`` -> ``M x H x 256``: the row pass."""
    index, weight = taps
    out = low_res[:, index[:, 0]] * weight[:, 0, None]
    for k in range(1, index.shape[1]):
        out += low_res[:, index[:, k]] * weight[:, k, None]
    return out


def upscale_logits(low_res: np.ndarray, orig_hw: tuple[int, int], family: str) -> np.ndarray:
    """``M x 256 x 256`` float32 logits -> ``M x H x W`` float32 at ``orig_hw`` (H, W)."""
    rows, (index, weight) = _taps(tuple(orig_hw), family)
    partial = _rows(low_res.astype(np.float32, copy=False), rows)
    out = partial[..., index[:, 0]] * weight[:, 0]
    for k in range(1, index.shape[1]):
        out += partial[..., index[:, k]] * weight[:, k]
    return out


def upscale_masks(low_res: np.ndarray, orig_hw: tuple[int, int], family: str) -> np.ndarray:
    """``M x 256 x 256`` float32 logits -> ``M x H x W`` bool (logit > 0) at ``orig_hw`` (H, W).

    Equal to ``upscale_logits(...) > 0``; computes only pixels whose column window mixes signs.
    """
    rows, (index, weight) = _taps(tuple(orig_hw), family)
    partial = _rows(low_res.astype(np.float32, copy=False), rows)  # M x H x 256
    lo, hi = index[:, 0], index[:, -1]
    starts = np.flatnonzero(np.r_[True, (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])])
    runs = np.diff(np.r_[starts, len(lo)])
    positive = partial > 0
    count = np.concatenate([np.zeros_like(positive[..., :1], np.int32), positive.cumsum(-1, np.int32)], -1)
    width = hi[starts] - lo[starts] + 1
    npos = count[..., hi[starts] + 1] - count[..., lo[starts]]  # M x H x groups
    out = np.repeat(npos > 0, runs, axis=-1)
    m, r, g = np.nonzero((npos > 0) & (npos < width))
    if len(g):  # windows with both signs: compute their columns exactly
        cols = np.repeat(starts[g], runs[g]) + _ramp(runs[g])
        mm, rr = np.repeat(m, runs[g]), np.repeat(r, runs[g])
        values = (partial[mm[:, None], rr[:, None], index[cols]] * weight[cols]).sum(-1)
        out[mm, rr, cols] = values > 0
    return out


def _ramp(lengths: np.ndarray) -> np.ndarray:
    """``0..n-1`` for each n in ``lengths``, concatenated."""
    ends = np.cumsum(lengths)
    return np.arange(ends[-1]) - np.repeat(ends - lengths, lengths)
