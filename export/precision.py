"""Reduced-precision copies of the fp32 graphs: an fp16 encoder and int8 dynamic quantisation.

fp16 keeps the operators that overflow or lose too much in half precision in float32: the
normalisations (LayerNormalization, and the ReduceMean/Pow/Sqrt of the neck's channel
LayerNorm), Softmax (its exp of large logits), and the resize of mask logits. Inputs and outputs
stay float32 so the graph is a drop-in for the fp32 one.

int8 is onnxruntime's dynamic quantisation: weights of MatMul/Gemm stored as int8 (per output
channel), activations quantised on the fly. Convolutions stay float32 (the patch embedding and the
neck are a small share of the cost, and ConvInteger has no kernel on some providers). Only
products of a constant 2-D weight with many rows of activations are quantised: all of the
encoder's, and the decoder's two upscaling products (:func:`int8_nodes`). The decoder's products
on its few prompt tokens cost more to quantise on the fly than they save and lose more accuracy
(on the kit's 18 golden prompts, quantising them too gave mask IoU min 0.937 against 0.971), and
its per-head products have 3-D constant operands, which onnxruntime's per-channel int8 MatMul
kernel does not accept.
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import onnx
import onnx.shape_inference
import onnx.utils

from sam_onnx.errors import ExportError

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
# Nodes under these scopes stay float32 in the fp16 copy: an export graph's own preprocessing
# (SAM 2's in-graph resize computes its filter from pixel positions up to the image size).
FP32_SCOPES = ("/preprocess/",)
INT8_OP_TYPES = ("MatMul", "Gemm")
INT8_MIN_ROWS = 1024
# SAM 2's encoder: products on the 256x256 and 128x128 token grids (Hiera's first two stages) stay
# float32. Those stages make high_res_feats_0/1, which the decoder adds straight into the mask
# upscaling; on the SAM 2.1 kit's prompts, quantising them too gave mask IoU mean 0.920, min 0.30
# against fp32, and keeping them float32 mean 0.993, min 0.984 (the later stages hold most of the
# products' work for every variant).
SAM2_INT8_MAX_ROWS = 128 * 128 - 1


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """An fp16 copy of ``model`` with :data:`FP16_KEEP_FP32` operators, the nodes under
    :data:`FP32_SCOPES` and the I/O in float32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    boundary = _scope_outputs(model)
    if boundary:
        # The converter passes every value between kept-fp32 nodes through float16, so the
        # scoped front is cut off, the rest converted, and the two joined again.
        inputs = [i.name for i in model.graph.input]
        outputs = [o.name for o in model.graph.output]
        front = onnx.utils.Extractor(model).extract_model(inputs, boundary)
        rest = to_fp16(onnx.utils.Extractor(model).extract_model(boundary, outputs))
        _rename_shared(front.graph, _value_names(rest.graph) - set(boundary), prefix="fp32/")
        # Joined by hand: the converter leaves its input casts after their readers, which
        # onnxruntime accepts and onnx.compose's checker does not.
        del rest.graph.input[:]
        rest.graph.input.extend(front.graph.input)
        nodes = [*front.graph.node, *rest.graph.node]
        del rest.graph.node[:]
        rest.graph.node.extend(nodes)
        rest.graph.initializer.extend(front.graph.initializer)
        return rest
    converted = convert_float_to_float16(
        model, keep_io_types=True, op_block_list=list(FP16_KEEP_FP32), disable_shape_infer=False
    )
    _drop_repeated_nodes(converted.graph)
    return converted


def _value_names(graph: onnx.GraphProto) -> set[str]:
    names = {t.name for t in graph.initializer} | {v.name for v in graph.value_info}
    return (names | {e for n in graph.node for e in (*n.input, *n.output)}) - {""}  # "": input left out


def _rename_shared(graph: onnx.GraphProto, names: set[str], prefix: str) -> None:
    """Rename the values ``names`` of ``graph`` (constants both halves of a split graph hold)."""
    for node in graph.node:
        node.input[:] = [prefix + e if e in names else e for e in node.input]
        node.output[:] = [prefix + e if e in names else e for e in node.output]
    for entry in (*graph.initializer, *graph.value_info):
        if entry.name in names:
            entry.name = prefix + entry.name


def _scope_outputs(model: onnx.ModelProto) -> list[str]:
    """Values computed under :data:`FP32_SCOPES` that the rest of the graph reads."""
    produced = {o for n in model.graph.node if n.name.startswith(FP32_SCOPES) for o in n.output}
    read = [i for n in model.graph.node if not n.name.startswith(FP32_SCOPES) for i in n.input]
    return sorted(set(read) & produced)


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


def to_int8(
    model: onnx.ModelProto, scratch_dir: Path, role: str, *, max_rows: int | None = None
) -> onnx.ModelProto:
    """An int8 dynamically quantised copy of ``model``, an ``encoder`` or ``decoder`` graph (see
    the module docstring and :func:`int8_nodes`)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    selected = int8_nodes(model, role, max_rows=max_rows)
    if not selected:  # the quantiser reads an empty list as "every node"
        raise ExportError(f"int8 quantisation of the {role}: no product qualifies (see int8_nodes)")
    # The quantiser first rewrites each Gemm as a MatMul named "<gemm>_MatMul" (plus an Add).
    gemms = {n.name for n in model.graph.node if n.op_type == "Gemm"}
    names = [*selected, *(f"{name}_MatMul" for name in selected if name in gemms)]
    work = Path(tempfile.mkdtemp(dir=scratch_dir))
    src, dst = work / "fp32.onnx", work / "int8.onnx"
    save_model(model, src)
    # The quantiser logs advice about shape pre-processing on the root logger; we run it as-is.
    with _root_logging_silenced():
        quantize_dynamic(
            src,
            dst,
            # uint8 weights (u8 x u8 products): on CPUs without VNNI (AVX2 only: many AMD EPYC,
            # older Intel) onnxruntime's u8 x s8 kernel sums pairs of products in int16 and
            # saturates; measured here on a Gemm of all-ones activations: 18-27 % error with int8
            # weights, 1 % with int8 weights of 7 bits, 0.5 % with uint8 weights
            weight_type=QuantType.QUInt8,
            per_channel=True,
            op_types_to_quantize=list(INT8_OP_TYPES),
            nodes_to_quantize=names,
            use_external_data_format=False,  # int8 weights are a quarter of fp32: ViT-H fits in 2 GiB
        )
    quantised = onnx.load(str(dst), load_external_data=True)
    done = sum(n.op_type == "MatMulInteger" for n in quantised.graph.node)
    if done != len(selected):
        raise ExportError(
            f"int8 quantisation of the {role}: expected {len(selected)} int8 products "
            f"(MatMulInteger), the quantiser made {done}"
        )
    return quantised


def int8_nodes(model: onnx.ModelProto, role: str, *, max_rows: int | None = None) -> list[str]:
    """Names of the MatMul/Gemm nodes :func:`to_int8` quantises (see the module docstring).

    ``role`` "encoder": every product with a constant 2-D weight (all of them act on the 4096
    image tokens); with ``max_rows`` (the family's rule, e.g. :data:`SAM2_INT8_MAX_ROWS` for a
    SAM 2 encoder) only those on at most that many rows (by shape inference). "decoder": those
    whose activation held at least :data:`INT8_MIN_ROWS` rows in one trial run on synthetic
    inputs (the image side; the prompt side has a few rows).
    """
    weights = {t.name for t in model.graph.initializer if len(t.dims) == 2}
    nodes = [n for n in model.graph.node if n.op_type in INT8_OP_TYPES and n.input[1] in weights]
    if role != "decoder" and max_rows is not None:
        rows = _static_rows(model)
        return [n.name for n in nodes if rows.get(n.input[0], max_rows + 1) <= max_rows]
    if role != "decoder":
        return [n.name for n in nodes]
    rows = _activation_rows(model, sorted({n.input[0] for n in nodes}))
    return [n.name for n in nodes if rows[n.input[0]] >= INT8_MIN_ROWS]


def _static_rows(model: onnx.ModelProto) -> dict[str, int]:
    """Rows (all axes but the last) of every value whose shape ONNX shape inference fixes."""
    inferred = onnx.shape_inference.infer_shapes(model)
    rows = {}
    for value in (*inferred.graph.value_info, *inferred.graph.input):
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            rows[value.name] = math.prod(d.dim_value for d in dims[:-1])
    return rows


def _activation_rows(model: onnx.ModelProto, names: list[str]) -> dict[str, int]:
    """Rows (all axes but the last) of the values ``names`` in one onnxruntime run of ``model``
    on inputs of ones, any symbolic dimension set to 2. Meant for the small decoder graphs."""
    import numpy as np
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.ValueInfoProto(name=name) for name in names)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) else 2 for d in inp.shape]
        feeds[inp.name] = np.ones(shape, np.int64 if "int64" in inp.type else np.float32)
    values = session.run(names, feeds)
    return {name: math.prod(v.shape[:-1]) for name, v in zip(names, values, strict=True)}


@contextlib.contextmanager
def _root_logging_silenced() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
