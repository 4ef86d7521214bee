"""Key names of Hugging Face transformers' ``Sam2Model`` mapped to the official SAM 2 layout.

The official checkpoint (``sam2.1_hiera_tiny.pt``) is the canonical layout of this toolkit;
transformers checkpoints (``model.safetensors`` + ``config.json`` with ``model_type: "sam2"`` or
``"sam2_video"``) are renamed into it on load. The image path's names are those of transformers
5.24 (see the kit's ``sam2/manifests/hf_sam2.1_hiera_t.json``); the video modules' those that
transformers' ``convert_sam2_video_to_hf.py`` gives ``Sam2VideoModel`` (loaded there with a strict
key check): ``memory_attention.layers.N.layer_norm1``, ``memory_encoder.memory_fuser``,
``object_pointer_proj``, ``memory_temporal_positional_encoding``, ... (``mask_downsample`` and the
attention projections other than ``o_proj`` keep their names). Beyond names, two tensors differ:

- the four official ``point_embeddings.i.weight`` (``1 x 256`` each) are one
  ``prompt_encoder.point_embed.weight`` (``4 x 256``);
- the official random-Fourier matrix is stored twice, as ``shared_image_embedding.
  positional_embedding`` and ``prompt_encoder.shared_embedding.positional_embedding`` (separate
  buffers); one is kept, and they must be equal.

Each rule below is a pair of name prefixes, transformers' and the official one, with ``{n}``
standing for a number and ``{w}`` for a word; rules are tried in order and the first whose
prefix matches renames the key, in either direction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

import torch

T = TypeVar("T")

_DOWN = "memory_encoder.mask_downsampler."
_HEADS = "{h}"  # a decoder MLP head: output_hypernetworks_mlps.N, iou_prediction_head, pred_obj_score_head
_RULES: tuple[tuple[str, str], ...] = (
    ("no_memory_embedding", "no_mem_embed"),
    (
        "shared_image_embedding.positional_embedding",
        "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
    ),
    ("vision_encoder.backbone.patch_embed.projection.", "image_encoder.trunk.patch_embed.proj."),
    ("vision_encoder.backbone.blocks.{n}.layer_norm{n}.", "image_encoder.trunk.blocks.{n}.norm{n}."),
    ("vision_encoder.backbone.blocks.{n}.mlp.proj_in.", "image_encoder.trunk.blocks.{n}.mlp.layers.0."),
    ("vision_encoder.backbone.blocks.{n}.mlp.proj_out.", "image_encoder.trunk.blocks.{n}.mlp.layers.1."),
    ("vision_encoder.backbone.", "image_encoder.trunk."),
    ("vision_encoder.neck.convs.{n}.", "image_encoder.neck.convs.{n}.conv."),
    ("prompt_encoder.mask_embed.conv1.", "sam_prompt_encoder.mask_downscaling.0."),
    ("prompt_encoder.mask_embed.layer_norm1.", "sam_prompt_encoder.mask_downscaling.1."),
    ("prompt_encoder.mask_embed.conv2.", "sam_prompt_encoder.mask_downscaling.3."),
    ("prompt_encoder.mask_embed.layer_norm2.", "sam_prompt_encoder.mask_downscaling.4."),
    ("prompt_encoder.mask_embed.conv3.", "sam_prompt_encoder.mask_downscaling.6."),
    ("prompt_encoder.", "sam_prompt_encoder."),
    (
        "mask_decoder.transformer.layers.{n}.layer_norm{n}.",
        "sam_mask_decoder.transformer.layers.{n}.norm{n}.",
    ),
    (
        "mask_decoder.transformer.layers.{n}.{w}.o_proj.",
        "sam_mask_decoder.transformer.layers.{n}.{w}.out_proj.",
    ),
    (
        "mask_decoder.transformer.layers.{n}.mlp.proj_in.",
        "sam_mask_decoder.transformer.layers.{n}.mlp.layers.0.",
    ),
    (
        "mask_decoder.transformer.layers.{n}.mlp.proj_out.",
        "sam_mask_decoder.transformer.layers.{n}.mlp.layers.1.",
    ),
    (
        "mask_decoder.transformer.final_attn_token_to_image.o_proj.",
        "sam_mask_decoder.transformer.final_attn_token_to_image.out_proj.",
    ),
    ("mask_decoder.transformer.layer_norm_final_attn.", "sam_mask_decoder.transformer.norm_final_attn."),
    ("mask_decoder.transformer.", "sam_mask_decoder.transformer."),
    ("mask_decoder.upscale_conv1.", "sam_mask_decoder.output_upscaling.0."),
    ("mask_decoder.upscale_layer_norm.", "sam_mask_decoder.output_upscaling.1."),
    ("mask_decoder.upscale_conv2.", "sam_mask_decoder.output_upscaling.3."),
    # The decoder's 3-layer MLP heads: transformers names them proj_in, layers.0, proj_out.
    (f"mask_decoder.{_HEADS}.proj_in.", f"sam_mask_decoder.{_HEADS}.layers.0."),
    (f"mask_decoder.{_HEADS}.layers.0.", f"sam_mask_decoder.{_HEADS}.layers.1."),
    (f"mask_decoder.{_HEADS}.proj_out.", f"sam_mask_decoder.{_HEADS}.layers.2."),
    ("mask_decoder.", "sam_mask_decoder."),
    # The video modules (transformers' Sam2VideoModel, named by its conversion script).
    ("memory_temporal_positional_encoding", "maskmem_tpos_enc"),
    ("no_memory_positional_encoding", "no_mem_pos_enc"),
    ("no_object_pointer", "no_obj_ptr"),
    ("occlusion_spatial_embedding_parameter", "no_obj_embed_spatial"),
    ("temporal_positional_encoding_projection_layer.", "obj_ptr_tpos_proj."),
    ("object_pointer_proj.proj_in.", "obj_ptr_proj.layers.0."),
    ("object_pointer_proj.layers.0.", "obj_ptr_proj.layers.1."),
    ("object_pointer_proj.proj_out.", "obj_ptr_proj.layers.2."),
    ("memory_attention.layers.{n}.layer_norm{n}.", "memory_attention.layers.{n}.norm{n}."),
    ("memory_attention.layers.{n}.{w}.o_proj.", "memory_attention.layers.{n}.{w}.out_proj."),
    ("memory_attention.layer_norm.", "memory_attention.norm."),
    # The mask down-sampler's Sequential (conv, norm, GELU) x 4, then a 1x1 conv: official indices.
    *(
        pair
        for i in range(4)
        for pair in (
            (f"{_DOWN}layers.{i}.conv.", f"{_DOWN}encoder.{3 * i}."),
            (f"{_DOWN}layers.{i}.layer_norm.", f"{_DOWN}encoder.{3 * i + 1}."),
        )
    ),
    (f"{_DOWN}final_conv.", f"{_DOWN}encoder.12."),
    ("memory_encoder.feature_projection.", "memory_encoder.pix_feat_proj."),
    ("memory_encoder.memory_fuser.layers.{n}.depthwise_conv.", "memory_encoder.fuser.layers.{n}.dwconv."),
    ("memory_encoder.memory_fuser.layers.{n}.layer_norm.", "memory_encoder.fuser.layers.{n}.norm."),
    (
        "memory_encoder.memory_fuser.layers.{n}.pointwise_conv{n}.",
        "memory_encoder.fuser.layers.{n}.pwconv{n}.",
    ),
    ("memory_encoder.memory_fuser.layers.{n}.scale", "memory_encoder.fuser.layers.{n}.gamma"),
    ("memory_encoder.projection.", "memory_encoder.out_proj."),
)
_PLACEHOLDERS = {
    "{n}": r"(\d+)",
    "{w}": r"([a-z_]+)",
    _HEADS: r"(output_hypernetworks_mlps\.\d+|iou_prediction_head|pred_obj_score_head)",
}
HF_POINT_EMBED = "prompt_encoder.point_embed.weight"
HF_FOURIER_DUPLICATE = "prompt_encoder.shared_embedding.positional_embedding"
_FOURIER = "shared_image_embedding.positional_embedding"
_POINT_EMBEDDING = "sam_prompt_encoder.point_embeddings.{}.weight"
_HF_MARKERS = ("vision_encoder.backbone.", "no_memory_embedding")


def _compile(template: str) -> tuple[re.Pattern[str], str]:
    """A rule side -> (regex matching it as a key prefix, format string with one slot per group)."""
    pattern = re.escape(template)
    fmt = template
    for placeholder, group in _PLACEHOLDERS.items():
        pattern = pattern.replace(re.escape(placeholder), group)
        fmt = fmt.replace(placeholder, "{}")
    return re.compile(pattern), fmt


_FORWARD = [(_compile(hf)[0], _compile(official)[1]) for hf, official in _RULES]
_BACKWARD = [(_compile(official)[0], _compile(hf)[1]) for hf, official in _RULES]


def _rename(key: str, rules: list[tuple[re.Pattern[str], str]]) -> str:
    for pattern, fmt in rules:
        m = pattern.match(key)
        if m:
            return fmt.format(*m.groups()) + key[m.end() :]
    return key


def is_hf_sam2_layout(keys: Mapping[str, object] | set[str]) -> bool:
    """True when the state-dict keys are those of transformers' ``Sam2Model``."""
    return any(k.startswith(_HF_MARKERS) for k in keys)


def hf_sam2_to_official(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a transformers ``Sam2Model`` state dict to the official SAM 2 layout.

    ``point_embed`` (``4 x 256``) becomes ``point_embeddings.0..3`` (``1 x 256`` each). The
    duplicate Fourier matrix is dropped; raises ``ValueError`` naming both when the two copies
    differ (the caller turns it into a checkpoint error). Keys that match no rule pass through,
    so the caller's key check reports them.
    """
    duplicate = state_dict.get(HF_FOURIER_DUPLICATE)
    kept = state_dict.get(_FOURIER)
    if duplicate is not None and kept is not None and not torch.equal(duplicate, kept):
        raise ValueError(
            f"{_FOURIER} and {HF_FOURIER_DUPLICATE} hold different values (one matrix officially)"
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key == HF_FOURIER_DUPLICATE and kept is not None:
            continue
        if key == HF_FOURIER_DUPLICATE:
            key = _FOURIER
        if key == HF_POINT_EMBED and value.ndim == 2:
            out.update({_POINT_EMBEDDING.format(i): row[None] for i, row in enumerate(value)})
            continue
        out[_rename(key, _FORWARD)] = value
    return out


def official_to_hf_sam2(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`hf_sam2_to_official` on the image path's tensors: the layout
    ``Sam2Model.state_dict()`` has (both copies of the Fourier matrix, one ``point_embed``)."""
    out: dict[str, torch.Tensor] = {}
    points = [state_dict.get(_POINT_EMBEDDING.format(i)) for i in range(4)]
    for key, value in state_dict.items():
        if key.startswith("sam_prompt_encoder.point_embeddings."):
            continue
        out[_rename(key, _BACKWARD)] = value
    if all(p is not None for p in points):
        out[HF_POINT_EMBED] = torch.cat(points, dim=0)
    if _FOURIER in out:
        out[HF_FOURIER_DUPLICATE] = out[_FOURIER].clone()
    return out
