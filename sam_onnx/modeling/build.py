"""One builder per family: the registry's data in, a randomly initialised :class:`Sam` (SAM v1) or
:class:`Sam2` (SAM 2) out. Both build their prompt encoder and mask decoder with
:func:`build_prompt_side`; SAM 2's differences are its keyword settings."""

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
from .prompt_encoder import PromptEncoder
from .sam import Sam
from .sam2 import Sam2
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
