"""Load SAM 2 / 2.1 weights for images (:func:`sam_onnx.modeling.load.load_model` loads either family).

Reads official ``.pt`` files (``{"model": state_dict}``, e.g. ``sam2.1_hiera_tiny.pt``) with the
same safe reader as SAM v1 (``torch.load(weights_only=True)``), ``.safetensors`` files and Hugging
Face ``Sam2Model`` / ``Sam2VideoModel`` directories. :func:`load_sam2` loads the image path's
tensors; the video-only ones (memory attention / encoder, object pointers) that real checkpoints
hold are set aside and named in the model's :class:`LoadReport` (``model.load_report``), not
warned about. :func:`load_sam2_video` loads every tensor into a :class:`Sam2Video` and requires
the video ones. The variant is read off the Hiera trunk's tensor shapes. Every failure is a
:class:`~sam_onnx.errors.CheckpointError` naming the path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

import torch

from ..errors import ModelFamilyError, NotSamCheckpointError, VariantMismatchError
from ..families import SAM, SAM2
from ..variants import SAM2_VARIANTS, Sam2Variant, get_sam2_variant
from .build import build_sam2, build_sam2_video
from .checkpoint import check_keys, read_tensors
from .family import family_of_tensors
from .hf_sam2_layout import hf_sam2_to_official, is_hf_sam2_layout
from .sam2 import Sam2
from .sam2_video import Sam2Video

IMAGE_PATH_PREFIXES = ("image_encoder.", "sam_prompt_encoder.", "sam_mask_decoder.", "no_mem_embed")
VIDEO_ONLY_PREFIXES = (
    "memory_attention.",
    "memory_encoder.",
    "mask_downsample.",
    "maskmem_tpos_enc",
    "no_mem_pos_enc",
    "no_obj_ptr",
    "no_obj_embed_spatial",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
)
_TRUNK = "image_encoder.trunk."
_SHOWN = 5


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_sam2` read.

    Attributes:
      path: the checkpoint.
      variant: the detected variant's name (e.g. ``"hiera_t"``).
      layout: ``"official"`` or ``"hf"`` (transformers ``Sam2Model``).
      ignored: names (official layout) of the video-only tensors that were not loaded.
    """

    path: str
    variant: str
    layout: str
    ignored: tuple[str, ...]


def load_sam2(
    path: str | os.PathLike[str], model_type: str | None = None, *, device: str | torch.device = "cpu"
) -> Sam2:
    """Load a SAM 2 / 2.1 checkpoint into a :class:`Sam2` in eval mode.

    Arguments:
      path: an official ``.pt`` file, a ``.safetensors`` file, or a Hugging Face ``Sam2Model``
        directory.
      model_type: ``"hiera_t"``, ``"hiera_s"``, ``"hiera_b+"``, ``"hiera_l"`` (or a test
        variant); ``None`` detects it.
      device: where the model's parameters live.
    The model's ``load_report`` attribute is a :class:`LoadReport`. A SAM v1 checkpoint raises
    :class:`ModelFamilyError`.
    """
    return sam2_from_tensors(read_tensors(path), path, model_type, device=device)


def sam2_from_tensors(
    raw: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    model_type: str | None = None,
    *,
    device: str | torch.device = "cpu",
) -> Sam2:
    """:func:`load_sam2` on tensors already read (:func:`read_tensors`); ``path`` names them in errors."""
    state_dict, layout, ignored = sam2_state_dict(raw, path)
    detected = detect_sam2_variant(state_dict, path)
    if model_type is not None and get_sam2_variant(model_type).name != detected.name:
        raise VariantMismatchError(path, model_type, detected.name)
    model = build_sam2(detected)
    check_keys(state_dict, model.state_dict(), path)
    model.load_state_dict(state_dict, strict=True)
    model.load_report = LoadReport(os.fspath(path), detected.name, layout, ignored)
    return model.to(device)


def sam2_state_dict(
    raw: Mapping[str, torch.Tensor], path: str | os.PathLike[str]
) -> tuple[dict[str, torch.Tensor], str, tuple[str, ...]]:
    """SAM 2 tensors as stored -> (official-layout state dict without the video-only tensors,
    layout ``"official"`` / ``"hf"``, sorted names of the video-only tensors set aside).

    Raises :class:`ModelFamilyError` for SAM v1 tensors, :class:`NotSamCheckpointError` for
    tensors of neither family.
    """
    family = family_of_tensors(raw)
    if family is SAM:
        raise ModelFamilyError(path, SAM2, SAM, "load_sam or load_model")
    if family is None:
        first = sorted(raw)[:_SHOWN]
        raise NotSamCheckpointError(
            path,
            f"not a SAM 2 state dict: no key starts with one of {list(IMAGE_PATH_PREFIXES)}; "
            f"first keys {first}",
        )
    raw, layout = official_sam2_tensors(raw, path)
    ignored = tuple(sorted(k for k in raw if k.startswith(VIDEO_ONLY_PREFIXES)))
    state_dict = {k: v for k, v in raw.items() if not k.startswith(VIDEO_ONLY_PREFIXES)}
    return state_dict, layout, ignored


def official_sam2_tensors(
    raw: Mapping[str, torch.Tensor], path: str | os.PathLike[str]
) -> tuple[dict[str, torch.Tensor], str]:
    """SAM 2 tensors as stored -> (every tensor under its official name, layout ``"official"`` /
    ``"hf"``); the family is not checked here."""
    layout = "hf" if is_hf_sam2_layout(raw) else "official"
    if layout == "official":
        return dict(raw), layout
    try:
        return hf_sam2_to_official(raw), layout
    except ValueError as exc:
        raise NotSamCheckpointError(path, str(exc)) from None


def load_sam2_video(
    path: str | os.PathLike[str], model_type: str | None = None, *, device: str | torch.device = "cpu"
) -> Sam2Video:
    """Load a SAM 2.1 checkpoint with its video tensors into a :class:`Sam2Video` in eval mode.

    Arguments as :func:`load_sam2`. The image path and every video-only tensor must be there
    (an image-only file, e.g. a transformers ``Sam2Model``, raises a
    :class:`~sam_onnx.errors.CheckpointError` naming the missing tensors); ``load_report.ignored``
    is empty.
    """
    raw = read_tensors(path)
    sam2_state_dict(raw, path)  # family checks, with their errors
    state_dict, layout = official_sam2_tensors(raw, path)
    detected = detect_sam2_variant(state_dict, path)
    if model_type is not None and get_sam2_variant(model_type).name != detected.name:
        raise VariantMismatchError(path, model_type, detected.name)
    model = build_sam2_video(detected)
    check_keys(state_dict, model.state_dict(), path)
    model.load_state_dict(state_dict, strict=True)
    model.load_report = LoadReport(os.fspath(path), detected.name, layout, ())
    return model.to(device)


def detect_sam2_variant(
    state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike[str] = "<state dict>"
) -> Sam2Variant:
    """The registry variant whose Hiera trunk has the shapes of ``state_dict`` (official layout).

    Width comes from the patch embedding; blocks per stage from where the ``proj`` tensors are (the
    first block of each later stage projects to the doubled width); the background position
    embedding's grid and the first stage's window from ``pos_embed`` / ``pos_embed_window``. Head
    counts and global-attention blocks change no tensor shape, so they come from the registry
    variant that matches: every official variant differs in the numbers read.
    """
    patch = state_dict.get(f"{_TRUNK}patch_embed.proj.weight")
    pos = state_dict.get(f"{_TRUNK}pos_embed")
    window = state_dict.get(f"{_TRUNK}pos_embed_window")
    if any(t is None or t.ndim != 4 for t in (patch, pos, window)):
        raise NotSamCheckpointError(
            path,
            f"not a SAM 2 image encoder: {_TRUNK}patch_embed.proj.weight, pos_embed and pos_embed_window "
            "must be present as 4-D tensors",
        )
    prefix = f"{_TRUNK}blocks."
    depth = len({k[len(prefix) :].split(".")[0] for k in state_dict if k.startswith(prefix)})
    starts = [i for i in range(depth) if f"{prefix}{i}.proj.weight" in state_dict]
    bounds = [0, *starts, depth]
    stages = tuple(b - a for a, b in pairwise(bounds))
    numbers = (patch.shape[0], stages, tuple(pos.shape[-2:]), window.shape[-1])
    for variant in SAM2_VARIANTS.values():
        known = (
            variant.trunk_embed_dim,
            variant.stages,
            variant.window_pos_embed_bkg_hw,
            variant.window_spec[0],
        )
        if known == numbers:
            return variant
    raise NotSamCheckpointError(
        path,
        f"Hiera trunk of width {numbers[0]}, blocks per stage {list(stages)}, background position grid "
        f"{list(numbers[2])}, first window {numbers[3]} matches no known SAM 2 variant "
        f"({sorted(SAM2_VARIANTS)})",
    )
