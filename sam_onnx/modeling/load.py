"""``load_model``: a checkpoint of either family, as its tensor names say.

Each family's loader reads the tensors already read (:func:`~.checkpoint.read_tensors`, one read);
:func:`~.family.family_of_tensors` picks the loader by the names.
"""

from __future__ import annotations

import os

import torch

from ..families import DEFAULT_FAMILY, SAM, SAM2
from .checkpoint import official_state_dict, read_tensors, sam_from_state_dict
from .family import family_of_tensors
from .sam import Sam
from .sam2 import Sam2
from .sam2_checkpoint import sam2_from_tensors


def _load_sam(raw, path, model_type, *, device) -> Sam:
    return sam_from_state_dict(official_state_dict(raw, path), path, model_type, device=device)


# family name -> loader of tensors already read; names of neither family go to the default
# family's loader (SAM v1's), which says what it expected
LOADERS = {SAM.name: _load_sam, SAM2.name: sam2_from_tensors}


def load_model(
    path: str | os.PathLike[str], model_type: str | None = None, *, device: str | torch.device = "cpu"
) -> Sam | Sam2:
    """Load a checkpoint of either family: a :class:`Sam` (SAM v1) or a :class:`Sam2`, as the tensor
    names say (:func:`family_of_tensors`); ``model_type``, when given, must be of that family."""
    raw = read_tensors(path)
    family = family_of_tensors(raw)
    loader = LOADERS[(family or DEFAULT_FAMILY).name]
    return loader(raw, path, model_type, device=device)
