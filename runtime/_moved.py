"""The runtime's modules before it was split into rooms, still importable (deprecated).

``sam_onnx.runtime.predictor`` is now ``sam_onnx.runtime.core.predictor``, and so on (:data:`MOVED`).
Code that imports an old path keeps working: it gets the module at the new path itself (so a
monkeypatch through either name reaches the same module) and a ``DeprecationWarning`` naming it.
``sam_onnx.runtime.amg`` kept its name (the mask-generation room; it re-exports the generator) and
the names ``sam_onnx.runtime`` exports did not move.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

# old module under sam_onnx.runtime -> its path now
MOVED = {
    "backend": "core.backend",
    "session": "core.session",
    "graphs": "core.graphs",
    "embedding": "core.embedding",
    "prompts": "core.prompts",
    "upscale": "core.upscale",
    "fast_decoder": "core.fast_decoder",
    "predictor": "core.predictor",
    "crops": "amg.crops",
    "rle": "amg.rle",
    "masks": "amg.masks",
    "jobs": "batch.jobs",
    "outputs": "batch.outputs",
    "distributed": "batch.distributed",
    "serve": "server.serve",
    "bundle": "server.bundle",
    "webcli": "server.webcli",
}
PACKAGE = __name__.rsplit(".", 1)[0]  # sam_onnx.runtime


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``sam_onnx.runtime.<old>`` and loads it as the module at its new path."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, old = fullname.rpartition(".")
        if package != PACKAGE or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return None  # a placeholder module: exec_module puts the real one in its place

    def exec_module(self, module: ModuleType) -> None:
        old = module.__name__
        new = f"{PACKAGE}.{MOVED[old.rpartition('.')[2]]}"
        warnings.warn(f"{old} moved to {new}; import it from there", DeprecationWarning, stacklevel=2)
        sys.modules[old] = importlib.import_module(new)  # the import system returns this one


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
