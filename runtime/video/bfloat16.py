"""Memory features stored as the official video predictor stores them: rounded to bfloat16.

sam2 1.1.0 keeps every memory as ``maskmem_features.to(torch.bfloat16)`` and uses it in float32
afterwards. Here a memory is kept as the bfloat16 bits in ``uint16`` (half the float32 bytes:
64 x 64 x 64 values are 0.5 MB) and widened when memory attention reads it.
"""

from __future__ import annotations

import numpy as np


def to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> the nearest bfloat16 (ties to even) as ``uint16`` bits. NaN stays a quiet NaN."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    # round to nearest even on the 16 dropped bits: add 0x7FFF plus the kept part's lowest bit
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    nan = np.isnan(x)
    if nan.any():
        rounded = np.where(nan, (bits >> np.uint32(16)) | np.uint32(0x0040), rounded)
    return rounded.astype(np.uint16)


def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    """``uint16`` bfloat16 bits -> float32 (exact)."""
    return (np.asarray(bits, np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)
