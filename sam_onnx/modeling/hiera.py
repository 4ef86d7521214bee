"""Hiera trunk of SAM 2 / 2.1: 1024x1024 normalised image -> four feature maps, finest first.

A 7x7 stride-4 convolution makes a 256x256 token grid; four stages of pre-norm blocks follow, each
stage doubling width and heads. The first block of stages 2..4 pools its queries 2x2 (max), which
halves the grid, and projects its shortcut to the new width. Blocks attend within square windows
(zero-padded to a multiple of the window) except the global-attention ones. All tokens are kept
channels-last (``B x H x W x C``) inside the trunk; the stage outputs are returned NCHW.

Shapes are static for a given input size and no branch depends on tensor values, so the module
traces to a graph (ONNX) as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .image_encoder import window_partition, window_unpartition

Q_STRIDE = 2  # query pooling stride (both axes) at a stage change, as in every official config
LN_EPS = 1e-6


def pool_tokens(x: torch.Tensor, pool: nn.Module | None) -> torch.Tensor:
    """Apply a 2-D pooling to channels-last tokens: ``B x H x W x C`` -> ``B x H' x W' x C``."""
    if pool is None:
        return x
    return pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class HieraMLP(nn.Module):
    """Two linear layers with GELU between them, named ``layers.0`` / ``layers.1`` as officially."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, hidden_dim), nn.Linear(hidden_dim, dim)])
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[1](self.act(self.layers[0](x)))


class MultiScaleAttention(nn.Module):
    """Self-attention on a ``B x H x W x dim`` grid with output width ``dim_out``.

    With ``q_pool`` the queries (not keys/values) are max-pooled, so the output grid is the
    pooled one: ``B x H/2 x W/2 x dim_out``. Attention is ``softmax(q k^T / sqrt(head_dim)) v``.
    """

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_pool: nn.Module | None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_pool = q_pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        # b x (h*w) x 3 x heads x head_dim; the heads of q stay interleaved in channels for pooling
        q, k, v = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).unbind(2)
        if self.q_pool is not None:
            q = pool_tokens(q.reshape(b, h, w, -1), self.q_pool)
            h, w = q.shape[1], q.shape[2]
            q = q.reshape(b, h * w, self.num_heads, -1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


class MultiScaleBlock(nn.Module):
    """Pre-norm Hiera block on ``B x H x W x dim`` tokens -> ``B x H' x W' x dim_out``.

    ``window_size`` 0 means global attention. With ``q_stride`` (a stage's first block) the
    attention windows are ``window_size`` on the input grid and ``window_size // q_stride`` on the
    pooled output grid, and the shortcut is ``pool(proj(norm1(x)))``.
    """

    def __init__(
        self, dim: int, dim_out: int, num_heads: int, *, mlp_ratio: float, window_size: int, q_stride: int
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        # MaxPool2d has no weights: the same module pools q and the shortcut.
        self.pool = nn.MaxPool2d(kernel_size=q_stride, stride=q_stride) if q_stride > 1 else None
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, self.pool)
        self.norm2 = nn.LayerNorm(dim_out, eps=LN_EPS)
        self.mlp = HieraMLP(dim_out, int(dim_out * mlp_ratio))
        self.proj = nn.Linear(dim, dim_out) if dim != dim_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.proj is not None:
            # The shortcut is taken after norm1 here (unlike a plain residual), as officially.
            shortcut = pool_tokens(self.proj(x), self.pool)
        x = self.attend(x, out_hw=(shortcut.shape[1], shortcut.shape[2]))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))

    def attend(self, x: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
        """Windowed (or global) attention of normed ``B x H x W x C`` tokens -> ``B x out_h x out_w x C'``."""
        if self.window_size == 0:
            return self.attn(x)
        windows, _ = window_partition(x, self.window_size)
        windows = self.attn(windows)
        # Query pooling shrank each window; regroup the windows on the output grid.
        out_window = self.window_size // self.q_stride
        pad_h, pad_w = (-out_hw[0]) % out_window, (-out_hw[1]) % out_window
        return window_unpartition(windows, out_window, (out_hw[0] + pad_h, out_hw[1] + pad_w), out_hw)


class HieraPatchEmbed(nn.Module):
    """7x7 convolution, stride 4, padding 3: ``B x 3 x H x W`` -> channels-last ``B x H/4 x W/4 x C``."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


def block_layout(
    stages: tuple[int, ...], window_spec: tuple[int, ...], global_attn_blocks: tuple[int, ...], q_pool: int
) -> list[tuple[int, int, bool]]:
    """Per trunk block: (stage index, window size, pools queries).

    The window size lags the stage by one block: a stage's first block attends with the previous
    stage's window (on its unpooled input grid), as officially. Global blocks get window 0.
    """
    layout = []
    for stage, depth in enumerate(stages):
        for j in range(depth):
            first = j == 0 and stage > 0
            window = window_spec[stage - 1] if first else window_spec[stage]
            window = 0 if len(layout) in global_attn_blocks else window
            layout.append((stage, window, first and stage <= q_pool))
    return layout


class Hiera(nn.Module):
    """Hiera trunk: ``B x 3 x 1024 x 1024`` normalised image -> stage outputs, NCHW, finest first.

    For embed_dim C the outputs are ``C x 256 x 256``, ``2C x 128 x 128``, ``4C x 64 x 64``,
    ``8C x 32 x 32`` (each after the last block of its stage).
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        num_heads: int,
        stages: tuple[int, ...],
        global_attn_blocks: tuple[int, ...],
        window_spec: tuple[int, ...],
        window_pos_embed_bkg_hw: tuple[int, int],
        q_pool: int,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        self.patch_embed = HieraPatchEmbed(embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *window_pos_embed_bkg_hw))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, window_spec[0], window_spec[0]))
        self.blocks = nn.ModuleList()
        dim, heads = embed_dim, num_heads
        for stage, window, pools in block_layout(stages, window_spec, global_attn_blocks, q_pool):
            dim_out, heads = embed_dim * 2**stage, num_heads * 2**stage
            stride = Q_STRIDE if pools else 1
            block = MultiScaleBlock(
                dim, dim_out, heads, mlp_ratio=mlp_ratio, window_size=window, q_stride=stride
            )
            self.blocks.append(block)
            dim = dim_out
        self.stage_ends = tuple(sum(stages[: i + 1]) - 1 for i in range(len(stages)))

    def position_embedding(self, hw: tuple[int, int]) -> torch.Tensor:
        """``1 x h x w x C``: the background embedding resized bicubically (align_corners=False) to
        the (h, w) grid, plus the window embedding tiled over it."""
        bkg = F.interpolate(self.pos_embed, size=hw, mode="bicubic", align_corners=False)
        window = self.pos_embed_window
        tiled = window.repeat(1, 1, hw[0] // window.shape[2], hw[1] // window.shape[3])
        return (bkg + tiled).permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        x = x + self.position_embedding((x.shape[1], x.shape[2]))
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
