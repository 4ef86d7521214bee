"""Which model family a checkpoint's tensor names belong to: SAM v1 or SAM 2 (a :class:`Family` record).

Read off the names alone, in either layout (official or Hugging Face transformers), before any
renaming, so that each loader can refuse the other family's files by name.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..families import SAM, SAM2, Family

# Names only SAM 2 checkpoints have: official (sam2 package) and transformers' Sam2Model.
_SAM2_MARKERS = (
    "image_encoder.trunk.",
    "sam_prompt_encoder.",
    "sam_mask_decoder.",
    "no_mem_embed",
    "vision_encoder.backbone.",
    "no_memory_embedding",
)
# SAM v1: official (segment-anything) and transformers' SamModel. Checked after SAM 2's, since
# Sam2Model also uses the ``prompt_encoder.`` / ``mask_decoder.`` prefixes.
_SAM_MARKERS = (
    "image_encoder.patch_embed.",
    "image_encoder.blocks.",
    "prompt_encoder.",
    "mask_decoder.",
    "vision_encoder.layers.",
    "vision_encoder.patch_embed.",
)


def family_of_tensors(keys: Iterable[str]) -> Family | None:
    """:data:`~sam_onnx.families.SAM2`, :data:`~sam_onnx.families.SAM`, or None when the names are
    of neither (a state dict's keys, any layout)."""
    names = [k for k in keys if isinstance(k, str)]
    if any(k.startswith(_SAM2_MARKERS) for k in names):
        return SAM2
    if any(k.startswith(_SAM_MARKERS) for k in names):
        return SAM
    return None


def detect_family(keys: Iterable[str]) -> str | None:
    """The family's name (``"sam"``, ``"sam2"``) of :func:`family_of_tensors`, or None."""
    family = family_of_tensors(keys)
    return None if family is None else family.name
