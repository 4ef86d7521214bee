"""Writing ONNX files: tracing, metadata, simplification, external data.

Exporter choice: torch 2.13 offers the TorchScript-based exporter (``dynamo=False``) and the
torch.export-based one (the default, which needs ``onnxscript``). We use the TorchScript exporter:
it needs no dependency beyond torch and onnx, its ``dynamic_axes`` keep exactly the axes we name
symbolic (points, prompt batch, image size) while every other shape stays static (which is what
lets onnxsim and onnxruntime fold the encoder well), and our model sources were written for it (no
value-dependent branches, constants precomputed; a test turns TracerWarnings into errors). Its
deprecation warning is silenced here, in the one place that calls it.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import onnx
import torch

from ..errors import InvalidInputError

MIN_OPSET = 17  # LayerNormalization (opset 17) is the newest operator our graphs use
MAX_OPSET = 20  # the newest opset torch's TorchScript exporter writes
PROTOBUF_LIMIT = 2**31 - 1  # one serialised ModelProto cannot exceed 2 GiB
# Models whose weights exceed this are written with their tensors in ``<name>.onnx.data``.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def check_opset(opset: int) -> int:
    """Return ``opset`` if our graphs can be written at it, else raise :class:`InvalidInputError`."""
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise InvalidInputError(
            "opset",
            f"an integer from {MIN_OPSET} (LayerNormalization) to {MAX_OPSET} (the exporter's newest)",
            repr(opset),
        )
    return opset


class GraphWrapper(Protocol):
    """An export wrapper (``EncoderGraph``, ``DecoderGraph``): a module that names its I/O."""

    input_names: Sequence[str]
    output_names: Sequence[str]
    dynamic_axes: Mapping[str, Mapping[int, str]]

    def example_inputs(self) -> tuple[torch.Tensor, ...]: ...

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...


def trace_to_onnx(wrapper: GraphWrapper, *, opset: int, scratch_dir: Path) -> onnx.ModelProto:
    """Trace ``wrapper`` on its example inputs, with its names and symbolic axes, and return the
    ONNX model with its weights loaded in memory.

    Models under the protobuf limit are exported to memory; larger ones into ``scratch_dir`` (the
    exporter spills their tensors to separate files there); the caller removes that directory.
    """
    param_bytes = sum(p.numel() * p.element_size() for p in wrapper.parameters())
    large = param_bytes > EXTERNAL_DATA_THRESHOLD
    target = Path(tempfile.mkdtemp(dir=scratch_dir)) / "traced.onnx" if large else io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export", category=Warning)
        warnings.filterwarnings("ignore", message=r".*feature will be removed", category=Warning)
        warnings.filterwarnings(
            "ignore", message=r".*aten::index operator of advanced indexing", category=Warning
        )
        torch.onnx.export(
            wrapper,
            wrapper.example_inputs(),
            str(target) if large else target,
            dynamo=False,
            opset_version=opset,
            input_names=list(wrapper.input_names),
            output_names=list(wrapper.output_names),
            dynamic_axes={k: dict(v) for k, v in wrapper.dynamic_axes.items()},
            do_constant_folding=True,
        )
    if large:
        return onnx.load(str(target), load_external_data=True)
    return onnx.load_from_string(target.getvalue())


def set_metadata(model: onnx.ModelProto, metadata: Mapping[str, str]) -> None:
    """Replace the model's ``metadata_props`` with ``metadata`` (string keys and values)."""
    del model.metadata_props[:]
    for key, value in sorted(metadata.items()):
        model.metadata_props.add(key=key, value=str(value))


def weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes held by the model's initializers (the size of the weights, in memory or external)."""
    total = 0
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            total += int(next((e.value for e in tensor.external_data if e.key == "length"), 0))
        else:
            total += len(tensor.raw_data) or tensor.ByteSize()
    return total


def needs_external_data(model: onnx.ModelProto) -> bool:
    return weight_bytes(model) > EXTERNAL_DATA_THRESHOLD


def simplify(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """Run onnxsim; on any failure return the model unchanged and say why.

    Models over the protobuf limit are not simplified (onnxsim serialises the whole model); they
    are still folded by onnxruntime's graph optimiser when a session loads them.
    """
    if needs_external_data(model):
        return model, "skipped: weights exceed the 2 GiB protobuf limit"
    try:
        import onnxsim
    except ImportError:
        return model, "skipped: onnxsim is not installed"
    try:
        with native_output_captured():  # onnxsim prints folding warnings from C++ to stdout
            simplified, ok = onnxsim.simplify(model)
    except Exception as exc:  # onnxsim raises bare RuntimeErrors from C++; keep the traced model
        return model, f"skipped: onnxsim failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    if not ok:
        return model, "skipped: onnxsim could not verify the simplified model"
    return simplified, "simplified"


@contextlib.contextmanager
def native_output_captured() -> Iterator[None]:
    """Send what native code writes to file descriptors 1 and 2 to a discarded temp file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def save_model(model: onnx.ModelProto, path: Path) -> list[Path]:
    """Write ``model`` to ``path``; weights over the threshold go to ``<name>.data`` beside it.

    Returns the files written (the ``.onnx`` first). Raises OSError as the file system does.
    With external data, ``model``'s tensors are left pointing at the data file (not in memory).
    """
    if needs_external_data(model):
        data = path.with_name(path.name + ".data")
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data.name,
            size_threshold=1024,
        )
        return [path, data]
    onnx.save_model(model, str(path))
    return [path]
