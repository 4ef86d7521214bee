"""Where one graph spends its time, by operator type (onnxruntime's profiler; a benchmark, not a test).

    python bench/profile_graph.py GRAPH.onnx [--threads 2] [--runs 5] [--hw 480 640] [--level all] [--nodes]

Runs the graph on random inputs of its own shapes (an encoder: one 1024 x 1024 input; a decoder of
the official contract: one click on an image of ``--hw`` H W), then prints per operator type the
milliseconds per run, the share of the total and the number of nodes.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


def inputs_for(session: ort.InferenceSession, hw: tuple[int, int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    names = {i.name for i in session.get_inputs()}
    if "orig_im_size" in names:
        h, w = hw
        scale = 1024 / max(h, w)
        return {
            "image_embeddings": rng.standard_normal((1, 256, 64, 64), dtype=np.float32),
            "point_coords": np.array([[[w * 0.4 * scale, h * 0.6 * scale], [0, 0]]], np.float32),
            "point_labels": np.array([[1, -1]], np.float32),
            "mask_input": np.zeros((1, 1, 256, 256), np.float32),
            "has_mask_input": np.zeros(1, np.float32),
            "orig_im_size": np.array([h, w], np.float32),
        }
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    if "uint8" in inp.type:
        return {inp.name: rng.integers(0, 256, shape, dtype=np.uint8)}
    return {inp.name: rng.standard_normal(shape, dtype=np.float32)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("graph", type=Path)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--hw", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    p.add_argument("--level", choices=("basic", "all"), default="all")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--nodes", action="store_true", help="rank single nodes instead of operator types")
    args = p.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[args.level]
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "profile")
    session = ort.InferenceSession(str(args.graph), options, providers=["CPUExecutionProvider"])
    feeds = inputs_for(session, tuple(args.hw))
    session.run(None, feeds)  # warm-up (profiled too; subtracted below by counting runs)
    start = time.perf_counter()
    for _ in range(args.runs):
        session.run(None, feeds)
    wall = (time.perf_counter() - start) * 1000 / args.runs
    events = json.loads(Path(session.end_profiling()).read_text())
    total_runs = args.runs + 1
    per_op: collections.Counter[str] = collections.Counter()
    nodes: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"].get("op_name", "?")
            if args.nodes:
                op = f"{op} {e['name'].removesuffix('_kernel_time')}"
            per_op[op] += e["dur"]
            nodes[op] += 1
    kernel = sum(per_op.values())
    print(f"{args.graph.name}: {wall:.1f} ms per run (wall, {args.threads} threads, level {args.level})")
    width = max(28, *(len(op) + 2 for op, _ in per_op.most_common(args.top)))
    print(f"{'operator':{width}s}{'ms/run':>10s}{'share':>8s}{'nodes':>7s}")
    for op, us in per_op.most_common(args.top):
        share = 100 * us / kernel
        print(f"{op:{width}s}{us / 1000 / total_runs:10.2f}{share:7.1f}%{nodes[op] // total_runs:7d}")


if __name__ == "__main__":
    main()
