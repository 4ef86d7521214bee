"""SAM 2's memory encoder: a frame's 64x64 features fused with its 1024x1024 mask into one
memory (``B x 64 x 64 x 64``), as the official ``MemoryEncoder`` (sam2 1.1.0) computes it.

The mask (already scaled to about -10..+10 by the caller, see :meth:`.sam2_video.Sam2Video.
encode_memory`) goes through a strided-convolution down-sampler to the feature grid and is added
to the projected features; two ConvNeXt blocks fuse them; a 1x1 convolution compresses to
``mem_dim`` channels. The memory's sine position encoding (official ``vision_pos_enc``) depends on
nothing but the grid: the memory attention holds it as a constant. Attribute names give the
official ``memory_encoder.*`` tensor names.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import LayerNorm2d


class MaskDownSampler(nn.Module):
    """``B x 1 x S x S`` mask -> ``B x dim x S/total x S/total``: convolutions of ``stride``
    (kernel 3, padding 1), each multiplying the channels by ``stride**2`` and followed by a
    channel LayerNorm and GELU, then a 1x1 convolution to ``dim`` (``encoder.{0,1,3,4,...}``)."""

    def __init__(self, *, dim: int, stride: int, total_stride: int) -> None:
        super().__init__()
        num_layers = round(math.log(total_stride, stride))
        if stride**num_layers != total_stride:
            raise ValueError(f"total stride {total_stride} is not a power of the stride {stride}")
        layers: list[nn.Module] = []
        channels = 1
        for _ in range(num_layers):
            out = channels * stride**2
            layers += [nn.Conv2d(channels, out, 3, stride=stride, padding=1), LayerNorm2d(out), nn.GELU()]
            channels = out
        layers.append(nn.Conv2d(channels, dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(mask)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise ``kernel`` convolution, channel LayerNorm, ``dim -> 4 dim -> dim``
    pointwise MLP (GELU) on channels-last pixels, scaled per channel by ``gamma``, plus the input."""

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(y)))
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """The ConvNeXt blocks in sequence (``fuser.layers.{i}``)."""

    def __init__(self, layers: list[CXBlock]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """Frame features + scaled mask -> one memory.

    ``dim`` is the feature channels (256), ``mem_dim`` the memory's (64).
    """

    def __init__(self, *, mask_downsampler: MaskDownSampler, fuser: Fuser, dim: int, mem_dim: int) -> None:
        super().__init__()
        self.mask_downsampler = mask_downsampler
        self.pix_feat_proj = nn.Conv2d(dim, dim, kernel_size=1)
        self.fuser = fuser
        self.out_proj = nn.Conv2d(dim, mem_dim, kernel_size=1)

    def forward(self, image_features: torch.Tensor, mask_for_mem: torch.Tensor) -> torch.Tensor:
        """``image_features`` ``B x dim x H x W`` (the neck's map, no ``no_mem_embed``) and
        ``mask_for_mem`` ``B x 1 x 16H x 16W`` (already sigmoid / binarised and scaled) ->
        ``B x mem_dim x H x W`` float32."""
        x = self.pix_feat_proj(image_features) + self.mask_downsampler(mask_for_mem)
        return self.out_proj(self.fuser(x))
