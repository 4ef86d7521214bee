"""onnxruntime sessions: execution providers by name, threads, and a check of what really runs.

Providers are named ``cpu``, ``openvino``, ``cuda`` and ``tensorrt`` (or any onnxruntime provider
name, passed through), or ``auto``: the fastest engine this environment has (:func:`auto_providers`).
OpenVINO computes in f32 or bf16 (:attr:`SessionConfig.openvino_precision`); which one ran is
recorded, never silent (:func:`engine_label`).

onnxruntime silently falls back to CPU when, say, the CUDA libraries are missing; after a
session is created we compare the providers it actually uses with the ones asked for. In strict mode
a missing one raises :class:`~sam_onnx.errors.ProviderError` with the reason; otherwise one warning
per provider and process says which provider runs instead.
"""

from __future__ import annotations

import json
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
    "openvino": "OpenVINOExecutionProvider",
}
OPENVINO = "OpenVINOExecutionProvider"
OPENVINO_PRECISIONS = ("auto", "f32", "bf16")
# /proc/cpuinfo flags of CPUs whose cores run bf16 dot products natively (AVX512_BF16, AMX).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
_warned: set[str] = set()
_warned_lock = threading.Lock()


@dataclass(frozen=True)
class SessionConfig:
    """How to open sessions.

    Arguments:
      providers: in order of preference, e.g. ``("cuda", "cpu")``; CPU is always appended last.
        ``("auto",)`` (the default) is OpenVINO where onnxruntime-openvino is installed, else CPU.
      strict: raise instead of warning when a requested provider is not in use.
      intra_op_threads: threads per operator (0: onnxruntime's default, one per core).
      spinning: let idle threads spin (lower latency, busy CPU) — onnxruntime's default is on.
      memory_arena: onnxruntime's CPU memory arena (its default is on). Off here: with the arena a
        session keeps its largest run's activations reserved after the run, and the reserve grows
        with runs of changing shapes, so the encoder's ~1.5 GB of ViT-B activations stayed held
        while the decoder's batches piled their own on top (automatic mask generation on a
        640 x 480 image peaked at 11.6 GB resident; without the arena, memory goes back after
        each run: see bench/amg_memory.py and docs/BENCHMARKS.md).
      openvino_precision: OpenVINO's compute precision on the CPU: ``f32``; ``bf16`` (the graph
        stays float32 at its inputs and outputs; masks within the tolerances in
        tests/test_openvino.py); ``auto``: bf16 where the CPU has native bf16
        (:data:`BF16_CPU_FLAGS`), else f32, for the encoder; f32 for the decoder graphs (see
        :func:`openvino_precision`). Ignored by the other providers.
    """

    providers: tuple[str, ...] = ("auto",)
    strict: bool = False
    intra_op_threads: int = 0
    spinning: bool = True
    memory_arena: bool = False
    openvino_precision: str = "auto"

    def provider_names(self) -> list[str]:
        """onnxruntime provider names, best first, ``auto`` resolved, CPU last."""
        names = []
        for p in self.providers:
            names += auto_providers() if p.lower() == "auto" else [PROVIDER_ALIASES.get(p.lower(), p)]
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
    if config.openvino_precision not in OPENVINO_PRECISIONS:
        raise ProviderError(
            f"openvino_precision must be one of {OPENVINO_PRECISIONS}, got {config.openvino_precision!r}"
        )
    available = set(ort.get_available_providers())
    requested = config.provider_names()
    missing = [p for p in requested if p not in available]
    if missing and config.strict:
        raise ProviderError(
            f"{', '.join(missing)} requested but this onnxruntime build offers only {sorted(available)}"
            + _missing_hint(missing)
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = config.intra_op_threads
    options.enable_cpu_mem_arena = config.memory_arena
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.spinning else "0")
    try:
        providers = [_provider_entry(p, config, role) for p in requested if p in available]
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own C++ exception types
        raise ModelLoadError(path, _load_problem(exc)) from None
    used = session.get_providers()
    not_used = [p for p in requested if p not in used and p != "CPUExecutionProvider"]
    if not_used:
        reason = f"{', '.join(not_used)} not in use for the {role} graph; running on {used[0]}"
        if config.strict:
            raise ProviderError(reason + _missing_hint(not_used))
        with _warned_lock:  # once per missing provider and process, not once per graph
            fresh = not set(not_used) <= _warned
            _warned.update(not_used)
        if fresh:
            warnings.warn(reason, RuntimeWarning, stacklevel=_caller_stacklevel())
    return session


def auto_providers() -> list[str]:
    """What ``auto`` stands for: OpenVINO where this onnxruntime build offers it, else CPU.

    CUDA and TensorRT are never picked by ``auto``: onnxruntime-gpu lists them even where the
    CUDA libraries are missing, so they are asked for by name."""
    available = onnxruntime_module().get_available_providers()
    return [OPENVINO, "CPUExecutionProvider"] if OPENVINO in available else ["CPUExecutionProvider"]


def cpu_bf16_flags() -> list[str]:
    """The :data:`BF16_CPU_FLAGS` this machine's CPU reports in /proc/cpuinfo (none elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    lines = (line for line in text.splitlines() if line.startswith("flags"))
    flags = next((line.split(":", 1)[1].split() for line in lines), [])
    return [f for f in BF16_CPU_FLAGS if f in flags]


def openvino_precision(config: SessionConfig, role: str = "encoder") -> tuple[str, str]:
    """(``f32`` or ``bf16``, why) that OpenVINO computes the ``role`` graph in under ``config``.
    ``auto`` takes bf16 for the encoder only: the decoder graphs' products are small, and in bf16
    the fast pair's click flipped about 0.4 % of its low-res mask pixels (docs/BENCHMARKS.md)."""
    if config.openvino_precision != "auto":
        return config.openvino_precision, "asked for"
    if role != "encoder":
        return "f32", "auto: decoder graphs run in f32"
    flags = cpu_bf16_flags()
    if flags:
        return "bf16", f"auto: the CPU has native bf16 ({', '.join(flags)})"
    return "f32", "auto: the CPU has no native bf16"


def _provider_entry(name: str, config: SessionConfig, role: str = "encoder"):
    """``name``, or (name, options) for the providers that take options from the config."""
    if name != OPENVINO:
        return name
    # OpenVINO's own CPU default is bf16 on bf16 CPUs, so f32 is asked for explicitly too. Its
    # load_config must be inline JSON: a path to a JSON file there is a parse error (1.24.1).
    hint = {"CPU": {"INFERENCE_PRECISION_HINT": openvino_precision(config, role)[0]}}
    options = {"device_type": "CPU", "load_config": json.dumps(hint)}
    if config.intra_op_threads:
        options["num_of_threads"] = str(config.intra_op_threads)
    return name, options


def engine_label(session, config: SessionConfig, role: str = "encoder") -> str:
    """Which engine runs ``session`` and in what precision, e.g. ``OpenVINOExecutionProvider (CPU,
    bf16; auto: the CPU has native bf16 (avx512_bf16))`` or ``CPUExecutionProvider``."""
    used = session.get_providers()[0]
    if used != OPENVINO:
        return used
    precision, why = openvino_precision(config, role)
    return f"{used} (CPU, {precision}; {why})"


def _missing_hint(providers: list[str]) -> str:
    if providers == [OPENVINO]:
        return " (install the [openvino] extra: onnxruntime-openvino, in place of onnxruntime)"
    return " (check the CUDA/cuDNN/TensorRT libraries onnxruntime-gpu needs)"


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
