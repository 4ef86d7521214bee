"""FPN neck and image encoder of SAM 2 / 2.1: Hiera stage outputs -> 256-channel feature maps.

Each trunk stage goes through a 1x1 lateral convolution to ``d_model`` channels; walking from the
coarsest level to the finest, the levels listed in ``top_down_levels`` also receive the previous
(coarser) output upsampled 2x (nearest). The official configs list levels (2, 3): the 64x64 map
is its lateral plus the 32x32 one upsampled, the 128x128 and 256x256 maps are laterals only.
The neck's sine position encodings are used only by the video path and are not computed here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..variants import PROMPT_EMBED_DIM, Sam2Variant
from .hiera import Hiera


class LateralConv(nn.Module):
    """A 1x1 convolution held as ``conv`` (the official ``convs.{i}.conv`` layout)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FpnNeck(nn.Module):
    """Stage outputs (NCHW, finest first) -> ``d_model``-channel maps of the same sizes, finest first.

    ``convs[j]`` is the lateral of level ``n - 1 - j``: ``convs.0`` takes the coarsest stage, as
    officially. Level indices in ``top_down_levels`` count from the finest (0).
    """

    def __init__(
        self, *, stage_dims: tuple[int, ...], d_model: int, top_down_levels: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(LateralConv(dim, d_model) for dim in reversed(stage_dims))
        self.top_down_levels = tuple(top_down_levels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        n = len(self.convs)
        outputs: list[torch.Tensor] = [features[0]] * n  # placeholders, all overwritten below
        previous = None
        for level in range(n - 1, -1, -1):  # coarsest first
            lateral = self.convs[n - 1 - level](features[level])
            if level in self.top_down_levels and previous is not None:
                lateral = lateral + F.interpolate(previous, scale_factor=2.0, mode="nearest")
            outputs[level] = previous = lateral
        return outputs


class Sam2ImageEncoder(nn.Module):
    """Hiera trunk + FPN neck: ``1 x 3 x 1024 x 1024`` normalised image -> the image path's maps.

    Returns, finest first, ``1 x 256 x 256 x 256``, ``1 x 256 x 128 x 128``, ``1 x 256 x 64 x 64``
    (float32): the neck's outputs without the ``scalp`` coarsest ones (official ``scalp: 1`` drops
    the 32x32 map after it has fed the 64x64 one). The mask decoder's ``conv_s0`` / ``conv_s1`` and
    the model's ``no_mem_embed`` are applied by the caller.
    """

    def __init__(self, *, trunk: Hiera, neck: FpnNeck, scalp: int = 1) -> None:
        super().__init__()
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.neck(self.trunk(x))
        return features[: len(features) - self.scalp]


def build_sam2_image_encoder(variant: Sam2Variant) -> Sam2ImageEncoder:
    """The image encoder of a SAM 2 variant, with PyTorch's initial weights (load a checkpoint next).

    Its state dict matches the official checkpoint's ``image_encoder.*`` tensors, prefix removed.
    """
    trunk = Hiera(
        embed_dim=variant.trunk_embed_dim,
        num_heads=variant.trunk_num_heads,
        stages=variant.stages,
        global_attn_blocks=variant.global_attn_blocks,
        window_spec=variant.window_spec,
        window_pos_embed_bkg_hw=variant.window_pos_embed_bkg_hw,
        q_pool=variant.q_pool,
        mlp_ratio=variant.mlp_ratio,
    )
    neck = FpnNeck(
        stage_dims=variant.stage_dims, d_model=PROMPT_EMBED_DIM, top_down_levels=variant.fpn_top_down_levels
    )
    return Sam2ImageEncoder(trunk=trunk, neck=neck)
