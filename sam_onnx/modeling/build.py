"""One builder for every variant: the registry's data in, a randomly initialised :class:`Sam` out."""

from __future__ import annotations

from ..variants import EMBED_HW, IMAGE_SIZE, PATCH_SIZE, PROMPT_EMBED_DIM, SamVariant, get_variant
from .image_encoder import ImageEncoderViT
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .sam import Sam
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
    prompt_encoder = PromptEncoder(
        embed_dim=PROMPT_EMBED_DIM,
        image_embedding_hw=(EMBED_HW, EMBED_HW),
        input_image_hw=(IMAGE_SIZE, IMAGE_SIZE),
        mask_in_chans=16,
    )
    transformer = TwoWayTransformer(
        depth=v.decoder_depth,
        embedding_dim=PROMPT_EMBED_DIM,
        num_heads=v.decoder_num_heads,
        mlp_dim=v.decoder_mlp_dim,
    )
    mask_decoder = MaskDecoder(
        transformer_dim=PROMPT_EMBED_DIM,
        transformer=transformer,
        num_multimask_outputs=v.num_multimask_outputs,
        iou_head_depth=v.iou_head_depth,
        iou_head_hidden_dim=v.iou_head_hidden_dim,
    )
    sam = Sam(
        image_encoder=image_encoder, prompt_encoder=prompt_encoder, mask_decoder=mask_decoder, variant=v
    )
    return sam.eval()
