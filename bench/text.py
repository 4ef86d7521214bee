"""Text prompts per stage against transformers' PyTorch on CPU, in the same run, interleaved.

    python bench/text.py DETECTOR_EXPORT HF_FOLDER SAM_EXPORT [--threads 2] [--repeats 5]

DETECTOR_EXPORT: sam-export-detector's folder of HF_FOLDER (e.g. Grounding-DINO-tiny-shaped random
weights: python -m sam_onnx.export.grounding_dino_random swint HF_FOLDER). Stages:

- detector: the ONNX graph (onnxruntime, default engine) vs transformers' GroundingDinoForObjectDetection
  on the same canvas pixels, pixel mask and prompt (5 phrases);
- SAM encoder and decoder: SamPredictor's embed and predict_boxes on the found boxes (onnxruntime only;
  transformers has no model for our SAM export, so these rows have no PyTorch column).

Each repeat runs the contenders one after the other (interleaved), so load from elsewhere hits both
alike; the median is printed. Peak memory: this process's resident peak after each contender's
first run (ru_maxrss, so the PyTorch figure includes what onnxruntime took before it).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import numpy as np

PROMPT = "cat. dog. car. tree. person."


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("detector", type=Path)
    p.add_argument("hf_folder", type=Path)
    p.add_argument("sam", type=Path)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from transformers import GroundingDinoForObjectDetection

    from sam_onnx.detector import DETECTOR_GRAPH, phrase_structure
    from sam_onnx.runtime import SamPredictor
    from sam_onnx.runtime.core.session import SessionConfig
    from sam_onnx.runtime.text import Detector
    from sam_onnx.runtime.text.detector import detector_pixels

    config = SessionConfig(intra_op_threads=args.threads)
    start_mib = peak_mib()
    detector = Detector(args.detector, config=config)
    sam = SamPredictor.from_export(args.sam, config=config)
    image = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    ids = detector.tokenizer.encode(PROMPT)
    pixels, pixel_mask = detector_pixels(
        image, detector.canvas, detector.edges, detector.rescale, detector.mean, detector.std
    )
    mask, position_ids = phrase_structure(ids, detector.tokenizer.separator_ids)
    inputs_ = (pixels, pixel_mask, ids, mask, position_ids)
    feeds = dict(zip(DETECTOR_GRAPH.input_names, inputs_, strict=True))
    run_onnx = lambda: detector.graph.session.run(None, feeds)  # noqa: E731
    run_onnx()
    onnx_mib = peak_mib()
    model = GroundingDinoForObjectDetection.from_pretrained(args.hf_folder).eval()
    inputs = {"pixel_values": torch.from_numpy(pixels), "pixel_mask": torch.from_numpy(pixel_mask)}
    inputs["input_ids"] = torch.from_numpy(ids)

    def run_torch():
        with torch.no_grad():
            model(**inputs)

    run_torch()
    torch_mib = peak_mib()
    boxes = np.array([[100, 100, 400, 300], [350, 200, 700, 550]], np.float32)
    embedding = sam.embed(image)
    times: dict[str, list[float]] = {
        "detector onnx": [],
        "detector torch": [],
        "sam encoder": [],
        "sam decoder": [],
    }
    for _ in range(args.repeats):
        times["detector onnx"].append(timed(run_onnx))
        times["detector torch"].append(timed(run_torch))
        times["sam encoder"].append(timed(lambda: sam.embed(image)))
        times["sam decoder"].append(timed(lambda: sam.predict_boxes(boxes, embedding=embedding)))
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"canvas {detector.canvas}, {ids.shape[1]} tokens, {args.threads} threads, {args.repeats} repeats")
    for name, seconds in median.items():
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:15s} median {seconds * 1000:8.1f} ms  (runs: {runs} s)")
    ratio = median["detector torch"] / median["detector onnx"]
    print(f"  detector: onnxruntime {ratio:.2f}x transformers' PyTorch")
    peaks = f"start {start_mib:.0f}, after ONNX detector + SAM {onnx_mib:.0f}, after PyTorch {torch_mib:.0f}"
    print(f"  peak RSS MiB: {peaks}")


if __name__ == "__main__":
    main()
