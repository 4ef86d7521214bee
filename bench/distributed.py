"""Images per minute of ``sam-onnx amg``: the local engine, and Ray Data with 1 and 2 workers.

    python bench/distributed.py MODEL_DIR [--images FOLDER] [--points-per-side 8] [--repeat 2]

The same images in each run (by default the reference kit's three images and their mirror images:
six), the same generator options, one fresh output folder per run. Each run is timed from start
to the last file written, with the model opened inside it: the local engine opens one predictor,
each Ray worker its own (the cost a real job pays once per worker). Ray is started once, with
this machine's CPUs, before the runs. Local uses onnxruntime's default threads (one per core);
Ray's workers split the cores (1 worker x all cores, 2 workers x half each). Ray runs its workers
at nice 15 by default, which on a machine busy with other work would time the priority, not the
engine: the bench starts Ray with worker niceness 0, the local engine's.

Not a test: the figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sam_onnx.runtime.batch.distributed import RayOptions, import_ray, list_inputs, run_job
from sam_onnx.runtime.batch.jobs import JobSpec, find_images, open_job, plan_items, process_item

KIT_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "sam_reference" / "images"


def kit_images(folder: Path) -> Path:
    """The kit's images and their left-right mirrors, as PNGs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(KIT_IMAGES.glob("*.png")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        Image.fromarray(rgb).save(folder / path.name)
        Image.fromarray(np.ascontiguousarray(rgb[:, ::-1])).save(folder / f"mirror_{path.name}")
    return folder


def run_local(spec: JobSpec, images: list[Path]) -> tuple[float, int]:
    """The local engine's loop (what ``sam-onnx amg`` runs): seconds and images done."""
    start = time.perf_counter()
    Path(spec.output).mkdir(parents=True)
    job = open_job(spec)
    records = [process_item(job, item, Path(item.path).read_bytes()) for item in plan_items(images)]
    failed = [r.error for r in records if r.status != "done"]
    assert not failed, failed
    return time.perf_counter() - start, len(records)


def run_ray(spec: JobSpec, images: list[Path], workers: int, threads: int) -> tuple[float, int]:
    summary = run_job(spec, list_inputs(images), RayOptions(workers=workers, threads_per_worker=threads))
    return summary.seconds, summary.done


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="sam-export output directory")
    p.add_argument("--images", type=Path, help="a folder of images (default: the kit's six)")
    p.add_argument("--points-per-side", type=int, default=8, help="AMG grid (default 8: 64 clicks)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each engine (the best is shown)")
    args = p.parse_args()
    cores = os.cpu_count() or 1
    ray = import_ray()
    with tempfile.TemporaryDirectory(prefix="sam_onnx_bench_") as tmp:
        images = find_images([args.images or kit_images(Path(tmp) / "images")])
        options = {"points_per_side": args.points_per_side}
        os.environ.setdefault("RAY_worker_niceness", "0")  # read by the Ray that init starts
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        engines = [
            ("local", lambda spec: run_local(spec, images)),
            (f"ray 1 x {cores}", lambda spec: run_ray(spec, images, 1, cores)),
            (f"ray 2 x {max(1, cores // 2)}", lambda spec: run_ray(spec, images, 2, max(1, cores // 2))),
        ]
        rows = []
        for name, engine in engines:
            best = None
            for i in range(args.repeat):
                spec = JobSpec("amg", args.model, f"{tmp}/{name.replace(' ', '_')}_{i}", amg_options=options)
                seconds, done = engine(spec)
                assert done == len(images), f"{name}: {done} of {len(images)} images done"
                best = seconds if best is None else min(best, seconds)
                print(f"{name} run {i + 1}: {seconds:.1f} s", flush=True)
            rows.append((name, best))
        ray.shutdown()
    print(f"{len(images)} images, points_per_side {args.points_per_side}, {cores} cores, model {args.model}")
    print(f"{'engine (workers x threads)':<28} {'seconds':>8} {'images/min':>11}")
    for name, seconds in rows:
        print(f"{name:<28} {seconds:>8.1f} {60 * len(images) / seconds:>11.1f}")


if __name__ == "__main__":
    main()
