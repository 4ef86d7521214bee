"""Run-length encoding of binary masks, uncompressed and COCO-compressed (numpy only).

Uncompressed RLE, as the official generator writes it: ``{"size": [H, W], "counts": [...]}``,
run lengths of the mask flattened in column-major (Fortran) order, alternating zeros and ones and
starting with a run of zeros (0 when the first pixel is set).

COCO RLE is the same runs packed into a string, as ``pycocotools.mask.frPyObjects`` produces
(``counts`` decoded to ``str``): each run, from the third on minus the run two before it, is
written as little-endian groups of 5 bits, one character ``48 + group`` each, with 0x20 marking
that more groups follow and 0x10 the sign of the last group.
"""

from __future__ import annotations

import numpy as np

from sam_onnx.errors import InvalidInputError


def masks_to_rle(masks: np.ndarray) -> list[dict]:
    """``B x H x W`` bool masks -> B uncompressed RLEs."""
    if masks.ndim != 3:
        raise InvalidInputError("masks", "a B x H x W array", f"shape {masks.shape}")
    b, h, w = masks.shape
    flat = np.ascontiguousarray(masks.transpose(0, 2, 1), dtype=bool).reshape(b, h * w)
    out = []
    for row in flat:
        change = np.flatnonzero(row[1:] != row[:-1]) + 1
        bounds = np.concatenate([[0], change, [h * w]])
        counts = np.diff(bounds).tolist()
        out.append({"size": [h, w], "counts": counts if not row[0] else [0, *counts]})
    return out


def rle_to_mask(rle: dict) -> np.ndarray:
    """Uncompressed RLE -> ``H x W`` bool mask."""
    h, w = (int(v) for v in rle["size"])
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.sum() != h * w or (counts < 0).any():
        raise InvalidInputError(
            "rle", f"non-negative run lengths summing to {h} x {w}", f"sum {counts.sum()}"
        )
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape(w, h).T


def rle_area(rle: dict) -> int:
    """Pixels set in an uncompressed RLE (the sum of its odd runs)."""
    return int(sum(rle["counts"][1::2]))


def coco_encode(rle: dict) -> dict:
    """Uncompressed RLE -> COCO RLE ``{"size": [H, W], "counts": str}``."""
    counts = rle["counts"]
    chars = []
    for i, run in enumerate(counts):
        x = int(run) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            group = x & 0x1F
            x >>= 5  # arithmetic shift: negative values end at -1
            more = x != -1 if group & 0x10 else x != 0
            chars.append(chr(48 + (group | (0x20 if more else 0))))
    return {"size": list(rle["size"]), "counts": "".join(chars)}


def coco_decode(coco: dict) -> dict:
    """COCO RLE (``counts`` as ``str`` or ``bytes``) -> uncompressed RLE."""
    text = coco["counts"]
    data = text.encode() if isinstance(text, str) else bytes(text)
    counts: list[int] = []
    pos = 0
    while pos < len(data):
        x = shift = 0
        more = True
        while more:
            if pos >= len(data):
                raise InvalidInputError("COCO RLE counts", "complete 5-bit groups", "a truncated string")
            group = data[pos] - 48
            x |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            pos += 1
            shift += 5
            if not more and group & 0x10:
                x |= -1 << shift
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return {"size": list(coco["size"]), "counts": counts}
