"""ViT image encoder of SAM: 1024x1024 normalised image -> 256 x 64 x 64 embedding.

Windowed and global self-attention with decomposed relative position biases, then a
convolutional neck down to 256 channels. All shapes are static for a 1024-pixel input, so the
module traces to a graph without value-dependent control flow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d, MLPBlock


def relative_position_index(q_size: int, k_size: int) -> torch.Tensor:
    """Index into a ``(2 * max(q, k) - 1) x C`` table for every (query, key) pair along one axis.

    Returns int64 ``q_size x k_size``; entry (i, j) is the offset ``i - j`` shifted to be >= 0,
    with the coarser axis stretched when the two sizes differ (as officially).
    """
    q_coords = torch.arange(q_size)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size)[None, :] * max(q_size / k_size, 1.0)
    offset = (k_size - 1) * max(q_size / k_size, 1.0)
    return (q_coords - k_coords + offset).long()


def add_decomposed_rel_pos(
    attn: torch.Tensor,
    q: torch.Tensor,
    table_h: torch.Tensor,
    table_w: torch.Tensor,
) -> torch.Tensor:
    """Add separable (height, width) relative-position biases to attention logits.

    Arguments:
      attn: ``B x (q_h*q_w) x (k_h*k_w)`` attention logits.
      q: ``B x (q_h*q_w) x C`` queries (unscaled).
      table_h: ``q_h x k_h x C`` biases gathered for every (query row, key row) pair.
      table_w: ``q_w x k_w x C`` likewise for columns.
    """
    q_h, k_h, _ = table_h.shape
    q_w, k_w, _ = table_w.shape
    b, _, c = q.shape
    r_q = q.reshape(b, q_h, q_w, c)
    bias_h = torch.einsum("bhwc,hkc->bhwk", r_q, table_h)
    bias_w = torch.einsum("bhwc,wkc->bhwk", r_q, table_w)
    attn = attn.view(b, q_h, q_w, k_h, k_w) + bias_h[:, :, :, :, None] + bias_w[:, :, :, None, :]
    return attn.view(b, q_h * q_w, k_h * k_w)


class Attention(nn.Module):
    """Multi-head self-attention over a ``B x S x S x C`` token grid with relative positions.

    ``grid_size`` S is fixed (the window side, or the whole 64-token grid), so the relative
    position indices are constants computed once, not per call from traced shapes.
    """

    def __init__(self, dim: int, num_heads: int, grid_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * grid_size - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * grid_size - 1, head_dim))
        self.register_buffer("rel_index", relative_position_index(grid_size, grid_size), persistent=False)
        # > 1: attend in this many chunks of query rows. Softmax runs along the keys, so each
        # query row is computed alone either way; chunks bound the (B*heads) x queries x keys
        # logits held at once (805 MB per global ViT-B block unchunked). The export sets it.
        self.query_chunks = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x S x S x C`` tokens -> ``B x S x S x C``: ``proj(attend(qkv(x)))``."""
        return self.proj(self.attend(self.qkv(x)))

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """Projected ``B x S x S x 3C`` (q, k, v) -> attended ``B x S x S x C``, before ``proj``."""
        b, h, w, _ = qkv.shape
        # 3 x (B*heads) x (H*W) x head_dim
        qkv = qkv.reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * self.num_heads, h * w, -1).unbind(0)
        table_h, table_w = self.rel_pos_h[self.rel_index], self.rel_pos_w[self.rel_index]
        if self.query_chunks <= 1:
            out = self._attend_rows(q, k, v, table_h, table_w)
        else:
            rows = -(-h // self.query_chunks)
            out = torch.cat(
                [
                    self._attend_rows(q[:, r * w : (r + rows) * w], k, v, table_h[r : r + rows], table_w)
                    for r in range(0, h, rows)
                ],
                dim=1,
            )
        return out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)

    def _attend_rows(self, q, k, v, table_h, table_w) -> torch.Tensor:
        """Queries of whole grid rows (``table_h``: those rows' biases) -> ``(B*heads) x n x head_dim``."""
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = add_decomposed_rel_pos(attn, q, table_h, table_w)
        return attn.softmax(dim=-1) @ v


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Split ``B x H x W x C`` into ``(B*nW) x window x window x C``, zero-padding H and W.

    Returns the windows and the padded (H, W).
    """
    b, h, w, c = x.shape
    pad_h, pad_w = (window - h % window) % window, (window - w % window) % window
    x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c), (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: back to ``B x H x W x C`` without the padding."""
    (hp, wp), (h, w) = padded_hw, hw
    b = windows.shape[0] // (hp * wp // window // window)
    x = windows.view(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w, :].contiguous()


class Block(nn.Module):
    """Pre-norm ViT block; ``window_size`` 0 means global attention over the whole grid.

    ``mlp_dim`` is the MLP's hidden width (4 x ``dim`` officially; pruned models differ).
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, window_size: int, grid_size: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, window_size or grid_size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, mlp_dim, nn.GELU)
        self.window_size = window_size
        # True: qkv and proj on the padded windows, as officially (same values; benchmarks compare).
        self.project_padding = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0 and self.project_padding:
            hw = (x.shape[1], x.shape[2])
            x, padded_hw = window_partition(x, self.window_size)
            x = window_unpartition(self.attn(x), self.window_size, padded_hw, hw)
        elif self.window_size > 0:
            # Officially the zero-padded grid goes through qkv and proj (70 x 70 tokens for a 64 x 64
            # grid and 14 x 14 windows). Projecting the real tokens only and padding with qkv(0),
            # i.e. the bias, gives the same windows with 16 % fewer rows in both products.
            attn = self.attn
            hw = (x.shape[1], x.shape[2])
            qkv, padded_hw = window_partition(F.linear(x, attn.qkv.weight), self.window_size)
            x = attn.attend(qkv + attn.qkv.bias)
            x = attn.proj(window_unpartition(x, self.window_size, padded_hw, hw))
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch x patch`` convolution; output is channels-last ``B x H x W x C``."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class ImageEncoderViT(nn.Module):
    """``B x 3 x img x img`` normalised, padded image -> ``B x out_chans x img/patch x img/patch``."""

    def __init__(
        self,
        *,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_dim: int,
        out_chans: int,
        window_size: int,
        global_attn_indexes: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.img_size = img_size
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_dim, 0 if i in global_attn_indexes else window_size, grid)
            for i in range(depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))
