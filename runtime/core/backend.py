"""Finding onnxruntime: exactly one of the CPU, GPU or OpenVINO wheels, with a clear error otherwise."""

from __future__ import annotations

from importlib import metadata
from types import ModuleType

from sam_onnx.errors import DependencyConflictError, MissingDependencyError

# Wheels that all install the same `onnxruntime` import package.
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")

INSTALL_HINT = (
    "install exactly one runtime extra, from a sam-onnx clone: `pip install '.[cpu]'` "
    "(onnxruntime), `pip install '.[gpu]'` (onnxruntime-gpu) or `pip install '.[openvino]'` "
    "(onnxruntime-openvino)"
)


def installed_ort_distributions() -> list[str]:
    """Names of the onnxruntime wheels installed in this environment."""
    found = []
    for name in ORT_DISTRIBUTIONS:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def onnxruntime_module() -> ModuleType:
    """Import onnxruntime, or raise a typed error that says which extra to install.

    Raises :class:`DependencyConflictError` when more than one of :data:`ORT_DISTRIBUTIONS` is
    installed: they overwrite each other's files and the result depends on installation order.
    """
    found = installed_ort_distributions()
    if len(found) > 1:
        raise DependencyConflictError(
            f"{' and '.join(found)} are installed together; they provide the same `onnxruntime` module. "
            f"Uninstall both (`pip uninstall -y {' '.join(found)}`), then {INSTALL_HINT}"
        )
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError(f"sam_onnx.runtime needs onnxruntime ({exc}); {INSTALL_HINT}") from exc
    return onnxruntime
