"""onnxruntime sessions: execution providers by name, threads, and a check of what really runs.

Providers are named ``cpu``, ``cuda`` and ``tensorrt`` (or any onnxruntime provider name, passed
through). onnxruntime silently falls back to CPU when, say, the CUDA libraries are missing; after a
session is created we compare the providers it actually uses with the ones asked for. In strict mode
a missing one raises :class:`~sam_onnx.errors.ProviderError` with the reason; otherwise one warning
per provider and process says which provider runs instead.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from sam_onnx.errors import ModelLoadError, ProviderError

from .backend import onnxruntime_module

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
_warned: set[str] = set()
_warned_lock = threading.Lock()


@dataclass(frozen=True)
class SessionConfig:
    """How to open sessions.

    Arguments:
      providers: in order of preference, e.g. ``("cuda", "cpu")``; CPU is always appended last.
      strict: raise instead of warning when a requested provider is not in use.
      intra_op_threads: threads per operator (0: onnxruntime's default, one per core).
      spinning: let idle threads spin (lower latency, busy CPU) — onnxruntime's default is on.
      memory_arena: onnxruntime's CPU memory arena (its default is on). Off here: with the arena a
        session keeps its largest run's activations reserved after the run, and the reserve grows
        with runs of changing shapes, so the encoder's ~1.5 GB of ViT-B activations stayed held
        while the decoder's batches piled their own on top (automatic mask generation on a
        640 x 480 image peaked at 11.6 GB resident; without the arena, memory goes back after
        each run: see bench/amg_memory.py and docs/BENCHMARKS.md).
    """

    providers: tuple[str, ...] = ("cpu",)
    strict: bool = False
    intra_op_threads: int = 0
    spinning: bool = True
    memory_arena: bool = False

    def provider_names(self) -> list[str]:
        names = [PROVIDER_ALIASES.get(p.lower(), p) for p in self.providers]
        if "CPUExecutionProvider" not in names:
            names.append("CPUExecutionProvider")
        return list(dict.fromkeys(names))


def open_session(path: str | os.PathLike[str], config: SessionConfig, *, role: str):
    """Open one graph; raise :class:`ModelLoadError` for missing/corrupt files or external data."""
    ort = onnxruntime_module()
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(path, f"the {role} graph file does not exist")
    if config.intra_op_threads < 0:
        raise ProviderError(f"intra_op_threads must be >= 0, got {config.intra_op_threads}")
    available = set(ort.get_available_providers())
    requested = config.provider_names()
    missing = [p for p in requested if p not in available]
    if missing and config.strict:
        raise ProviderError(
            f"{', '.join(missing)} requested but this onnxruntime build offers only {sorted(available)}"
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = config.intra_op_threads
    options.enable_cpu_mem_arena = config.memory_arena
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.spinning else "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=[p for p in requested if p in available])
    except Exception as exc:  # onnxruntime raises its own C++ exception types
        raise ModelLoadError(path, _load_problem(exc)) from None
    used = session.get_providers()
    not_used = [p for p in requested if p not in used and p != "CPUExecutionProvider"]
    if not_used:
        reason = f"{', '.join(not_used)} not in use for the {role} graph; running on {used[0]}"
        if config.strict:
            raise ProviderError(reason + " (check the CUDA/cuDNN/TensorRT libraries onnxruntime-gpu needs)")
        with _warned_lock:  # once per missing provider and process, not once per graph
            fresh = not set(not_used) <= _warned
            _warned.update(not_used)
        if fresh:
            warnings.warn(reason, RuntimeWarning, stacklevel=_caller_stacklevel())
    return session


def _caller_stacklevel() -> int:
    """``stacklevel`` that points a warning raised by the caller of this function at the first
    frame outside sam_onnx: the user's line, however many of our calls lie between."""
    level, frame = 1, sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("sam_onnx."):
        frame, level = frame.f_back, level + 1
    return level


def _load_problem(exc: Exception) -> str:
    text = str(exc)
    first = text.splitlines()[0][:300] if text else type(exc).__name__
    if "escapes model directory" in text or "Absolute path not allowed" in text:
        return f"its external data points outside the model's folder; refused ({first})"
    if "external" in text.lower() or "data file" in text.lower() or "No such file" in text:
        return f"its external data file is missing or unreadable ({first})"
    return f"not a loadable ONNX model (corrupt, truncated or unsupported: {first})"
