"""Where one click's single-mask upscaling is cheapest (a benchmark, not a test): in numpy after
the click graph, as ``SamPredictor`` does, or inside the click graph on onnxruntime's thread pool.

    python bench/click_upscale.py MODEL_DIR --checkpoint CKPT.pth [--threads 2] [--rounds 3]

The second is a prototype built here, not something ``sam-export`` writes: ``decoder_click.onnx``
with token 0 of its ``low_res_logits`` resized to H x W and thresholded in the same graph. The
resize is SAM v1's (x4 to the 1024 frame, crop, to H x W), separable and banded as in
``sam_onnx.runtime.core.upscale``. Its tap tables are inputs (built in numpy per image size):

* ``col_index`` (NC*K), ``col_weights`` (NC x 64 x K): each band of 64 output columns reads K
  consecutive low-res columns;
* ``row_index``, ``row_weights``: the same for the output rows;
* ``size``: (H, W).

The graph gathers the bands' low-res columns (as rows of the transposed logits), makes one
batched product per axis, then ``> 0`` and a crop of the padded bands. Its masks are checked equal
to ``upscale_masks`` before anything is timed.

Rows, each in its own process (one onnxruntime session per process: two sessions' spinning
thread pools slow each other), interleaved round by round: the official layout's click
(``bench/speed.py``'s export of ``--checkpoint``), the pair with numpy upscaling, the merged
prototype; at 480 x 640 and 1500 x 2250. SAM v1 exports only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, compose, helper

from sam_onnx.runtime.core.fast_decoder import PROMPT_INPUTS
from sam_onnx.runtime.core.upscale import LOW_RES, _bands, upscale_masks

sys.path.insert(0, str(Path(__file__).parent))
from speed import _click_feeds, _session, machine

SIZES = ((480, 640), (1500, 2250))
KINDS = ("official layout", "pair, numpy upscaling", "pair, upscaling in the graph")


def upscale_tables(orig_hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """The prototype's table inputs for an image of ``orig_hw`` (H, W), SAM v1: every band of
    ``_bands`` padded to the widest band's K taps (zero weights), shifted to stay in 0..255."""
    rows, cols = _bands(orig_hw, "sam")

    def pack(bands) -> tuple[np.ndarray, np.ndarray]:
        k = max(hi - lo for _, _, lo, hi, _ in bands)
        index = np.zeros((len(bands), k), np.int64)
        weights = np.zeros((len(bands), 64, k), np.float32)
        for b, (start, end, lo, hi, w) in enumerate(bands):
            first = min(lo, LOW_RES - k)
            index[b] = np.arange(first, first + k)
            weights[b, : end - start, lo - first : hi - first] = w
        return index.reshape(-1), weights

    col_index, col_weights = pack(cols)
    row_index, row_weights = pack(rows)
    return {
        "col_index": col_index,
        "col_weights": col_weights,
        "row_index": row_index,
        "row_weights": row_weights,
        "size": np.array(orig_hw, np.int64),
    }


def upscale_graph() -> onnx.GraphProto:
    """Token 0 of ``low_res_logits`` (1 x 4 x 256 x 256) -> ``masks`` (1 x H x W bool)."""
    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    inputs = [
        helper.make_tensor_value_info("low_res_logits", f, [1, 4, LOW_RES, LOW_RES]),
        helper.make_tensor_value_info("col_index", i64, ["NCK"]),
        helper.make_tensor_value_info("col_weights", f, ["NC", 64, "KC"]),
        helper.make_tensor_value_info("row_index", i64, ["NRK"]),
        helper.make_tensor_value_info("row_weights", f, ["NR", 64, "KR"]),
        helper.make_tensor_value_info("size", i64, [2]),
    ]
    ints = {"zero": [0], "two": [2], "minus1": [-1], "low": [LOW_RES], "z2": [0, 0], "axes": [1, 2]}
    consts = [helper.make_tensor(k, i64, [len(v)], v) for k, v in ints.items()]
    consts.append(helper.make_tensor("f0", f, [], [0.0]))
    node = helper.make_node
    nodes = [
        node("Gather", ["low_res_logits", "zero"], ["t0"], axis=1),  # 1 x 1 x 256 x 256
        node("Transpose", ["t0"], ["t0_xy"], perm=[0, 1, 3, 2]),  # columns as rows
        node("Gather", ["t0_xy", "col_index"], ["cols"], axis=2),  # 1 x 1 x NC*K x 256
        node("Shape", ["col_weights"], ["cw_shape"]),
        node("Gather", ["cw_shape", "two"], ["kc"]),
        node("Concat", ["zero", "minus1", "kc", "low"], ["cols_shape"], axis=0),
        node("Reshape", ["cols", "cols_shape"], ["cols_b"]),  # 1 x NC x K x 256
        node("MatMul", ["col_weights", "cols_b"], ["wide_t"]),  # 1 x NC x 64 x 256: W' x 256
        node("Concat", ["zero", "minus1", "low"], ["wide_t_shape"], axis=0),
        node("Reshape", ["wide_t", "wide_t_shape"], ["wide_t2"]),  # 1 x W' x 256
        node("Transpose", ["wide_t2"], ["wide"], perm=[0, 2, 1]),  # 1 x 256 x W'
        node("Gather", ["wide", "row_index"], ["rows"], axis=1),  # 1 x NR*K x W'
        node("Shape", ["row_weights"], ["rw_shape"]),
        node("Gather", ["rw_shape", "two"], ["kr"]),
        node("Shape", ["wide"], ["wide_shape"]),
        node("Gather", ["wide_shape", "two"], ["wp"]),
        node("Concat", ["zero", "minus1", "kr", "wp"], ["rows_shape"], axis=0),
        node("Reshape", ["rows", "rows_shape"], ["rows_b"]),  # 1 x NR x K x W'
        node("MatMul", ["row_weights", "rows_b"], ["full"]),  # 1 x NR x 64 x W'
        node("Greater", ["full", "f0"], ["inside"]),
        node("Concat", ["zero", "minus1", "wp"], ["padded_shape"], axis=0),
        node("Reshape", ["inside", "padded_shape"], ["padded"]),  # 1 x H' x W'
        node("Slice", ["padded", "z2", "size", "axes"], ["masks"]),  # 1 x H x W
    ]
    outputs = [helper.make_tensor_value_info("masks", TensorProto.BOOL, [1, "H", "W"])]
    return helper.make_graph(nodes, "upscale", inputs, outputs, consts)


def merged_click(click_path: Path, out_path: Path) -> Path:
    """``decoder_click.onnx`` with :func:`upscale_graph` after it: outputs ``low_res_logits``,
    ``iou_predictions`` and ``u_masks``; the tables are inputs ``u_col_index`` and so on."""
    click = onnx.load(str(click_path))
    upscale = helper.make_model(upscale_graph(), opset_imports=list(click.opset_import))
    upscale.ir_version = click.ir_version
    merged = compose.merge_models(click, upscale, io_map=[("low_res_logits", "low_res_logits")], prefix2="u_")
    kept = {o.name: o for o in [*click.graph.output, *merged.graph.output]}
    del merged.graph.output[:]
    merged.graph.output.extend(kept[name] for name in ("low_res_logits", "iou_predictions", "u_masks"))
    onnx.checker.check_model(merged)
    onnx.save(merged, str(out_path))
    return out_path


def _pair_feeds(files: dict[str, str], hw: tuple[int, int], threads: int) -> dict[str, np.ndarray]:
    """The click graph's feeds for ``bench/speed.py``'s click at ``hw``: the per-image tensors
    (the image graph's session is gone on return: its thread pool would spin beside the
    click's) and the prompt."""
    feeds = _click_feeds(np.random.default_rng(0), *hw)
    image = _session(Path(files["image"]), threads, "all")
    names = [o.name for o in image.get_outputs()]
    tensors = dict(zip(names, image.run(None, {"image_embeddings": feeds["image_embeddings"]}), strict=True))
    return {**tensors, **{k: feeds[k] for k in PROMPT_INPUTS}}


def _table_feeds(hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """:func:`upscale_tables` under the merged graph's input names."""
    return {f"u_{k}": v for k, v in upscale_tables(hw).items()}


def _runner(kind: str, files: dict[str, str], hw: tuple[int, int], threads: int):
    """A function that runs one click of ``kind`` (its per-image work done here, untimed)."""
    if kind == KINDS[0]:
        feeds = _click_feeds(np.random.default_rng(0), *hw)
        session = _session(Path(files["official"]), threads, "all")
        return lambda: session.run(None, feeds)
    feeds = _pair_feeds(files, hw, threads)
    if kind == KINDS[1]:
        click = _session(Path(files["click"]), threads, "all")

        def run() -> None:
            low_res, _ = click.run(None, feeds)
            upscale_masks(low_res[0, :1], hw, "sam")

        return run
    merged = _session(Path(files["merged"]), threads, "all")
    feeds.update(_table_feeds(hw))
    return lambda: merged.run(None, feeds)


def measure(kind: str, files: dict[str, str], hw: tuple[int, int], threads: int, repeats: int) -> float:
    """Median ms of ``repeats`` clicks after 8 warm-up clicks."""
    run = _runner(kind, files, hw, threads)
    for _ in range(8):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def check_masks(files: dict[str, str], hw: tuple[int, int]) -> int:
    """Pixels where the merged graph's mask differs from ``upscale_masks`` of its token 0."""
    feeds = {**_pair_feeds(files, hw, 1), **_table_feeds(hw)}
    low_res, _, masks = _session(Path(files["merged"]), 1, "all").run(None, feeds)
    want = upscale_masks(low_res[0, :1], hw, "sam")
    if masks.shape != want.shape:
        raise SystemExit(f"merged graph: masks {masks.shape}, expected {want.shape}")
    return int((masks != want).sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path, help="a SAM v1 sam-export directory with the fast pair")
    p.add_argument("--checkpoint", help="the .pth the export came from (required)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        spec = json.loads(args.one)
        ms = measure(spec["kind"], spec["files"], tuple(spec["hw"]), spec["threads"], spec["repeats"])
        print(json.dumps(ms))
        return
    if not args.checkpoint:
        p.error("--checkpoint is required (the official layout is traced from it)")
    graphs = json.loads((args.model_dir / "export.json").read_text())["graphs"]
    if "decoder_click" not in graphs:
        raise SystemExit(f"{args.model_dir}: no fast decoder pair (export without --no-fast-decoder)")
    with tempfile.TemporaryDirectory(prefix="sam-bench-") as scratch:
        speed = [sys.executable, str(Path(__file__).with_name("speed.py"))]
        proc = subprocess.run(
            [*speed, "--export-official", scratch, "--checkpoint", args.checkpoint],
            capture_output=True,
            text=True,
            check=True,
        )
        files = {
            "official": json.loads(proc.stdout.strip().splitlines()[-1])["official_decoder"],
            "image": str(args.model_dir / graphs["decoder_image"]["file"]),
            "click": str(args.model_dir / graphs["decoder_click"]["file"]),
        }
        files["merged"] = str(merged_click(Path(files["click"]), Path(scratch) / "click_merged.onnx"))
        for hw in SIZES:
            differ = check_masks(files, hw)
            if differ:
                raise SystemExit(
                    f"{hw[0]}x{hw[1]}: the merged graph's mask differs from numpy's in {differ} pixels"
                )
            print(f"{hw[0]}x{hw[1]}: the merged graph's mask equals numpy's")
        print(f"machine: {machine()}, {args.threads} thread(s), median of {args.repeats} clicks per process")
        results: dict[tuple, list[float]] = {}
        for r in range(args.rounds):
            for hw in SIZES:
                for kind in KINDS:
                    spec = {
                        "kind": kind,
                        "files": files,
                        "hw": hw,
                        "threads": args.threads,
                        "repeats": args.repeats,
                    }
                    out = subprocess.run(
                        [sys.executable, __file__, "--one", json.dumps(spec), str(args.model_dir)],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    results.setdefault((hw, kind), []).append(json.loads(out.stdout.strip().splitlines()[-1]))
            line = []
            for hw in SIZES:
                official = results[(hw, KINDS[0])][r]
                cells = [
                    f"{results[(hw, k)][r]:.2f} ms ({official / results[(hw, k)][r]:.2f}x)" for k in KINDS[1:]
                ]
                line.append(f"{hw[0]}x{hw[1]}: official {official:.1f} ms, " + ", ".join(cells))
            print(f"round {r + 1}: " + "; ".join(line), flush=True)
        print(f"{'':14s}" + "".join(f"{k:>32s}" for k in KINDS))
        for hw in SIZES:
            medians = [statistics.median(results[(hw, k)]) for k in KINDS]
            cells = [f"{m:.2f} ms ({medians[0] / m:.2f}x)" for m in medians]
            print(f"{hw[0]}x{hw[1]:<9d}" + "".join(f"{c:>32s}" for c in cells))


if __name__ == "__main__":
    main()
