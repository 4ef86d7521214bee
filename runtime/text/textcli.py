"""``sam-onnx predict IMAGE... -m SAM_EXPORT --detector DETECTOR_EXPORT --text "a cat. a remote."``.

:func:`add_text_options` adds the flags to ``predict`` (all default None: the library's defaults
are the only ones); :func:`text_task` is the per-image work, :func:`save_text_prediction` its files:

  NAME_mask0..K-1.png  one mask per box found, in the detector's order
  NAME_overlay.png     the masks tinted, each box drawn and labelled "phrase score"
  NAME.json            prompt, thresholds, and per object: label, score, box (x0, y0, x1, y1),
                       SAM's predicted IoU, mask file, area, bbox (x, y, w, h), COCO RLE

An image where nothing passes the box threshold fails with "nothing found for ..." and the best
score seen (the run goes on with the next image); its files are not written. Each file is written
atomically (a temporary name renamed into place).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sam_onnx.errors import ConflictingOptionsError, InvalidInputError
from sam_onnx.images import load_image

from ..amg.rle import coco_encode, masks_to_rle
from ..batch.outputs import _tint, mask_image, mask_summary, write_json, write_png
from ..core.session import SessionConfig
from .detector import Detector
from .grounded import TextMask, TextPredictor

# one colour per object, cycled (tab10)
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))


def add_text_options(predict: argparse.ArgumentParser) -> None:
    group = predict.add_argument_group("text prompts (Grounded SAM, docs/TEXT.md)")
    group.add_argument("--text", metavar="PROMPT", help='phrases ended by ".", e.g. "a cat. a remote."')
    group.add_argument("--detector", type=Path, metavar="DIR", help="the folder sam-export-detector wrote")
    group.add_argument("--box-threshold", type=float, help="keep boxes scoring above (default 0.25)")
    group.add_argument("--text-threshold", type=float, help="label tokens above (default 0.25)")


def check_text_args(args) -> None:
    """``--text`` and ``--detector`` go together, and not with clicks or a box."""
    if (args.text is None) != (args.detector is None):
        given, missing = ("--text", "--detector") if args.detector is None else ("--detector", "--text")
        raise InvalidInputError(missing, f"given with {given}", "nothing")
    if args.text is not None and (args.point or args.box or args.embedding):
        raise ConflictingOptionsError("--text", "--point/--box/--embedding", "the boxes come from the text")


def text_task(args, predictor, names: dict[Path, str], config: SessionConfig):
    """The per-image work of ``predict --text``: returns a function path -> summary line."""
    detector = Detector(args.detector, config=config, max_pixels=predictor.max_pixels)
    text = TextPredictor(detector, predictor)
    thresholds = {
        key: value
        for key, value in (("box_threshold", args.box_threshold), ("text_threshold", args.text_threshold))
        if value is not None
    }
    detector.tokenizer.encode(args.text)  # a bad prompt fails once, before any image
    Path(args.output).mkdir(parents=True, exist_ok=True)

    def run(path: Path) -> str:
        start = time.perf_counter()
        image = load_image(path, max_pixels=predictor.max_pixels)
        found = text.predict_text(image, args.text, **thresholds)
        info = {"image": str(path), "seconds": round(time.perf_counter() - start, 4), **thresholds}
        save_text_prediction(Path(args.output), names[path], image, found, args.text, info)
        labels = ", ".join(f"{m.label} {m.score:.2f}" for m in found[:3]) + (" ..." if len(found) > 3 else "")
        return f"{len(found)} object(s): {labels}"

    return run


def save_text_prediction(
    out_dir: Path, name: str, image: np.ndarray, found: list[TextMask], prompt: str, info: dict
) -> dict:
    """Write the masks, the labelled overlay and the JSON of one image (module doc); returns the JSON."""
    rles = masks_to_rle(np.stack([m.mask for m in found]))
    objects = []
    for i, (item, rle) in enumerate(zip(found, rles, strict=True)):
        file = f"{name}_mask{i}.png"
        write_png(mask_image(item.mask), out_dir / file)
        objects.append({
            "label": item.label,
            "score": round(item.score, 6),
            "box_xyxy": [round(float(v), 3) for v in item.box_xyxy],
            "iou_prediction": round(item.iou_prediction, 6),
            "file": file,
            **mask_summary(item.mask),
            "rle": coco_encode(rle),
        })  # fmt: skip
    write_png(text_overlay(image, found), out_dir / f"{name}_overlay.png")
    summary = {**info, "prompt": prompt, "size_hw": list(image.shape[:2]), "objects": objects}
    summary["overlay"] = f"{name}_overlay.png"
    write_json(summary, out_dir / f"{name}.json")
    return summary


def text_overlay(image: np.ndarray, found: list[TextMask]) -> Image.Image:
    """The image with each mask tinted in its colour, its box drawn and labelled "phrase score"."""
    tinted = image.astype(np.float32)
    for i, item in enumerate(found):
        _tint(tinted, item.mask, PALETTE[i % len(PALETTE)])
    out = Image.fromarray(tinted.round().astype(np.uint8))
    draw = ImageDraw.Draw(out)
    width = max(1, round(max(image.shape[:2]) / 300))
    for i, item in enumerate(found):
        colour = PALETTE[i % len(PALETTE)]
        x0, y0, x1, y1 = (float(v) for v in item.box_xyxy)
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=width)
        caption = f"{item.label} {item.score:.2f}"
        left, top, right, bottom = draw.textbbox((x0, y0), caption)
        draw.rectangle([left, top, right + 2, bottom + 2], fill=colour)
        draw.text((x0 + 1, y0 + 1), caption, fill=(255, 255, 255))
    return out
