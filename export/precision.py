"""Reduced-precision copies of the fp32 graphs: an fp16 encoder and int8 dynamic quantisation.

fp16 keeps the operators that overflow or lose too much in half precision in float32: the
normalisations (LayerNormalization, and the ReduceMean/Pow/Sqrt of the neck's channel
LayerNorm), Softmax (its exp of large logits), and the resize of mask logits. Inputs and outputs
stay float32 so the graph is a drop-in for the fp32 one.

int8 is onnxruntime's dynamic quantisation: weights of MatMul/Gemm stored as int8 (per output
channel), activations quantised on the fly. Convolutions stay float32 (the patch embedding and the
neck are a small share of the cost, and ConvInteger has no kernel on some providers), and so do
MatMuls whose constant operand is not a 2-D matrix (the decoder's per-head token-side products:
onnxruntime's per-channel int8 MatMul kernel accepts only 2-D weights, and they are tiny).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import onnx

from .onnx_file import save_model

FP16_KEEP_FP32 = (
    "LayerNormalization",
    "ReduceMean",
    "Pow",
    "Sqrt",
    "Softmax",
    "Resize",
    "Range",
    "Cast",
)
INT8_OP_TYPES = ("MatMul", "Gemm")


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """An fp16 copy of ``model`` with :data:`FP16_KEEP_FP32` operators and the I/O in float32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(
        model, keep_io_types=True, op_block_list=list(FP16_KEEP_FP32), disable_shape_infer=False
    )
    _drop_repeated_nodes(converted.graph)
    return converted


def _drop_repeated_nodes(graph: onnx.GraphProto) -> None:
    """Remove exact repeats of a node (same name, inputs and outputs).

    The converter inserts one Cast per consumer of a float16 constant that feeds several kept-fp32
    operators, all with the same name and output; one of them computes the value for all.
    """
    seen: set[tuple] = set()
    keep = []
    for node in graph.node:
        key = (node.name, node.op_type, tuple(node.input), tuple(node.output))
        if key in seen:
            continue
        seen.add(key)
        keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def to_int8(model: onnx.ModelProto, scratch_dir: Path) -> onnx.ModelProto:
    """An int8 dynamically quantised copy of ``model`` (see the module docstring)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    weights = {t.name: len(t.dims) for t in model.graph.initializer}
    not_matrices = [
        n.name for n in model.graph.node if n.op_type == "MatMul" and weights.get(n.input[1], 2) != 2
    ]
    work = Path(tempfile.mkdtemp(dir=scratch_dir))
    src, dst = work / "fp32.onnx", work / "int8.onnx"
    save_model(model, src)
    # The quantiser logs advice about shape pre-processing on the root logger; we run it as-is.
    with _root_logging_silenced():
        quantize_dynamic(
            src,
            dst,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=list(INT8_OP_TYPES),
            nodes_to_exclude=not_matrices,
            use_external_data_format=False,  # int8 weights are a quarter of fp32: ViT-H fits in 2 GiB
        )
    return onnx.load(str(dst), load_external_data=True)


@contextlib.contextmanager
def _root_logging_silenced() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
