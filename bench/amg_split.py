"""Where automatic mask generation spends its time (a benchmark, not a test).

    python bench/amg_split.py MODEL_DIR [--image IMAGE] [--threads 1 2] [--repeats 1] [--json OUT.json]

For the default 32 x 32 grid on a 640 x 480 image (the reference kit's landscape image when it is
beside the repository, else a synthetic one) and each thread count, prints the split: encoder,
decoder batches, post-processing (everything else). Then the decoder's cost per prompt in batches
of 64 against one prompt per call. Rates in GFLOP/s use the issue's figures for ViT-B: 0.97 TFLOP
per encoder run and about 3.7 GFLOP per decoded prompt; they are meaningful for ViT-B exports only.
Targets (issue 5): batched decoding reaches at least half the encoder's GFLOP/s, and
post-processing takes at most 25% of the decoder time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from sam_onnx.images import load_image
from sam_onnx.runtime import SamPredictor, SessionConfig
from sam_onnx.runtime.amg import AutomaticMaskGenerator
from sam_onnx.runtime.core.predictor import DECODER_BYTES

ENCODER_GFLOP = 970.0  # ViT-B image encoder, one 1024 x 1024 input
DECODER_GFLOP = 3.7  # ViT-B mask decoder, one prompt (issue 5's figure)
KIT_IMAGE = (
    Path(__file__).resolve().parents[2] / "shared" / "sam_reference" / "images" / "landscape_480x640.png"
)


def amg_split(predictor: SamPredictor, image: np.ndarray, repeats: int, keep_all: bool) -> dict:
    # the official defaults: 32 x 32, batches of 64; keep_all: no IoU/stability filter
    filters = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0} if keep_all else {}
    generator = AutomaticMaskGenerator(predictor, **filters)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        masks = generator.generate(image)
        runs.append({**generator.timings, "total": time.perf_counter() - start, "masks": len(masks)})
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def per_prompt_ms(predictor: SamPredictor, image: np.ndarray, batch: int, prompts: int = 64) -> float:
    """Milliseconds per decoded prompt, ``prompts`` clicks decoded ``batch`` at a time."""
    emb = predictor.embed(image)
    h, w = image.shape[:2]
    points = np.random.default_rng(0).uniform((0, 0), (w, h), (prompts, 2))
    list(predictor.iter_point_masks(points[:batch], emb, batch=batch))  # warm-up
    start = time.perf_counter()
    for _ in predictor.iter_point_masks(points, emb, batch=batch):
        pass
    return (time.perf_counter() - start) * 1000 / prompts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="sam-export output directory (ViT-B for meaningful GFLOP/s)")
    p.add_argument("--image", type=Path, default=KIT_IMAGE if KIT_IMAGE.exists() else None)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument(
        "--keep-all",
        action="store_true",
        help="no IoU/stability filtering: every mask is post-processed (random weights pass no filter)",
    )
    args = p.parse_args()
    image = (
        load_image(args.image)
        if args.image
        else np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)
    )
    h, w = image.shape[:2]
    filters = "no filters (--keep-all)" if args.keep_all else "official filters"
    print(
        f"image {w}x{h}, 32x32 grid, batches of 64, {filters}; decoder runs hold <= {DECODER_BYTES >> 20} MiB"
    )
    header = f"{'threads':>7} {'encoder s':>9} {'decoder s':>9} {'post s':>7} {'total s':>7} {'masks':>5} "
    header += f"{'enc GF/s':>8} {'dec GF/s':>8} {'dec/enc':>7} {'post/dec':>8} "
    header += f"{'ms/prompt b64':>13} {'ms/prompt b1':>12}"
    print(header)
    results = []
    for threads in args.threads:
        predictor = SamPredictor.from_export(args.model, config=SessionConfig(intra_op_threads=threads))
        split = amg_split(predictor, image, args.repeats, args.keep_all)
        enc_rate = ENCODER_GFLOP / split["encoder"]
        dec_rate = DECODER_GFLOP * split["prompts"] / split["decoder"]
        row = {
            "threads": threads,
            **split,
            "encoder_gflops": enc_rate,
            "decoder_gflops": dec_rate,
            "decoder_over_encoder_rate": dec_rate / enc_rate,
            "post_over_decoder": split["postprocess"] / split["decoder"],
            "ms_per_prompt_batch64": per_prompt_ms(predictor, image, 64),
            "ms_per_prompt_batch1": per_prompt_ms(predictor, image, 1),
        }
        results.append(row)
        print(
            f"{threads:>7} {row['encoder']:>9.2f} {row['decoder']:>9.2f} {row['postprocess']:>7.2f} "
            f"{row['total']:>7.2f} {row['masks']:>5} {enc_rate:>8.0f} {dec_rate:>8.0f} "
            f"{row['decoder_over_encoder_rate']:>7.2f} {row['post_over_decoder']:>8.2f} "
            f"{row['ms_per_prompt_batch64']:>13.1f} {row['ms_per_prompt_batch1']:>12.1f}"
        )
    print("targets: dec/enc >= 0.50 (decoder GFLOP/s at least half the encoder's), post/dec <= 0.25")
    if args.json:
        args.json.write_text(json.dumps({"image_hw": [h, w], "runs": results}, indent=1))


if __name__ == "__main__":
    main()
