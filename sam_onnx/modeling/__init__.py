"""PyTorch sources of SAM (v1) and SAM 2, and checkpoint loading (needs the ``[export]`` extra).

This is the only subpackage that imports torch; the runtime never imports it.
"""

from ..errors import MissingDependencyError

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise MissingDependencyError(
        "sam_onnx.modeling needs PyTorch: install the export extra, "
        "`pip install '.[export,cpu]'` in a sam-onnx clone "
        "(on a machine without a GPU, install a CPU build of torch first)"
    ) from exc

from .build import build_sam, build_sam2
from .checkpoint import detect_variant, load_sam, load_state_dict
from .family import detect_family
from .load import load_model
from .sam import Sam
from .sam2 import Sam2
from .sam2_checkpoint import detect_sam2_variant, load_sam2

__all__ = [
    "Sam",
    "Sam2",
    "build_sam",
    "build_sam2",
    "detect_family",
    "detect_sam2_variant",
    "detect_variant",
    "load_model",
    "load_sam",
    "load_sam2",
    "load_state_dict",
]
