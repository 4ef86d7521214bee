"""Load SAM weights: official ``.pth`` files and Hugging Face ``SamModel`` directories.

The variant is detected from tensor shapes; naming it is optional and only checked. ``.pth``
files are read with ``torch.load(weights_only=True)``, which refuses any pickle that would import
or call something other than tensors and plain containers; there is no fallback to full
unpickling. Every failure is a :class:`~sam_onnx.errors.CheckpointError` naming the path.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    InvalidInputError,
    MissingWeightsError,
    ModelFamilyError,
    NotSamCheckpointError,
    UnreadableCheckpointError,
    UnsafeCheckpointError,
    VariantMismatchError,
)
from ..families import SAM, SAM2
from ..variants import (
    EMBED_HW,
    WINDOW_SIZE,
    EncoderNumbers,
    SamVariant,
    get_variant,
    variant_from_numbers,
)
from .build import build_sam
from .family import family_of_tensors
from .hf_layout import hf_to_official, is_hf_layout
from .sam import Sam

HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
# transformers' SamModel, Sam2Model and Sam2VideoModel; which family a directory holds, its tensor
# names say.
_HF_MODEL_TYPES = ("sam", "sam2", "sam2_video")
_NESTED_KEYS = ("model", "state_dict")  # training checkpoints often wrap the state dict
_PARALLEL_PREFIX = "module."  # what torch's (Distributed)DataParallel puts before every key
_PIXEL_STATS = ("pixel_mean", "pixel_std")
_SHOWN = 5  # how many offending keys an error message lists
# What torch's weights-only unpickler says when a pickle asks for a global or an object it does
# not allow (as opposed to bytes it cannot parse at all).
_REFUSED_OBJECT = re.compile(r"GLOBAL|Can only (?:create|build)|must be imported")
# What torch.load raises, besides UnpicklingError, on bytes that are no checkpoint or a damaged one
# (its weights-only unpickler lets KeyError, IndexError and struct.error through).
_NOT_A_PICKLE = (RuntimeError, EOFError, ValueError, UnicodeDecodeError, KeyError, IndexError, struct.error)
# A torch.save archive is a zip; checkpoints of torch before 1.6 are a pickle (protocol 2 and up).
_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")
_HEAD_BYTES = 16  # how much of a file that is no checkpoint an error message shows
WEIGHTS_NOTE = "sam_onnx"  # the entry of a state dict's _metadata that note_weights writes
RANDOM_WEIGHTS = "random"  # what it says for sam_onnx.modeling.random_weights' checkpoints


def load_sam(
    path: str | os.PathLike[str], model_type: str | None = None, *, device: str | torch.device = "cpu"
) -> Sam:
    """Load a SAM checkpoint into a model in eval mode.

    Arguments:
      path: an official ``.pth`` file, a ``.safetensors`` file, or a Hugging Face model
        directory (``model.safetensors`` or ``pytorch_model.bin``, optionally ``config.json``).
      model_type: ``"vit_b"``, ``"vit_l"``, ``"vit_h"`` (or a test variant); ``None`` detects it.
      device: where the model's parameters live.
    A SAM 2 checkpoint raises :class:`ModelFamilyError` (``load_sam2`` / ``load_model`` read it).
    """
    return sam_from_state_dict(load_state_dict(path), path, model_type, device=device)


def sam_from_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    model_type: str | None = None,
    *,
    device: str | torch.device = "cpu",
) -> Sam:
    """:func:`load_sam` on a state dict already read (official layout); ``path`` names it in errors."""
    detected = detect_variant(state_dict, path)
    if model_type is not None and get_variant(model_type).name != detected.name:
        raise VariantMismatchError(path, model_type, detected.name)
    model = build_sam(detected)
    check_keys(state_dict, model.state_dict(), path)
    model.load_state_dict(state_dict, strict=True)
    return model.to(device)


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a SAM v1 checkpoint into a state dict in the official layout (float tensors on the CPU)."""
    return official_state_dict(read_tensors(path), path)


def official_state_dict(
    raw: Mapping[str, torch.Tensor], path: str | os.PathLike[str]
) -> dict[str, torch.Tensor]:
    """SAM v1 tensors as stored (:func:`read_tensors`) -> the official layout. SAM 2 tensors raise
    :class:`ModelFamilyError`."""
    if family_of_tensors(raw) is SAM2:
        raise ModelFamilyError(path, SAM, SAM2, "load_sam2 or load_model")
    state_dict = hf_to_official(raw) if is_hf_layout(raw) else dict(raw)
    # The official checkpoints do not store the pixel statistics (non-persistent buffers); some
    # re-saved ones do. They are the fixed official constants either way.
    for key in _PIXEL_STATS:
        state_dict.pop(key, None)
    return state_dict


def read_tensors(path: str | os.PathLike[str]) -> Mapping[str, torch.Tensor]:
    """The tensors of a checkpoint of either family as stored (names unchanged, CPU): a ``.pth`` /
    ``.pt`` file (a state dict, or one under ``"model"`` / ``"state_dict"``), a ``.safetensors``
    file or a Hugging Face model directory. Every failure is a :class:`CheckpointError`."""
    p = Path(path)
    if not p.exists():
        raise CheckpointNotFoundError(p, "no such file or directory")
    try:
        if p.is_dir():
            raw = _read_hf_directory(p)
        elif p.suffix == ".safetensors":
            raw = _read_safetensors(p)
        else:
            raw = _read_pth(p)
    except PermissionError as exc:
        what = exc.filename or p
        raise UnreadableCheckpointError(
            p, f"{what} is not readable by this process ({exc.strerror})"
        ) from None
    return raw


def note_weights(state_dict: Mapping[str, torch.Tensor], weights: str) -> None:
    """Record in ``state_dict`` (a ``Module.state_dict()``) what its weights are, e.g.
    :data:`RANDOM_WEIGHTS`, for :func:`checkpoint_weights` to read back from the saved file.

    The note goes into the state dict's ``_metadata`` (torch's per-module notes, pickled with it;
    ``load_state_dict`` reads only the entries named after modules): the file stays an
    official-layout state dict of tensors that every loader, the official one too, reads as before.
    """
    state_dict._metadata[WEIGHTS_NOTE] = {"weights": weights}


def checkpoint_weights(path: str | os.PathLike[str]) -> str | None:
    """What a checkpoint says its weights are: :data:`RANDOM_WEIGHTS` for one written by
    :mod:`sam_onnx.modeling.random_weights`; None for every other (official checkpoints say
    nothing; neither do ``.safetensors`` files and Hugging Face folders). Reads only the pickle."""
    p = Path(path)
    if not p.is_file() or not zipfile.is_zipfile(p):  # note_weights writes torch.save archives
        return None
    obj = _torch_load(p, mmap=True)  # the tensors stay on disk
    wrapped = [obj.get(key) for key in _NESTED_KEYS] if isinstance(obj, Mapping) else []
    for candidate in (obj, *wrapped):
        metadata = getattr(candidate, "_metadata", None)
        note = metadata.get(WEIGHTS_NOTE) if isinstance(metadata, Mapping) else None
        weights = note.get("weights") if isinstance(note, Mapping) else None
        if isinstance(weights, str):
            return weights
    return None


def _read_pth(path: Path) -> Mapping[str, torch.Tensor]:
    obj = _torch_load(path)
    return _as_tensor_mapping(obj, path)


def _torch_load(path: Path, *, mmap: bool = False) -> object:
    """``torch.load(weights_only=True)`` of ``path``, its failures as :class:`CheckpointError` s in
    our words: torch's own message advises re-running with ``weights_only=False``, which for a file
    that is no checkpoint is wrong and for a refused pickle is dangerous."""
    try:
        with warnings.catch_warnings():  # bytes that are no pickle may claim any protocol number
            warnings.filterwarnings("ignore", message=r".*pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except PermissionError:
        raise
    except pickle.UnpicklingError as exc:
        reason = _unpickler_reason(exc)
        if _REFUSED_OBJECT.search(str(exc)):
            raise UnsafeCheckpointError(
                path, f"the pickle references objects other than tensors and was refused unopened ({reason})"
            ) from None
        raise _unreadable(path, reason) from None
    except (*_NOT_A_PICKLE, OSError, zipfile.BadZipFile) as exc:
        raise _unreadable(path, _first_line(exc)) from None


def _unpickler_reason(exc: pickle.UnpicklingError) -> str:
    """What torch's weights-only unpickler found, without torch's advice around it."""
    found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(exc))
    if found is None:
        return "refused by torch's weights-only unpickler"
    return found.group(1).split(" Please ")[0].rstrip(". ")


def _unreadable(path: Path, reason: str) -> CorruptCheckpointError:
    """A damaged checkpoint, or a file that is no checkpoint at all (README.md, an image), told apart
    by the first bytes: a torch.save archive is a zip, an older one a pickle."""
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
    if head.startswith(_CHECKPOINT_MAGIC):
        return CorruptCheckpointError(path, f"truncated or corrupt PyTorch checkpoint ({reason})")
    came = f"it begins with {head!r}" if head else "it is empty"
    return CorruptCheckpointError(
        path,
        "not a checkpoint: expected a PyTorch checkpoint (.pth/.pt written by torch.save), a "
        f".safetensors file or a Hugging Face model folder; {came}",
    )


def _read_safetensors(path: Path) -> Mapping[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except PermissionError:
        raise
    except (SafetensorError, OSError, ValueError) as exc:
        raise CorruptCheckpointError(
            path, f"truncated or corrupt safetensors file ({_first_line(exc)})"
        ) from None


def _read_hf_directory(path: Path) -> Mapping[str, torch.Tensor]:
    config = path / "config.json"
    if config.exists():
        _check_hf_config(config)
    if (path / "model.safetensors").exists():
        return _read_safetensors(path / "model.safetensors")
    if (path / "model.safetensors.index.json").exists():
        return _read_sharded(path / "model.safetensors.index.json")
    if (path / "pytorch_model.bin").exists():
        return _read_pth(path / "pytorch_model.bin")
    present = sorted(child.name for child in path.iterdir())[:10]
    raise MissingWeightsError(
        path, f"a Hugging Face model directory needs one of {list(HF_WEIGHT_FILES)}; it holds {present}"
    )


def _read_sharded(index_path: Path) -> dict[str, torch.Tensor]:
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
    except PermissionError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptCheckpointError(
            index_path, f"not a safetensors index with a weight_map ({exc})"
        ) from None
    state_dict: dict[str, torch.Tensor] = {}
    for shard in shards:
        shard_path = index_path.parent / shard
        if shard_path.parent != index_path.parent:
            raise CorruptCheckpointError(index_path, f"shard {shard!r} lies outside the model directory")
        if not shard_path.exists():
            raise MissingWeightsError(index_path, f"shard {shard!r} named in the index is missing")
        state_dict.update(_read_safetensors(shard_path))
    return state_dict


def _check_hf_config(config_path: Path) -> None:
    try:
        config = json.loads(config_path.read_text())
    except PermissionError:
        raise
    except (OSError, ValueError) as exc:
        raise CorruptCheckpointError(config_path, f"config.json is not valid JSON ({exc})") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in _HF_MODEL_TYPES:
        raise NotSamCheckpointError(
            config_path, f"config.json has model_type {model_type!r}, expected one of {list(_HF_MODEL_TYPES)}"
        )


def _as_tensor_mapping(obj: object, path: Path) -> Mapping[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in _NESTED_KEYS:
            if isinstance(obj.get(key), Mapping) and not any(
                isinstance(v, torch.Tensor) for v in obj.values()
            ):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise NotSamCheckpointError(path, f"expected a state dict of tensors, got {type(obj).__name__}")
    if all(isinstance(k, str) and k.startswith(_PARALLEL_PREFIX) for k in obj):
        # Saved from a DataParallel / DistributedDataParallel wrapper (MedSAM's multi-GPU training).
        obj = {k[len(_PARALLEL_PREFIX) :]: v for k, v in obj.items()}
    not_tensors = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise NotSamCheckpointError(
            path, f"expected a state dict of tensors; not tensors: {not_tensors[:_SHOWN]}"
        )
    return obj


def detect_variant(
    state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike[str] = "<state dict>"
) -> SamVariant:
    """The variant whose image encoder has the shapes of ``state_dict`` (official layout).

    Width comes from the patch embedding, depth from the block count, head width from the
    relative-position tables, the global-attention blocks from those tables' length (the window
    from the others') and the MLP width from block 0's first MLP layer. Shapes of the registry's
    variants keep their names (``vit_b`` ...); any other shape (SlimSAM, other pruned or resized
    fine-tunes) becomes a variant named after its numbers (:func:`~sam_onnx.variants.derived_name`).
    Whether every other tensor fits is :func:`check_keys`'s job, once the model is built.
    """
    numbers = _encoder_numbers(state_dict, path)
    try:
        return variant_from_numbers(numbers)
    except InvalidInputError as exc:
        raise NotSamCheckpointError(path, f"image encoder {numbers} is not a ViT: {exc}") from None


def _encoder_numbers(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> EncoderNumbers:
    prefix = "image_encoder.blocks."
    patch = state_dict.get("image_encoder.patch_embed.proj.weight")
    lin1 = state_dict.get(f"{prefix}0.mlp.lin1.weight")
    if patch is None or patch.ndim != 4 or lin1 is None or lin1.ndim != 2:
        _raise_not_sam(state_dict, build_sam_meta("vit_b"), path)
    embed_dim = patch.shape[0]
    depth = len({k[len(prefix) :].split(".")[0] for k in state_dict if k.startswith(prefix)})
    rel_pos = [state_dict.get(f"{prefix}{i}.attn.rel_pos_h") for i in range(depth)]
    if any(t is None or t.ndim != 2 or t.shape[1] == 0 for t in rel_pos):
        _raise_not_sam(state_dict, build_sam_meta("vit_b"), path)
    head_dim = rel_pos[0].shape[1]
    if embed_dim % head_dim:
        raise NotSamCheckpointError(
            path,
            f"image encoder width {embed_dim} is not a whole number of heads of width {head_dim} "
            f"(the width of {prefix}0.attn.rel_pos_h)",
        )
    global_idx = tuple(i for i, t in enumerate(rel_pos) if t.shape[0] == 2 * EMBED_HW - 1)
    windowed = [t.shape[0] for t in rel_pos if t.shape[0] != 2 * EMBED_HW - 1]
    # A table covers offsets -(S-1)..S-1 of an S-token window: 2S - 1 rows. Blocks whose tables
    # disagree with the first windowed block's are reported by check_keys with their shapes.
    window = (windowed[0] + 1) // 2 if windowed else WINDOW_SIZE
    return EncoderNumbers(embed_dim, depth, embed_dim // head_dim, lin1.shape[0], global_idx, window)


def build_sam_meta(variant: SamVariant | str) -> dict[str, torch.Tensor]:
    """State dict of ``variant`` on the meta device: names and shapes, no memory."""
    with torch.device("meta"):
        return build_sam(variant).state_dict()


def check_keys(
    state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], path: str | os.PathLike[str]
) -> None:
    """Raise :class:`NotSamCheckpointError` unless names and shapes match ``expected`` exactly."""
    if set(state_dict) != set(expected):
        _raise_not_sam(state_dict, expected, path)
    wrong = [
        f"{k}: {list(state_dict[k].shape)} (expected {list(v.shape)})"
        for k, v in expected.items()
        if state_dict[k].shape != v.shape
    ]
    if wrong:
        raise NotSamCheckpointError(
            path, f"{len(wrong)} tensors have unexpected shapes, first: {wrong[:_SHOWN]}"
        )


def _raise_not_sam(
    state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], path: str | os.PathLike[str]
) -> None:
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    raise NotSamCheckpointError(
        path,
        f"not a SAM state dict: {len(missing)} missing keys (first {missing[:_SHOWN]}), "
        f"{len(unexpected)} unexpected keys (first {unexpected[:_SHOWN]})",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
