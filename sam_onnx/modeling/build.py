"""One builder per family: the registry's data in, a randomly initialised :class:`Sam` (SAM v1) or
:class:`Sam2` (SAM 2) out. Both build their prompt encoder and mask decoder with
:func:`build_prompt_side`; SAM 2's differences are its keyword settings. SAM 2's video model
(:class:`Sam2Video`) adds the memory modules built from the variant's ``video`` record."""

from __future__ import annotations

from ..variants import (
    EMBED_HW,
    IMAGE_SIZE,
    PATCH_SIZE,
    PROMPT_EMBED_DIM,
    Sam2Variant,
    SamVariant,
    get_sam2_variant,
    get_variant,
)
from .fpn_neck import build_sam2_image_encoder
from .image_encoder import ImageEncoderViT
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention, MemoryAttentionLayer, RoPEAttention
from .memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from .prompt_encoder import PromptEncoder
from .sam import Sam
from .sam2 import Sam2
from .sam2_video import Sam2Video
from .transformer import TwoWayTransformer


def build_sam(variant: SamVariant | str) -> Sam:
    """Build an untrained SAM of ``variant`` (a :class:`SamVariant` or a registry name), in eval mode."""
    v = get_variant(variant) if isinstance(variant, str) else variant
    image_encoder = ImageEncoderViT(
        img_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        embed_dim=v.encoder_embed_dim,
        depth=v.encoder_depth,
        num_heads=v.encoder_num_heads,
        mlp_dim=v.encoder_mlp_width,
        out_chans=PROMPT_EMBED_DIM,
        window_size=v.window_size,
        global_attn_indexes=v.encoder_global_attn_indexes,
    )
    prompt_encoder, mask_decoder = build_prompt_side(v)
    sam = Sam(
        image_encoder=image_encoder, prompt_encoder=prompt_encoder, mask_decoder=mask_decoder, variant=v
    )
    return sam.eval()


def build_prompt_side(v: SamVariant | Sam2Variant) -> tuple[PromptEncoder, MaskDecoder]:
    """The prompt encoder and mask decoder of ``v``'s family: SAM v1's, or SAM 2's with its box
    order, object-score head, skip connections, sigmoid IoU and ``mlp.layers`` tensor names."""
    sam2 = v.sam2_decoder
    prompt_encoder = PromptEncoder(
        embed_dim=PROMPT_EMBED_DIM,
        image_embedding_hw=(EMBED_HW, EMBED_HW),
        input_image_hw=(IMAGE_SIZE, IMAGE_SIZE),
        mask_in_chans=16,
        box_as_points=sam2,
    )
    transformer = TwoWayTransformer(
        depth=v.decoder_depth,
        embedding_dim=PROMPT_EMBED_DIM,
        num_heads=v.decoder_num_heads,
        mlp_dim=v.decoder_mlp_dim,
        mlp_layers_list=sam2,
    )
    mask_decoder = MaskDecoder(
        transformer_dim=PROMPT_EMBED_DIM,
        transformer=transformer,
        num_multimask_outputs=v.num_multimask_outputs,
        iou_head_depth=v.iou_head_depth,
        iou_head_hidden_dim=v.iou_head_hidden_dim,
        object_score_head=sam2,
        high_res_skips=sam2,
        iou_sigmoid=sam2,
    )
    return prompt_encoder, mask_decoder


def build_sam2(variant: Sam2Variant | str) -> Sam2:
    """Build an untrained SAM 2 of ``variant`` (a :class:`Sam2Variant` or a registry name such as
    ``"hiera_t"``), in eval mode; its state dict has the official image-path names."""
    v = get_sam2_variant(variant) if isinstance(variant, str) else variant
    image_encoder = build_sam2_image_encoder(v)
    prompt_encoder, mask_decoder = build_prompt_side(v)
    sam2 = Sam2(
        image_encoder=image_encoder, prompt_encoder=prompt_encoder, mask_decoder=mask_decoder, variant=v
    )
    return sam2.eval()


def build_memory_attention(v: Sam2Variant) -> MemoryAttention:
    """The memory attention of ``v.video``: RoPE self-attention over the 64x64 grid and RoPE
    cross-attention to ``mem_dim``-channel memories, in every layer."""
    spec, dim, grid = v.video, PROMPT_EMBED_DIM, (EMBED_HW, EMBED_HW)

    def attention(kv_dim: int | None) -> RoPEAttention:
        return RoPEAttention(
            dim, spec.memory_attention_heads, kv_dim=kv_dim, grid_hw=grid, theta=spec.rope_theta
        )

    layers = [
        MemoryAttentionLayer(
            self_attn=attention(None),
            cross_attn=attention(spec.mem_dim),
            dim=dim,
            mlp_dim=spec.memory_attention_mlp_dim,
        )
        for _ in range(spec.memory_attention_layers)
    ]
    return MemoryAttention(layers=layers, dim=dim, mem_dim=spec.mem_dim, grid_hw=grid)


def build_memory_encoder(v: Sam2Variant) -> MemoryEncoder:
    """The memory encoder of ``v.video``: mask down-sampler, ConvNeXt fuser, ``mem_dim`` output."""
    spec, dim = v.video, PROMPT_EMBED_DIM
    downsampler = MaskDownSampler(
        dim=dim, stride=spec.mask_downsampler_stride, total_stride=spec.mask_downsampler_total_stride
    )
    fuser = Fuser([CXBlock(dim, spec.fuser_kernel) for _ in range(spec.fuser_layers)])
    return MemoryEncoder(mask_downsampler=downsampler, fuser=fuser, dim=dim, mem_dim=spec.mem_dim)


def build_sam2_video(variant: Sam2Variant | str) -> Sam2Video:
    """Build an untrained SAM 2 video model of ``variant``, in eval mode; its state dict has every
    tensor name of the official checkpoint (image path and video modules)."""
    v = get_sam2_variant(variant) if isinstance(variant, str) else variant
    prompt_encoder, mask_decoder = build_prompt_side(v)
    model = Sam2Video(
        image_encoder=build_sam2_image_encoder(v),
        prompt_encoder=prompt_encoder,
        mask_decoder=mask_decoder,
        memory_attention=build_memory_attention(v),
        memory_encoder=build_memory_encoder(v),
        variant=v,
    )
    return model.eval()
