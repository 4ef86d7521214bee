"""The rate of the encoder's linear layers alone on each engine (a benchmark, not a test).

    python bench/fc_peak.py [--threads 2] [--repeats 10]

Builds a chain of ViT-B's MLP products (4096 tokens, 768 -> 3072 -> 768, twelve products,
random weights) as one ONNX graph and runs it as the runtime opens graphs (``SessionConfig``):
onnxruntime's CPU provider, and OpenVINO at f32 and bf16 where onnxruntime-openvino is installed.
Prints milliseconds and multiply-adds per second for each. The chain keeps the activations inside
the engine (bf16 between products under OpenVINO), as in the encoder, so its rate is the most the
encoder's linear layers can reach there; ``docs/BENCHMARKS.md`` divides the encoder's linear
multiply-adds by it to bound what bf16 can gain.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TOKENS, WIDTH, MLP = 4096, 768, 3072
PAIRS = 6


def chain_model(pairs: int = PAIRS, seed: int = 0) -> onnx.ModelProto:
    """``x`` (TOKENS x WIDTH) through ``pairs`` x (WIDTH -> MLP -> WIDTH) MatMuls."""
    rng = np.random.default_rng(seed)
    nodes, weights, name = [], [], "x"
    for i in range(2 * pairs):
        shape = (WIDTH, MLP) if i % 2 == 0 else (MLP, WIDTH)
        w = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        weights.append(numpy_helper.from_array(w, f"w{i}"))
        out = "y" if i == 2 * pairs - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [name, f"w{i}"], [out]))
        name = out
    graph = helper.make_graph(
        nodes,
        "fc_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [TOKENS, WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [TOKENS, WIDTH])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()

    import onnxruntime as ort

    from sam_onnx.runtime.core.session import SessionConfig, engine_label, open_session

    engines = [("cpu", "f32")]
    if "OpenVINOExecutionProvider" in ort.get_available_providers():
        engines += [("openvino", "f32"), ("openvino", "bf16")]
    macs = 2 * PAIRS * TOKENS * WIDTH * MLP
    x = np.random.default_rng(1).standard_normal((TOKENS, WIDTH)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fc_chain.onnx"
        onnx.save(chain_model(), path)
        print(f"{2 * PAIRS} products of {TOKENS} x {WIDTH} x {MLP}: {macs / 1e9:.1f} G multiply-adds")
        for provider, precision in engines:
            config = SessionConfig(
                providers=(provider,),
                strict=True,
                intra_op_threads=args.threads,
                openvino_precision=precision,
            )
            session = open_session(path, config, role="encoder")
            session.run(None, {"x": x})  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                session.run(None, {"x": x})
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            label = engine_label(session, config)
            print(f"{label}: {1000 * median:.1f} ms, {macs / median / 1e9:.0f} G multiply-adds/s")


if __name__ == "__main__":
    main()
