"""SAM variants as data: one frozen dataclass per model size, in one registry (torch-free).

ViT-B, ViT-L and ViT-H differ only in the image encoder's width, depth, head count and the
blocks that use global attention; everything else (1024-pixel input, 16-pixel patches,
14-token windows, 256-channel embeddings, the two-way transformer decoder) is shared.
Tiny variants for fast tests are built by the same builder from the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidInputError

# Official preprocessing constants (ImageNet mean/std on the 0..255 scale), RGB order.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)

IMAGE_SIZE = 1024  # encoder input side, pixels
PATCH_SIZE = 16  # ViT patch side, pixels
EMBED_HW = IMAGE_SIZE // PATCH_SIZE  # 64: side of the image embedding grid
PROMPT_EMBED_DIM = 256  # channels of the image embedding and of every prompt token
LOW_RES_MASK_SIZE = 4 * EMBED_HW  # 256: side of the decoder's low-resolution mask logits


@dataclass(frozen=True)
class SamVariant:
    """Hyper-parameters of one SAM model; everything the builder needs.

    Attributes:
      name: registry key, e.g. ``"vit_b"``.
      encoder_embed_dim: ViT token width.
      encoder_depth: number of ViT blocks.
      encoder_num_heads: attention heads per ViT block.
      encoder_global_attn_indexes: blocks that attend over the whole 64x64 grid; the others
        attend within ``window_size`` x ``window_size`` windows.
      window_size: side of the local attention windows, in tokens.
      mlp_ratio: ViT MLP hidden width over ``encoder_embed_dim``.
      decoder_depth: two-way transformer layers in the mask decoder.
      decoder_mlp_dim: hidden width of the decoder transformer's MLPs.
      decoder_num_heads: attention heads in the decoder transformer.
      num_multimask_outputs: masks returned in multimask mode (plus one single-mask token).
      iou_head_depth, iou_head_hidden_dim: the IoU prediction MLP.
    """

    name: str
    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    window_size: int = 14
    mlp_ratio: float = 4.0
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256

    @property
    def head_dim(self) -> int:
        return self.encoder_embed_dim // self.encoder_num_heads

    @property
    def num_mask_tokens(self) -> int:
        return self.num_multimask_outputs + 1


VARIANTS: dict[str, SamVariant] = {
    v.name: v
    for v in (
        SamVariant("vit_b", 768, 12, 12, (2, 5, 8, 11)),
        SamVariant("vit_l", 1024, 24, 16, (5, 11, 17, 23)),
        SamVariant("vit_h", 1280, 32, 16, (7, 15, 23, 31)),
        # Tiny variants for tests: same builder, same graph structure, a fraction of the cost.
        SamVariant("tiny", 64, 2, 2, (1,), decoder_mlp_dim=256),
    )
}

OFFICIAL_VARIANTS = ("vit_b", "vit_l", "vit_h")


def get_variant(name: str) -> SamVariant:
    """Look a variant up by name; raises :class:`InvalidInputError` listing the known names."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise InvalidInputError("model type", f"one of {sorted(VARIANTS)}", repr(name)) from None
