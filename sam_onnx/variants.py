"""SAM variants as data: one frozen dataclass per model family, one registry per family (torch-free).

Two families live side by side, each a frozen dataclass whose ``family`` names it:

- ``"sam"`` (SAM v1, :class:`SamVariant`): ViT-B, ViT-L and ViT-H differ only in the image
  encoder's width, depth, head count and the blocks that use global attention; everything else
  (1024-pixel input, 16-pixel patches, 14-token windows, 256-channel embeddings, the two-way
  transformer decoder) is shared.
- ``"sam2"`` (SAM 2 / 2.1, :class:`Sam2Variant`): hiera_t / s / b+ / l differ in the Hiera trunk's
  width, heads, blocks per stage, global-attention blocks, window sizes and the background
  position embedding's grid; the neck, prompt encoder and mask decoder are shared.

Tiny variants for fast tests are built by the same builders from the same fields. A SAM v1
checkpoint of any other encoder shape (SlimSAM's pruned widths, fine-tunes) is described by its
:class:`EncoderNumbers` and gets a variant named after them (:func:`variant_from_numbers`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from .errors import InvalidInputError

# Official preprocessing constants (ImageNet mean/std on the 0..255 scale), RGB order.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)

IMAGE_SIZE = 1024  # encoder input side, pixels
PATCH_SIZE = 16  # ViT patch side, pixels
WINDOW_SIZE = 14  # side of the ViT's local attention windows, tokens
EMBED_HW = IMAGE_SIZE // PATCH_SIZE  # 64: side of the image embedding grid
PROMPT_EMBED_DIM = 256  # channels of the image embedding and of every prompt token
LOW_RES_MASK_SIZE = 4 * EMBED_HW  # 256: side of the decoder's low-resolution mask logits


class EncoderNumbers(NamedTuple):
    """The numbers that fix a SAM v1 image encoder's shape, all readable off a checkpoint's tensors.

    Attributes:
      width: token width (output channels of the patch embedding).
      depth: number of ViT blocks.
      heads: attention heads per block (width over the relative-position tables' width).
      mlp: hidden width of every block's MLP.
      global_blocks: ascending indexes of the blocks with global attention (their relative-position
        tables have ``2 * EMBED_HW - 1`` rows).
      window: side, in tokens, of the other blocks' attention windows.
    """

    width: int
    depth: int
    heads: int
    mlp: int
    global_blocks: tuple[int, ...]
    window: int = WINDOW_SIZE


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
      mlp_ratio: ViT MLP hidden width over ``encoder_embed_dim`` (when ``encoder_mlp_dim`` is None).
      encoder_mlp_dim: ViT MLP hidden width when it is not ``mlp_ratio`` times the width (pruned
        models: SlimSAM-77 has width 168 and MLP 696); read it through :attr:`encoder_mlp_width`.
      decoder_depth: two-way transformer layers in the mask decoder.
      decoder_mlp_dim: hidden width of the decoder transformer's MLPs.
      decoder_num_heads: attention heads in the decoder transformer.
      num_multimask_outputs: masks returned in multimask mode (plus one single-mask token).
      iou_head_depth, iou_head_hidden_dim: the IoU prediction MLP.
    """

    family: ClassVar[str] = "sam"
    # SAM 2's mask decoder (box corners as points, object-score head, high-res skips, sigmoid IoU,
    # ``mlp.layers`` tensor names): False here
    sam2_decoder: ClassVar[bool] = False

    name: str
    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    window_size: int = WINDOW_SIZE
    mlp_ratio: float = 4.0
    encoder_mlp_dim: int | None = None
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
    def encoder_mlp_width(self) -> int:
        """Hidden width of every ViT block's MLP."""
        if self.encoder_mlp_dim is not None:
            return self.encoder_mlp_dim
        return int(self.encoder_embed_dim * self.mlp_ratio)

    @property
    def encoder_numbers(self) -> EncoderNumbers:
        """The image encoder's shape: what a checkpoint's tensors determine."""
        return EncoderNumbers(
            self.encoder_embed_dim,
            self.encoder_depth,
            self.encoder_num_heads,
            self.encoder_mlp_width,
            self.encoder_global_attn_indexes,
            self.window_size,
        )

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

# Name of a variant known only by its numbers, e.g. SlimSAM-77: vit_w168_d12_h12_m696_g2-5-8-11.
DERIVED_NAME_FORM = "vit_w<width>_d<depth>_h<heads>_m<mlp>_g<global blocks joined by '-', or none>"
_DERIVED_NAME = re.compile(r"vit_w(\d+)_d(\d+)_h(\d+)_m(\d+)_g(none|\d+(?:-\d+)*)(?:_win(\d+))?")


def derived_name(numbers: EncoderNumbers) -> str:
    """``vit_w{width}_d{depth}_h{heads}_m{mlp}_g{global blocks}``, plus ``_win{window}`` when the
    window is not 14 tokens; :func:`get_variant` reads such names back."""
    n = numbers
    blocks = "-".join(str(i) for i in n.global_blocks) or "none"
    window = "" if n.window == WINDOW_SIZE else f"_win{n.window}"
    return f"vit_w{n.width}_d{n.depth}_h{n.heads}_m{n.mlp}_g{blocks}{window}"


def variant_from_numbers(numbers: EncoderNumbers) -> SamVariant:
    """The registry variant whose encoder has ``numbers`` (so ViT-B stays ``vit_b``), else a new
    variant named by :func:`derived_name`, with the official decoder.

    Raises :class:`InvalidInputError` for numbers no encoder can have.
    """
    numbers = numbers._replace(global_blocks=tuple(numbers.global_blocks))  # a list compares unequal
    _check_numbers(numbers)
    for variant in VARIANTS.values():
        if variant.encoder_numbers == numbers:
            return variant
    n = numbers
    shape = (n.width, n.depth, n.heads, n.global_blocks)
    return SamVariant(derived_name(n), *shape, window_size=n.window, encoder_mlp_dim=n.mlp)


def _check_numbers(n: EncoderNumbers) -> None:
    counts = (n.width, n.depth, n.heads, n.mlp, n.window)
    problem = None
    if any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in counts):
        problem = "width, depth, heads, mlp and window positive integers"
    elif n.width % n.heads:
        problem = f"a width divisible by the head count {n.heads}"
    elif list(n.global_blocks) != sorted(set(n.global_blocks)) or not set(n.global_blocks) <= set(
        range(n.depth)
    ):
        problem = f"global blocks ascending, distinct, each in 0..{n.depth - 1}"
    if problem:
        raise InvalidInputError("image encoder numbers", problem, repr(tuple(n)))


def variant_metadata(variant: SamVariant) -> dict[str, str]:
    """The encoder's numbers as ONNX ``metadata_props`` (string values; global blocks as JSON)."""
    n = variant.encoder_numbers
    return {
        "encoder_embed_dim": str(n.width),
        "encoder_depth": str(n.depth),
        "encoder_num_heads": str(n.heads),
        "encoder_mlp_dim": str(n.mlp),
        "encoder_global_attn_indexes": json.dumps(list(n.global_blocks)),
        "encoder_window_size": str(n.window),
    }


# SAM 2 preprocessing constants: ImageNet mean/std on the 0..1 scale (the image is divided by 255
# first), RGB order; the image is resized to IMAGE_SIZE x IMAGE_SIZE without keeping its aspect.
SAM2_PIXEL_MEAN = (0.485, 0.456, 0.406)
SAM2_PIXEL_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Sam2VideoSpec:
    """Hyper-parameters of SAM 2.1's video modules (the ``memory_attention`` / ``memory_encoder``
    sections and the memory settings of the official ``configs/sam2.1/*.yaml``; the same for every
    official size).

    Attributes:
      memory_attention_layers: :class:`MemoryAttentionLayer` blocks (4 officially).
      memory_attention_heads: heads of the self- and cross-attention (1 officially).
      memory_attention_mlp_dim: hidden width of each block's feed-forward (ReLU).
      rope_theta: base of the axial rotary encoding's frequencies.
      mem_dim: channels of a memory token (the memory encoder's ``out_proj``; 64 officially).
        An object pointer (``PROMPT_EMBED_DIM`` channels) becomes ``PROMPT_EMBED_DIM // mem_dim``
        memory tokens.
      num_maskmem: memory slots: 1 conditioning slot plus ``num_maskmem - 1`` recent frames (7).
      max_obj_ptrs: most object pointers cross-attended (16); also the temporal scale of a
        pointer's position (``min(frames, max_obj_ptrs) - 1``).
      fuser_layers, fuser_kernel: the memory encoder's ConvNeXt blocks and their depthwise kernel.
      mask_downsampler_stride, mask_downsampler_total_stride: the mask down-sampler's convolutions
        (stride 2, kernel 3, padding 1) until the total stride, each followed by LayerNorm + GELU.
      sigmoid_scale, sigmoid_bias: the memory encoder's mask is ``mask * scale + bias`` after the
        sigmoid (or the binarisation on prompted frames): -10 .. +10.
    """

    memory_attention_layers: int = 4
    memory_attention_heads: int = 1
    memory_attention_mlp_dim: int = 2048
    rope_theta: float = 10000.0
    mem_dim: int = 64
    num_maskmem: int = 7
    max_obj_ptrs: int = 16
    fuser_layers: int = 2
    fuser_kernel: int = 7
    mask_downsampler_stride: int = 2
    mask_downsampler_total_stride: int = 16
    sigmoid_scale: float = 20.0
    sigmoid_bias: float = -10.0

    @property
    def tokens_per_pointer(self) -> int:
        """Memory tokens an object pointer is split into (4 officially)."""
        return PROMPT_EMBED_DIM // self.mem_dim


SAM2_VIDEO = Sam2VideoSpec()
# The tiny variant's: one memory-attention block, a narrow feed-forward and one fuser block.
SAM2_VIDEO_TINY = Sam2VideoSpec(memory_attention_layers=1, memory_attention_mlp_dim=256, fuser_layers=1)


@dataclass(frozen=True)
class Sam2Variant:
    """Hyper-parameters of one SAM 2 / 2.1 model (the official ``configs/sam2.1/*.yaml``).

    Attributes:
      name: registry key, e.g. ``"hiera_t"`` (official checkpoint ``sam2.1_hiera_tiny.pt``).
      trunk_embed_dim: Hiera width of stage 1 (doubles at each later stage).
      trunk_num_heads: attention heads of stage 1 (doubles at each later stage).
      stages: Hiera blocks per stage (4 stages).
      global_attn_blocks: trunk blocks (global index) that attend over the whole grid.
      window_spec: window side, in tokens, of the windowed blocks of each stage.
      window_pos_embed_bkg_hw: (h, w) of the background position embedding, interpolated
        (bicubic) to the stage-1 grid, onto which the tiled window embedding is added.
      q_pool: number of stage transitions that pool queries (stride 2x2).
      fpn_top_down_levels: neck levels that receive the top-down (nearest) feature.
      decoder_*: the two-way transformer, as in SAM v1.
      dynamic_multimask_stability_delta / _thresh: the single-mask stability fallback.
      video: the video modules (:class:`Sam2VideoSpec`); the image path does not read it.
    """

    family: ClassVar[str] = "sam2"
    sam2_decoder: ClassVar[bool] = True  # see SamVariant.sam2_decoder

    name: str
    trunk_embed_dim: int
    trunk_num_heads: int
    stages: tuple[int, ...]
    global_attn_blocks: tuple[int, ...]
    window_pos_embed_bkg_hw: tuple[int, int] = (7, 7)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    q_pool: int = 3
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    mlp_ratio: float = 4.0
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    video: Sam2VideoSpec = SAM2_VIDEO

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Channel width of each trunk stage, coarsest last (the neck's inputs, finest first)."""
        return tuple(self.trunk_embed_dim * 2**i for i in range(len(self.stages)))

    @property
    def num_mask_tokens(self) -> int:
        return self.num_multimask_outputs + 1


SAM2_VARIANTS: dict[str, Sam2Variant] = {
    v.name: v
    for v in (
        Sam2Variant("hiera_t", 96, 1, (1, 2, 7, 2), (5, 7, 9)),
        Sam2Variant("hiera_s", 96, 1, (1, 2, 11, 2), (7, 10, 13)),
        Sam2Variant("hiera_b+", 112, 2, (2, 3, 16, 3), (12, 16, 20), window_pos_embed_bkg_hw=(14, 14)),
        Sam2Variant("hiera_l", 144, 2, (2, 6, 36, 4), (23, 33, 43), window_spec=(8, 4, 16, 8)),
        # Tiny variant for tests: same builder, every kind of block, a fraction of the cost.
        Sam2Variant("hiera_tiny", 16, 1, (1, 1, 2, 1), (3,), decoder_mlp_dim=256, video=SAM2_VIDEO_TINY),
    )
}

OFFICIAL_SAM2_VARIANTS = ("hiera_t", "hiera_s", "hiera_b+", "hiera_l")


def get_variant(name: str) -> SamVariant:
    """Look a SAM v1 variant up by registry name or by a :func:`derived_name`; raises
    :class:`InvalidInputError` listing the known names."""
    if name in VARIANTS:
        return VARIANTS[name]
    m = _DERIVED_NAME.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        raise InvalidInputError("model type", f"one of {sorted(VARIANTS)} or {DERIVED_NAME_FORM}", repr(name))
    width, depth, heads, mlp = (int(g) for g in m.groups()[:4])
    blocks = () if m[5] == "none" else tuple(int(i) for i in m[5].split("-"))
    window = int(m[6]) if m[6] else WINDOW_SIZE
    return variant_from_numbers(EncoderNumbers(width, depth, heads, mlp, blocks, window))


def get_sam2_variant(name: str) -> Sam2Variant:
    """Look a SAM 2 variant up by name; raises :class:`InvalidInputError` listing the known names."""
    try:
        return SAM2_VARIANTS[name]
    except KeyError:
        raise InvalidInputError("model type", f"one of {sorted(SAM2_VARIANTS)}", repr(name)) from None
