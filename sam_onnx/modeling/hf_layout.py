"""Key names of Hugging Face transformers' ``SamModel`` mapped to the official layout.

The official checkpoint (``sam_vit_b_01ec64.pth``) is the canonical layout of this toolkit;
Hugging Face checkpoints (``facebook/sam-vit-*``: ``model.safetensors`` + ``config.json``) are
renamed into it on load. The names are those of transformers 5.23 (see
``sam_reference/manifests/hf_vit_*.json``); every transformers release since SAM was added
(4.29) writes the same names, and the one tensor it ties, ``prompt_encoder.shared_embedding.
positional_embedding``, is accepted whether or not the file stores it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")

# (HF pattern, official replacement), applied in order, each to the result of the previous.
_RENAMES: tuple[tuple[str, str], ...] = (
    (
        r"^shared_image_embedding\.positional_embedding$",
        "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
    ),
    (r"^vision_encoder\.patch_embed\.projection\.", "vision_encoder.patch_embed.proj."),
    (r"^vision_encoder\.layers\.(\d+)\.layer_norm(\d)\.", r"vision_encoder.layers.\1.norm\2."),
    (r"^vision_encoder\.layers\.", "vision_encoder.blocks."),
    (r"^vision_encoder\.neck\.conv1\.", "vision_encoder.neck.0."),
    (r"^vision_encoder\.neck\.layer_norm1\.", "vision_encoder.neck.1."),
    (r"^vision_encoder\.neck\.conv2\.", "vision_encoder.neck.2."),
    (r"^vision_encoder\.neck\.layer_norm2\.", "vision_encoder.neck.3."),
    (r"^vision_encoder\.", "image_encoder."),
    (r"^prompt_encoder\.mask_embed\.conv1\.", "prompt_encoder.mask_downscaling.0."),
    (r"^prompt_encoder\.mask_embed\.layer_norm1\.", "prompt_encoder.mask_downscaling.1."),
    (r"^prompt_encoder\.mask_embed\.conv2\.", "prompt_encoder.mask_downscaling.3."),
    (r"^prompt_encoder\.mask_embed\.layer_norm2\.", "prompt_encoder.mask_downscaling.4."),
    (r"^prompt_encoder\.mask_embed\.conv3\.", "prompt_encoder.mask_downscaling.6."),
    (r"^prompt_encoder\.point_embed\.", "prompt_encoder.point_embeddings."),
    (
        r"^mask_decoder\.transformer\.layers\.(\d+)\.layer_norm(\d)\.",
        r"mask_decoder.transformer.layers.\1.norm\2.",
    ),
    (r"^mask_decoder\.transformer\.layer_norm_final_attn\.", "mask_decoder.transformer.norm_final_attn."),
    (r"^mask_decoder\.upscale_conv1\.", "mask_decoder.output_upscaling.0."),
    (r"^mask_decoder\.upscale_layer_norm\.", "mask_decoder.output_upscaling.1."),
    (r"^mask_decoder\.upscale_conv2\.", "mask_decoder.output_upscaling.3."),
)
_TIED_DUPLICATE = "prompt_encoder.shared_embedding.positional_embedding"
# HF splits the decoder's MLP heads into proj_in, layers.K (hidden) and proj_out.
_MLP_HEAD = re.compile(
    r"^(mask_decoder\.(?:iou_prediction_head|output_hypernetworks_mlps\.\d+))\.(proj_in|proj_out|layers\.(\d+))\."
)
_HF_MARKERS = ("vision_encoder.", "shared_image_embedding.")


def is_hf_layout(keys: Mapping[str, object] | set[str]) -> bool:
    """True when the state-dict keys are those of transformers' ``SamModel``."""
    return any(k.startswith(_HF_MARKERS) for k in keys)


def _mlp_depths(keys: list[str]) -> dict[str, int]:
    """Number of linear layers of each HF MLP head: proj_in + hidden layers + proj_out."""
    hidden: dict[str, set[str]] = {}
    for key in keys:
        m = _MLP_HEAD.match(key)
        if m:
            hidden.setdefault(m.group(1), set())
            if m.group(3) is not None:
                hidden[m.group(1)].add(m.group(3))
    return {prefix: len(layers) + 2 for prefix, layers in hidden.items()}


def _rename_mlp_head(key: str, depths: dict[str, int]) -> str:
    m = _MLP_HEAD.match(key)
    if not m:
        return key
    prefix, part, hidden_index = m.group(1), m.group(2), m.group(3)
    if part == "proj_in":
        index = 0
    elif part == "proj_out":
        index = depths[prefix] - 1
    else:
        index = int(hidden_index) + 1
    return f"{prefix}.layers.{index}." + key[m.end() :]


def hf_to_official(state_dict: Mapping[str, T]) -> dict[str, T]:
    """Rename a transformers ``SamModel`` state dict to the official layout.

    The tied duplicate of the random-Fourier matrix is used only when the shared one is absent.
    Keys that match no rule pass through unchanged, so the caller's key check reports them.
    """
    keys = list(state_dict)
    depths = _mlp_depths(keys)
    out: dict[str, T] = {}
    for key in keys:
        if key == _TIED_DUPLICATE and "shared_image_embedding.positional_embedding" in state_dict:
            continue
        new = "shared_image_embedding.positional_embedding" if key == _TIED_DUPLICATE else key
        for pattern, replacement in _RENAMES:
            new = re.sub(pattern, replacement, new)
        out[_rename_mlp_head(new, depths)] = state_dict[key]
    return out
