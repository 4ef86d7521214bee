"""Masks to files: a mask PNG, an overlay PNG and a JSON summary (numpy + Pillow).

Every file is written to a hidden temporary name beside its target and renamed into place, so an
interrupted run never leaves a half-written PNG or JSON behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sam_onnx.atomic import atomic_write
from sam_onnx.errors import OutputOverwritesInputError

from ..amg.masks import masks_to_boxes
from ..amg.rle import coco_encode, rle_area, rle_to_mask

OVERLAY_RGB = (30, 144, 255)  # mask colour
OVERLAY_ALPHA = 0.5
POSITIVE_RGB, NEGATIVE_RGB, BOX_RGB = (0, 200, 0), (230, 0, 0), (255, 200, 0)


def mask_image(mask: np.ndarray) -> Image.Image:
    """``H x W`` bool mask -> 8-bit greyscale PIL image, 255 inside and 0 outside."""
    return Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L")


def overlay_image(
    image: np.ndarray,
    mask: np.ndarray,
    point_coords: np.ndarray | None = None,
    point_labels: np.ndarray | None = None,
    box: np.ndarray | None = None,
) -> Image.Image:
    """The image with the mask tinted in and the prompt drawn on top.

    Arguments:
      image: ``H x W x 3`` uint8 RGB. mask: ``H x W`` bool.
      point_coords: ``N x 2`` (x, y) pixels; point_labels: ``N`` (1 positive: green, else red).
      box: (x0, y0, x1, y1) pixels.
    """
    tinted = image.astype(np.float32)
    _tint(tinted, mask, OVERLAY_RGB)
    out = Image.fromarray(tinted.round().astype(np.uint8))
    draw = ImageDraw.Draw(out)
    size = max(2, round(max(image.shape[:2]) / 120))  # marker radius follows the image size
    if box is not None:
        draw.rectangle([float(v) for v in box], outline=BOX_RGB, width=max(1, size // 2))
    if point_coords is not None:
        for (x, y), label in zip(np.asarray(point_coords), np.asarray(point_labels), strict=True):
            colour = POSITIVE_RGB if label == 1 else NEGATIVE_RGB
            draw.ellipse([x - size, y - size, x + size, y + size], fill=colour, outline=(255, 255, 255))
    return out


def _tint(pixels: np.ndarray, mask: np.ndarray, colour) -> None:
    """Blend ``colour`` into the float ``H x W x 3`` ``pixels`` where ``mask`` is set, in place."""
    pixels[mask] = (1 - OVERLAY_ALPHA) * pixels[mask] + OVERLAY_ALPHA * np.asarray(colour, np.float32)


def mask_summary(mask: np.ndarray) -> dict:
    """Area in pixels and bounding box (x, y, w, h with w, h in pixels; empty mask: all zeros)
    of an ``H x W`` mask."""
    area = int(mask.sum())
    if area == 0:
        return {"area": 0, "bbox_xywh": [0, 0, 0, 0]}
    x0, y0, x1, y1 = (int(v) for v in masks_to_boxes(mask[None])[0])  # inclusive corners
    return {"area": area, "bbox_xywh": [x0, y0, x1 - x0 + 1, y1 - y0 + 1]}


def write_png(image: Image.Image, path: Path) -> None:
    atomic_write(path, lambda f: image.save(f, format="PNG"))


def write_json(data: dict, path: Path) -> None:
    text = (json.dumps(data, indent=1) + "\n").encode()
    atomic_write(path, lambda f: f.write(text))


def save_prediction(
    out_dir: Path, name: str, image: np.ndarray, prediction, prompt: dict, info: dict
) -> dict:
    """Write ``NAME_mask.png`` (or ``NAME_mask0..M-1.png``), ``NAME_overlay.png`` and ``NAME.json``.

    Arguments:
      image: ``H x W x 3`` uint8 RGB; prediction: a :class:`~sam_onnx.runtime.Prediction` with
        boolean masks; prompt: ``point_coords`` (``N x 2`` x, y), ``point_labels``, ``box`` or
        ``None`` each; info: extra JSON fields (image, model, timings).
    Returns the JSON written: per mask its file, score, area and bbox (x, y, w, h), the index of
    the best-scoring mask (the one in the overlay), and the prompt.
    """
    masks, scores = prediction.masks, prediction.iou_predictions
    files, overlay_file, json_file = prediction_files(name, len(masks))
    entries = []
    for mask, score, file in zip(masks, scores, files, strict=True):
        write_png(mask_image(mask), out_dir / file)
        entries.append({"file": file, "score": round(float(score), 6), **mask_summary(mask)})
    best = int(np.argmax(scores))
    overlay = overlay_image(image, masks[best], prompt["point_coords"], prompt["point_labels"], prompt["box"])
    write_png(overlay, out_dir / overlay_file)
    summary = {
        **info,
        "size_hw": list(image.shape[:2]),
        "prompt": {k: None if v is None else np.asarray(v).tolist() for k, v in prompt.items()},
        "masks": entries,
        "best": best,
        "overlay": overlay_file,
    }
    write_json(summary, out_dir / json_file)
    return summary


def prediction_files(name: str, num_masks: int) -> tuple[list[str], str, str]:
    """The file names :func:`save_prediction` writes for image ``name``: (mask PNGs, overlay PNG, JSON)."""
    masks = [f"{name}_mask.png"] if num_masks == 1 else [f"{name}_mask{i}.png" for i in range(num_masks)]
    return masks, f"{name}_overlay.png", f"{name}.json"


def check_inputs_kept(outputs: Iterable[Path], inputs: Mapping[Path, str]) -> None:
    """Raise :class:`OutputOverwritesInputError` when a file of ``outputs`` is one of ``inputs``
    (path -> what it is, e.g. ``"embedding sidecar"``), whatever the spelling of either path."""
    given = {path.resolve(): (path, what) for path, what in inputs.items()}
    for output in outputs:
        if output.resolve() in given:
            path, what = given[output.resolve()]
            raise OutputOverwritesInputError(output, path, what)


def amg_overlay_image(image: np.ndarray, rles: list[dict], seed: int = 0) -> Image.Image:
    """The image with each mask (uncompressed RLE) tinted in its own colour, largest first so
    that small masks stay visible on top. Decodes one mask at a time."""
    out = image.astype(np.float32)
    colours = np.random.default_rng(seed).integers(40, 256, (len(rles), 3)).astype(np.float32)
    for i in np.argsort([-rle_area(r) for r in rles], kind="stable"):
        _tint(out, rle_to_mask(rles[i]), colours[i])
    return Image.fromarray(out.round().astype(np.uint8))


AMG_CSV_HEADER = (
    "id,area,bbox_x0,bbox_y0,bbox_w,bbox_h,point_input_x,point_input_y,predicted_iou,stability_score,"
    "crop_box_x0,crop_box_y0,crop_box_w,crop_box_h"
)


def save_amg_json(path: Path, annotations: list[dict], image_info: dict, model: dict | None = None) -> None:
    """SA-1B style: ``{"image": image_info, "annotations": [...]}``, each annotation with an
    ``id`` and its segmentation (uncompressed RLE in ``annotations``) as COCO RLE; ``model``
    (e.g. ``{"family": "sam2", "variant": "hiera_t"}``) goes under ``"model"`` when given."""
    anns = [
        {"id": i, **ann, "segmentation": coco_encode(ann["segmentation"])}
        for i, ann in enumerate(annotations)
    ]
    head = {"image": image_info} if model is None else {"image": image_info, "model": model}
    write_json({**head, "annotations": anns}, path)


def save_amg_folder(folder: Path, annotations: list[dict]) -> None:
    """The official ``amg.py`` layout: ``0.png``, ``1.png`` ... (0/255) and ``metadata.csv``,
    from annotations with uncompressed-RLE segmentations.

    Written into a hidden sibling folder and renamed into place, so a folder holding
    ``metadata.csv`` is always complete. ``folder`` must not exist.
    """
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    tmp.mkdir(parents=True)
    try:
        rows = [AMG_CSV_HEADER]
        for i, ann in enumerate(annotations):
            mask_image(rle_to_mask(ann["segmentation"])).save(tmp / f"{i}.png")
            values = [i, ann["area"], *ann["bbox"], *ann["point_coords"][0], ann["predicted_iou"]]
            values += [ann["stability_score"], *ann["crop_box"]]
            rows.append(",".join(str(v) for v in values))
        (tmp / "metadata.csv").write_text("\n".join(rows) + "\n")
        os.replace(tmp, folder)
    except BaseException:
        for file in tmp.iterdir():
            file.unlink()
        tmp.rmdir()
        raise
