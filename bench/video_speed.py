"""Video tracking speed, sam-onnx beside the official ``SAM2VideoPredictor`` (a benchmark, not a test).

    python bench/video_speed.py --model hiera_t=EXPORT_DIR:CHECKPOINT.pt [--model hiera_b+=...] \\
        --official-python OFFICIAL_VENV/bin/python [--objects 1 2] [--frames 10] [--rounds 2]

Every row tracks the same generated clip (``--frames`` JPEG frames of 480 x 854, two shapes
moving; written once) in its own subprocess: the objects are clicked on frame 0, then the clip is
propagated forward. A row is (engine, variant, objects):

* ``sam-onnx``: :class:`~sam_onnx.runtime.video.predictor.VideoPredictor` on the export, CPU
  provider, ``--threads`` intra-op threads; its model is wrapped so that each of the frame's steps
  is timed: encoder (``encode``), memory attention (``condition_on_memory``), heads
  (``track_heads`` / ``mask_as_output``), memory encoder (``encode_memory``); the rest (frame
  decoding, bookkeeping, hole filling, upscaling to the video's size) is "other";
* ``official``: sam2 1.1.0's ``build_sam2_video_predictor`` on the checkpoint, float32 on the CPU,
  ``torch.set_num_threads(--threads)``, run by ``--official-python`` (a venv with sam2 installed
  from its sdist: ``SAM2_BUILD_CUDA=0 pip install --no-build-isolation --no-deps sam2==1.1.0``
  plus torch, hydra-core, iopath, pillow, tqdm; this project's code is not imported there). Its
  steps are timed by wrapping ``forward_image``, ``memory_attention``, ``_forward_sam_heads``
  and ``_encode_new_memory``. Two differences from a GPU run, both in the official code's favour
  or neutral: on a CPU-only install it skips hole filling (it warns), and the stored bfloat16
  memory is turned back to float32 after rounding (without that the official code stops at the
  first tracked frame on CPU: "mat1 and mat2 must have the same dtype"; the reference kit ran it
  the same way). Its ``init_state`` loads and resizes every frame up front; that time is reported
  apart ("init"), not in the per-frame figures.

A frame's time is the wall time between two frames yielded by ``propagate_in_video``. The
table's per-frame figures are the mean over the frames tracked with a full memory bank (frame
index >= num_maskmem; all tracked frames when the clip is shorter); fps is its inverse; the ratio
is official time / sam-onnx time for the same variant and objects. With ``--rounds N`` each row
runs N times, rows interleaved (A B A B), and every round is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

NUM_MASKMEM = 7  # SAM 2.1: the memory bank is full from this frame on
FRAME_HW = (480, 854)
STAGES = ("encoder", "memory_attention", "heads", "memory_encoder")
# (x, y) clicks on frame 0 of the generated clip, one per object: the disc's and the square's centres
CLICKS = ((150.0, 200.0), (560.0, 300.0))


def make_clip(folder: Path, frames: int) -> None:
    """``frames`` JPEGs ``00000.jpg ...`` of ``FRAME_HW``: a textured background, a disc moving
    right and a square moving down, 4 pixels a frame."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    h, w = FRAME_HW
    background = (rng.integers(60, 120, (h // 8, w // 8, 3), dtype=np.uint8)).repeat(8, 0).repeat(8, 1)
    for i in range(frames):
        image = Image.fromarray(np.ascontiguousarray(background[:h, :w]))
        draw = ImageDraw.Draw(image)
        (cx, cy), (sx, sy) = CLICKS
        draw.ellipse((cx - 60 + 4 * i, cy - 60, cx + 60 + 4 * i, cy + 60), fill=(220, 60, 50))
        draw.rectangle((sx - 50, sy - 50 + 4 * i, sx + 50, sy + 50 + 4 * i), fill=(40, 90, 230))
        image.save(folder / f"{i:05d}.jpg", quality=95)


class _Timers:
    """Seconds spent per stage, reset per frame."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)

    def wrap(self, stage: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start

        return timed

    def take(self) -> dict[str, float]:
        out, self.seconds = self.seconds, dict.fromkeys(STAGES, 0.0)
        return out


def _track(predictor, state, objects: int, timers: _Timers) -> list[dict]:
    """Click the objects on frame 0, propagate forward; per yielded frame its time and stages."""
    for obj_id in range(1, objects + 1):
        point = np.array([CLICKS[obj_id - 1]], np.float32)
        predictor.add_new_points_or_box(state, 0, obj_id, points=point, labels=np.array([1], np.int32))
    timers.take()
    frames, last = [], time.perf_counter()
    for frame_idx, _obj_ids, _masks in predictor.propagate_in_video(state):
        now = time.perf_counter()
        frames.append({"frame": int(frame_idx), "seconds": now - last, **timers.take()})
        last = now
    return frames


def run_ours(model_dir: str, clip: str, objects: int, threads: int) -> dict:
    from sam_onnx.runtime.core.session import SessionConfig
    from sam_onnx.runtime.video.predictor import VideoPredictor

    config = SessionConfig(providers=("cpu",), intra_op_threads=threads)
    predictor = VideoPredictor.from_export(model_dir, session_config=config)
    timers, model = _Timers(), predictor.model
    model.encode = timers.wrap("encoder", model.encode)
    model.condition_on_memory = timers.wrap("memory_attention", model.condition_on_memory)
    model.track_heads = timers.wrap("heads", model.track_heads)
    model.mask_as_output = timers.wrap("heads", model.mask_as_output)
    model.encode_memory = timers.wrap("memory_encoder", model.encode_memory)
    start = time.perf_counter()
    state = predictor.init_state(clip)
    init = time.perf_counter() - start
    return {"init": init, "frames": _track(predictor, state, objects, timers)}


def run_official(checkpoint: str, variant: str, clip: str, objects: int, threads: int) -> dict:
    import torch
    from sam2.build_sam import build_sam2_video_predictor
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    torch.set_num_threads(threads)
    config = f"configs/sam2.1/sam2.1_{variant}.yaml"  # the official config names are our variant names
    predictor = build_sam2_video_predictor(config, checkpoint, device="cpu")
    # bfloat16 storage, float32 use (see the module docstring)
    single, encoder_run = (
        SAM2VideoPredictor._run_single_frame_inference,
        SAM2VideoPredictor._run_memory_encoder,
    )

    def run_single(self, *args, **kwargs):
        out, masks = single(self, *args, **kwargs)
        if out["maskmem_features"] is not None:
            out["maskmem_features"] = out["maskmem_features"].float()
        return out, masks

    def run_memory_encoder(self, *args, **kwargs):
        features, pos = encoder_run(self, *args, **kwargs)
        return features.float(), pos

    predictor._run_single_frame_inference = run_single.__get__(predictor)
    predictor._run_memory_encoder = run_memory_encoder.__get__(predictor)
    timers = _Timers()
    predictor.forward_image = timers.wrap("encoder", predictor.forward_image)
    predictor.memory_attention.forward = timers.wrap("memory_attention", predictor.memory_attention.forward)
    predictor._forward_sam_heads = timers.wrap("heads", predictor._forward_sam_heads)
    predictor._encode_new_memory = timers.wrap("memory_encoder", predictor._encode_new_memory)
    with torch.inference_mode():
        start = time.perf_counter()
        state = predictor.init_state(clip)
        init = time.perf_counter() - start
        return {"init": init, "frames": _track(predictor, state, objects, timers)}


def _one(row: dict) -> dict:
    if row["engine"] == "sam-onnx":
        result = run_ours(row["model_dir"], row["clip"], row["objects"], row["threads"])
    else:
        result = run_official(row["checkpoint"], row["variant"], row["clip"], row["objects"], row["threads"])
    import resource

    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_row(row: dict, python: str) -> dict:
    out = subprocess.run(
        [python, __file__, "--one", json.dumps(row)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(
            f"row {row['engine']} {row['variant']} x{row['objects']} failed:\n{out.stderr[-3000:]}"
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(result: dict) -> dict:
    frames = result["frames"][1:]  # frame 0 is the prompted frame: no tracking there
    full = [f for f in frames if f["frame"] >= NUM_MASKMEM] or frames
    mean = {key: float(np.mean([f[key] for f in full])) for key in ("seconds", *STAGES)}
    mean["other"] = mean["seconds"] - sum(mean[s] for s in STAGES)
    return {
        "per_frame": mean,
        "frames_averaged": len(full),
        "init": result["init"],
        "peak_rss_mb": result["peak_rss_mb"],
    }


def print_round(results: dict, rows: list[dict], label: str) -> None:
    print(f"\n{label}: seconds per tracked frame (mean over frames >= {NUM_MASKMEM}), split by stage")
    header = f"{'variant':9} {'obj':>3} {'engine':9} {'frame':>7} {'fps':>6} " + " ".join(
        f"{s[:10]:>10}" for s in (*STAGES, "other")
    )
    print(header + f" {'init':>6} {'peak MB':>8} {'x official':>10}")
    for row in rows:
        s = results[_key(row)]
        m = s["per_frame"]
        official = results[_key({**row, "engine": "official"})]["per_frame"]["seconds"]
        ratio = official / m["seconds"]
        cells = " ".join(f"{m[k]:10.2f}" for k in (*STAGES, "other"))
        print(
            f"{row['variant']:9} {row['objects']:3d} {row['engine']:9} {m['seconds']:7.2f} "
            f"{1 / m['seconds']:6.3f} {cells} {s['init']:6.1f} {s['peak_rss_mb']:8.0f} {ratio:10.2f}"
        )
    for row in rows:
        if row["engine"] == "sam-onnx":
            m = results[_key(row)]["per_frame"]
            share = 1 - m["encoder"] / m["seconds"]
            print(f"  {row['variant']} x{row['objects']} sam-onnx: non-encoder work {share:.0%} of the frame")


def _key(row: dict) -> str:
    return f"{row['engine']}/{row['variant']}/{row['objects']}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=[], help="VARIANT=EXPORT_DIR:CHECKPOINT")
    p.add_argument("--official-python", help="python of a venv with the official sam2 installed")
    p.add_argument("--objects", type=int, nargs="+", default=[1, 2])
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--work", type=Path, default=Path("bench_video_work"))
    p.add_argument("--json", type=Path, help="write every frame's figures here")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(_one(json.loads(args.one))))
        return
    clip = args.work / f"clip_{args.frames}"
    if not clip.is_dir():
        make_clip(clip, args.frames)
    rows = []
    for spec in args.model:
        variant, _, paths = spec.partition("=")
        model_dir, _, checkpoint = paths.partition(":")
        for objects in args.objects:
            common = {"variant": variant, "objects": objects, "clip": str(clip), "threads": args.threads}
            rows.append({**common, "engine": "sam-onnx", "model_dir": model_dir})
            rows.append({**common, "engine": "official", "checkpoint": checkpoint})
    record = []
    for round_index in range(args.rounds):
        results = {}
        for row in rows:
            python = (
                sys.executable if row["engine"] == "sam-onnx" else (args.official_python or sys.executable)
            )
            raw = run_row(row, python)
            results[_key(row)] = summary(raw)
            record.append({"round": round_index, **row, **raw})
            print(f"  done {_key(row)}: {results[_key(row)]['per_frame']['seconds']:.2f} s/frame", flush=True)
        print_round(results, rows, f"round {round_index + 1} of {args.rounds}")
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
