"""Peak resident memory of automatic mask generation with the defaults (a benchmark, not a test).

    python bench/amg_memory.py MODEL_DIR [--image IMAGE] [--threads N] [--json OUT.json]

Runs ``AutomaticMaskGenerator`` with the official defaults (32 x 32 grid, batches of 64) on a
640 x 480 image (the reference kit's landscape image when it is beside the repository, else a
synthetic one) in a fresh child process, and prints the child's peak resident set size
(``getrusage(RUSAGE_CHILDREN).ru_maxrss``), with its peaks after opening the graphs and after the
encoder. Target (issue 15): at most 3 GB for the fp32 ViT-B export on onnxruntime CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

KIT_IMAGE = (
    Path(__file__).resolve().parents[2] / "shared" / "sam_reference" / "images" / "landscape_480x640.png"
)
TARGET_BYTES = 3 * 10**9


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(model: Path, image_path: Path | None, threads: int) -> None:
    """The measured process: prints one JSON line with its peaks and the generator's figures."""
    import numpy as np

    from sam_onnx.images import load_image
    from sam_onnx.runtime import SamPredictor, SessionConfig
    from sam_onnx.runtime.amg import AutomaticMaskGenerator

    image = (
        load_image(image_path)
        if image_path
        else np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)
    )
    predictor = SamPredictor.from_export(model, config=SessionConfig(intra_op_threads=threads))
    opened = _peak_mib()
    predictor.embed(image)
    encoded = _peak_mib()
    start = time.perf_counter()
    masks = AutomaticMaskGenerator(predictor).generate(image)
    seconds = time.perf_counter() - start
    figures = {"image_hw": list(image.shape[:2]), "masks": len(masks), "seconds": round(seconds, 2)}
    figures |= {"peak_mib_opened": round(opened), "peak_mib_encoder": round(encoded)}
    print(json.dumps(figures))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="sam-export output directory (fp32 ViT-B for the target)")
    p.add_argument("--image", type=Path, default=KIT_IMAGE if KIT_IMAGE.exists() else None)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (default: one per core)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.model, args.image, args.threads)
        return
    cmd = [sys.executable, __file__, str(args.model), "--child", "--threads", str(args.threads)]
    if args.image:
        cmd += ["--image", str(args.image)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    figures["peak_bytes"] = peak
    h, w = figures["image_hw"]
    print(
        f"AMG defaults on {w}x{h}: {figures['masks']} masks in {figures['seconds']} s; "
        f"peak RSS {peak / 2**20:.0f} MiB ({peak / 1e9:.2f} GB; after opening the graphs "
        f"{figures['peak_mib_opened']} MiB, after one encoder run {figures['peak_mib_encoder']} MiB); "
        f"target <= {TARGET_BYTES / 1e9:.0f} GB: {'met' if peak <= TARGET_BYTES else 'NOT met'}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
