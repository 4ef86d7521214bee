"""PyTorch sources of SAM and checkpoint loading (needs the ``[export]`` extra).

This is the only subpackage that imports torch; the runtime never imports it.
"""

from ..errors import MissingDependencyError

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise MissingDependencyError(
        "sam_onnx.modeling needs PyTorch: install the export extra, `pip install 'sam-onnx[export,cpu]'` "
        "(on a machine without a GPU, install a CPU build of torch first)"
    ) from exc

from .build import build_sam
from .checkpoint import detect_variant, load_sam, load_state_dict
from .sam import Sam

__all__ = ["Sam", "build_sam", "detect_variant", "load_sam", "load_state_dict"]
