"""Peak memory of ``sam-onnx track`` on a long generated clip (a benchmark, not a test).

    python bench/video_memory.py EXPORT_DIR [--frames 600] [--size 720x1280] [--objects 2] \\
        [--max-frames N] [--work DIR]

Writes an MP4 of ``--frames`` frames (``--size`` H x W; two shapes moving on a textured
background; made once in ``--work``), then runs the command a user runs, ``sam-onnx track
CLIP.mp4 -m EXPORT_DIR -o OUT --point 0:1:... --point 0:2:... -q`` (``--max-frames`` passes on
to it), and samples the process every half second from ``/proc``: its resident memory (VmRSS),
its peak (VmHWM, the kernel's high-water mark) and how many frames the run has written. It
prints the samples as they come (every ``--every`` frames) and at the end the peak, the resident
memory when the memory bank filled (frame 8) and the growth per tracked frame after that, which
is what the per-object state costs (the official predictor keeps every tracked frame's memory
for later corrections, and so does ours: about 0.8 MB per object per frame).

With ``--official-python PY --official-checkpoint CKPT`` (a venv with sam2 1.1.0, see
bench/video_speed.py) it also writes the clip's frames as JPEGs and measures the peak memory of
the official ``SAM2VideoPredictor.init_state`` on them: its loader holds every frame as a
1024 x 1024 float32 tensor before tracking starts.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SAMPLE_SECONDS = 0.5
FULL_BANK_FRAME = 8  # SAM 2.1 (num_maskmem 7): from here on a frame attends to a full bank
# Resident memory moves by tens of MB between frames (the attention's buffers come and go); the
# state's ~0.8 MB per object and frame shows only over this many frames.
MIN_GROWTH_SPAN = 50


def make_clip(path: Path, frames: int, hw: tuple[int, int]) -> list[tuple[int, int]]:
    """An MP4 (mp4v) of ``frames`` frames of ``hw``; returns each object's (x, y) on frame 0."""
    import cv2

    h, w = hw
    rng = np.random.default_rng(0)
    background = (
        rng.integers(60, 120, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1)
    )
    starts = [(w // 4, h // 3), (w // 2, 2 * h // 3)]
    if not path.is_file():
        tmp = path.with_suffix(".part.mp4")
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
        for i in range(frames):
            frame = np.ascontiguousarray(background[:h, :w])
            x = int(starts[0][0] + (w // 3) * np.sin(i / 40))
            cv2.circle(frame, (x, starts[0][1]), h // 10, (50, 60, 220), -1)  # BGR
            y = int(starts[1][1] + (h // 8) * np.cos(i / 30))
            s = h // 12
            cv2.rectangle(frame, (starts[1][0] - s, y - s), (starts[1][0] + s, y + s), (230, 90, 40), -1)
            writer.write(frame)
        writer.release()
        tmp.rename(path)
    first = [(starts[0][0], starts[0][1]), (starts[1][0], starts[1][1] + h // 8)]
    return first


OFFICIAL_INIT = """
import resource, sys, time, torch
from sam2.build_sam import build_sam2_video_predictor
torch.set_num_threads(2)
predictor = build_sam2_video_predictor(sys.argv[1], sys.argv[2], device="cpu")
start = time.perf_counter()
state = predictor.init_state(sys.argv[3])
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(state["num_frames"], time.perf_counter() - start, peak_mb)
"""


def official_init_peak(python: str, checkpoint: str, variant: str, clip: Path) -> None:
    """Peak RSS of the official ``init_state`` on the clip's frames as ``<index>.jpg``."""
    import cv2

    frames = clip.with_suffix("")
    if not frames.is_dir():
        tmp = frames.with_name(frames.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        video = cv2.VideoCapture(str(clip))
        index = 0
        while True:
            ok, frame = video.read()
            if not ok:
                break
            cv2.imwrite(str(tmp / f"{index:05d}.jpg"), frame)
            index += 1
        tmp.rename(frames)
    config = f"configs/sam2.1/sam2.1_{variant}.yaml"
    out = subprocess.run(
        [python, "-c", OFFICIAL_INIT, config, checkpoint, str(frames)], capture_output=True, text=True
    )
    if out.returncode != 0:
        sys.exit(f"official init_state failed:\n{out.stderr[-2000:]}")
    num_frames, seconds, peak = out.stdout.split()[-3:]
    print(f"official init_state: {num_frames} frames in {float(seconds):.0f} s, peak RSS {peak} MB")


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process in MB (empty once it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) // 1024
    return out


def _frames_done(out: Path) -> int:
    """Frames written so far: the run writes into a staging folder beside OUT, swapped in at the end."""
    folders = [p for p in out.parent.glob(f"{out.name}*") if p.is_dir()]
    folders += [p for p in out.parent.glob(f".{out.name}*") if p.is_dir()]
    return max((sum(1 for _ in p.glob("*.png")) for p in folders), default=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--frames", type=int, default=600)
    p.add_argument("--size", default="720x1280", help="H x W")
    p.add_argument("--objects", type=int, choices=(1, 2), default=2)
    p.add_argument("--max-frames", type=int, help="passed to sam-onnx track: stop after this many")
    p.add_argument("--every", type=int, default=10, help="print a sample every this many frames")
    p.add_argument("--work", type=Path, default=Path("bench_video_memory"))
    p.add_argument("--official-python", help="python of a venv with sam2 1.1.0: also time its init_state")
    p.add_argument("--official-checkpoint", help="the checkpoint the export came from")
    p.add_argument("--variant", default="hiera_t", help="the export's variant (the official config)")
    p.add_argument("--official-only", action="store_true", help="skip sam-onnx track")
    args = p.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    args.work.mkdir(parents=True, exist_ok=True)
    clip = args.work / f"clip_{args.frames}_{h}x{w}.mp4"
    clicks = make_clip(clip, args.frames, (h, w))
    if args.official_python:
        official_init_peak(args.official_python, args.official_checkpoint, args.variant, clip)
    if args.official_only:
        return
    out = args.work / "tracks"
    shutil.rmtree(out, ignore_errors=True)
    sam_onnx = Path(sys.executable).with_name("sam-onnx")
    command = [str(sam_onnx), "track", str(clip), "-m", str(args.model_dir), "-o", str(out), "-q"]
    for obj_id, (x, y) in enumerate(clicks[: args.objects], start=1):
        command += ["--point", f"0:{obj_id}:{x},{y}"]
    if args.max_frames is not None:
        command += ["--max-frames", str(args.max_frames)]
    print(" ".join(command), flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(command)
    samples, printed = [], -1
    while proc.poll() is None:
        status = _status(proc.pid)
        if status:
            done = _frames_done(out)
            samples.append((time.perf_counter() - start, done, status["VmRSS"], status["VmHWM"]))
            if done // args.every != printed:
                printed = done // args.every
                print(
                    f"  {samples[-1][0]:7.0f} s  frames {done:4d}  "
                    f"rss {status['VmRSS']:6d} MB  peak {status['VmHWM']:6d} MB",
                    flush=True,
                )
        time.sleep(SAMPLE_SECONDS)
    if proc.returncode != 0:
        sys.exit(f"sam-onnx track failed (exit {proc.returncode})")
    report(samples, time.perf_counter() - start, args)


def report(samples: list[tuple[float, int, int, int]], seconds: float, args) -> None:
    peak = max(s[3] for s in samples)
    frames = max(s[1] for s in samples)
    print(
        f"\nclip {args.frames} frames {args.size}, {args.objects} objects, "
        f"{frames} frames written in {seconds:.0f} s"
    )
    print(f"peak RSS (VmHWM): {peak} MB")
    settled = [s for s in samples if s[1] >= FULL_BANK_FRAME]
    if not settled or settled[-1][1] - settled[0][1] < MIN_GROWTH_SPAN:
        print(
            f"under {MIN_GROWTH_SPAN} frames past frame {FULL_BANK_FRAME}: too few to see the state's "
            "growth in the resident memory"
        )
    else:
        first, last = settled[0], settled[-1]
        growth = (last[2] - first[2]) / (last[1] - first[1])
        print(
            f"resident at frame {first[1]}: {first[2]} MB, at frame {last[1]}: {last[2]} MB "
            f"-> {growth:.2f} MB per tracked frame ({growth / args.objects:.2f} per object)"
        )


if __name__ == "__main__":
    main()
