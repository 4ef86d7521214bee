"""Decoding time over the number of prompt points: the fast pair against the decoder graph.

The pair's click graph grows faster than linearly with the number of points N (its low-rank
image tokens gain columns per prompt token), the contract decoder (``decoder_batched.onnx``) about
linearly. This measures both on one saved embedding, interleaved (pair, graph, pair, graph ...)
in one process, and prints the median per N with their ratio: the crossover that
``SamPredictor`` routes by (:data:`sam_onnx.runtime.core.predictor.PAIR_MAX_POINTS`).

    python bench/points.py -m EXPORT_DIR [--hw 480 640] [--points 1 2 4 8 16 32 64 128] [--threads 2]

``EXPORT_DIR`` needs the decoder graphs and the pair (a ``--decoder-only`` export will do); the
embedding is random (the decoder's cost does not depend on its values).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from sam_onnx.runtime import ImageEmbedding, SamPredictor, SessionConfig


def _predictors(model_dir: str, threads: int) -> tuple[SamPredictor, SamPredictor]:
    config = SessionConfig(intra_op_threads=threads)
    pair = SamPredictor.from_export(model_dir, encoder=False, config=config)
    graph = SamPredictor.from_export(model_dir, encoder=False, config=config, use_fast_decoder=False)
    return pair, graph


def _embedding(predictor: SamPredictor, hw: tuple[int, int]) -> ImageEmbedding:
    rng = np.random.default_rng(0)
    extra = tuple(rng.standard_normal(t.shape).astype(np.float32) for t in predictor.rules.features[1:])
    return ImageEmbedding(
        rng.standard_normal(predictor.rules.features[0].shape).astype(np.float32),
        hw,
        variant=predictor.variant,
        checkpoint_sha256=predictor.checkpoint_sha256,
        family=predictor.family,
        high_res_feats=extra or None,
    )


def _time(predictor: SamPredictor, emb: ImageEmbedding, points: np.ndarray, labels: np.ndarray) -> float:
    start = time.perf_counter()
    predictor.predict(points, labels, multimask_output=False, embedding=emb)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-m", "--model", required=True, help="sam-export directory with the pair")
    parser.add_argument("--hw", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    parser.add_argument("--points", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pair, graph = _predictors(args.model, args.threads)
    if pair.fast is None:
        parser.error(f"{args.model} has no fast decoder pair")
    pair.pair_max_points = graph.pair_max_points = 1 << 30  # measure each path at every N
    emb = _embedding(pair, tuple(args.hw))
    h, w = args.hw
    rng = np.random.default_rng(1)
    print(f"decoder over N points, {h}x{w}, {args.threads} threads, median of {args.repeats}")
    print(f"{'N':>5} {'pair ms':>9} {'graph ms':>9} {'graph/pair':>10}")
    for n in args.points:
        points = rng.uniform([0, 0], [w - 1, h - 1], size=(n, 2))
        labels = rng.integers(0, 2, size=n)
        for warm in (pair, graph):
            _time(warm, emb, points, labels)
        times = {"pair": [], "graph": []}
        for _ in range(args.repeats):  # interleaved: the machine's drift hits both alike
            times["pair"].append(_time(pair, emb, points, labels))
            times["graph"].append(_time(graph, emb, points, labels))
        p, g = (1e3 * statistics.median(times[k]) for k in ("pair", "graph"))
        print(f"{n:>5} {p:>9.1f} {g:>9.1f} {g / p:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
