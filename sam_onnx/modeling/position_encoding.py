"""Fixed position encodings of SAM 2's video path: the 2-D sine grid, the 1-D sine of a pointer's
temporal distance, and the axial rotary encoding (RoPE) of the memory attention, in real arithmetic.

Each is computed with the official operations in the official order in float32, so the tables
equal the official ones bit for bit; none holds weights. The rotary encoding is written on
(even, odd) channel pairs with cos / sin tables instead of complex tensors, which ONNX lacks.
"""

from __future__ import annotations

import math

import torch

SINE_TEMPERATURE = 10000
_NORMALIZE_EPS = 1e-6


def _sine_frequencies(num_feats: int) -> torch.Tensor:
    """``temperature ** (2 * (i // 2) / num_feats)`` for i in 0..num_feats-1, float32."""
    dim_t = torch.arange(num_feats, dtype=torch.float32)
    return SINE_TEMPERATURE ** (2 * (dim_t // 2) / num_feats)


def sine_grid_encoding(channels: int, height: int, width: int) -> torch.Tensor:
    """The official ``PositionEmbeddingSine`` (normalised, scale 2*pi) of an H x W grid.

    Rows and columns count from 1 and are divided by (H + 1e-6) / (W + 1e-6); each axis gets
    ``channels / 2`` features, sin on even and cos on odd features, interleaved; the y features
    come first. Returns ``1 x channels x height x width`` float32 (the neck's 256-channel encoding
    of the 64 x 64 map, the memory encoder's 64-channel one).
    """
    half = channels // 2
    y_embed = torch.arange(1, height + 1, dtype=torch.float32).view(-1, 1).repeat(1, width)
    x_embed = torch.arange(1, width + 1, dtype=torch.float32).view(1, -1).repeat(height, 1)
    y_embed = y_embed / (y_embed[-1:, :] + _NORMALIZE_EPS) * (2 * math.pi)
    x_embed = x_embed / (x_embed[:, -1:] + _NORMALIZE_EPS) * (2 * math.pi)
    dim_t = _sine_frequencies(half)
    pos_x = x_embed[:, :, None] / dim_t
    pos_y = y_embed[:, :, None] / dim_t
    pos_x = torch.stack((pos_x[:, :, 0::2].sin(), pos_x[:, :, 1::2].cos()), dim=3).flatten(2)
    pos_y = torch.stack((pos_y[:, :, 0::2].sin(), pos_y[:, :, 1::2].cos()), dim=3).flatten(2)
    return torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1)[None]


def sine_1d_encoding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """The official ``get_1d_sine_pe``: ``N`` float32 positions -> ``N x dim`` float32,
    ``[sin(p / f), cos(p / f)]`` (sines first, not interleaved) with ``dim / 2`` frequencies."""
    scaled = positions[..., None] / _sine_frequencies(dim // 2)
    return torch.cat([scaled.sin(), scaled.cos()], dim=-1)


def axial_rope_tables(
    head_dim: int, grid_w: int, grid_h: int, theta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the official ``compute_axial_cis`` angles: ``(grid_h * grid_w) x head_dim / 2``
    float32 each, one row per token (row-major: token ``t`` is at x = t % grid_w, y = t // grid_w),
    one column per channel pair; the first ``head_dim / 4`` pairs rotate by x, the rest by y."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 4)[: head_dim // 4].float() / head_dim))
    t = torch.arange(grid_w * grid_h, dtype=torch.float32)
    t_x = t % grid_w
    t_y = torch.div(t, grid_w, rounding_mode="floor")
    angles = torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs ``(x[2i], x[2i+1])`` of ``... x N x D`` tokens by the angles whose
    ``N x D/2`` cos / sin are given: the complex product ``(a + ib)(cos + i sin)``."""
    pairs = x.unflatten(-1, (x.shape[-1] // 2, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
