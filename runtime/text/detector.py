"""Boxes for a text prompt: the ``sam-export-detector`` graph (Grounding DINO) on onnxruntime.

image -> :func:`detector_pixels` (transformers' processor: resize by the metadata's rule, PIL
bilinear, rescale, normalise; then zero-padded to the canvas with its pixel mask) -> the graph, fed
the prompt's ids and :func:`sam_onnx.detector.phrase_structure` -> :func:`grounded_boxes`
(transformers' ``post_process_grounded_object_detection``: sigmoid, the best token's probability
as the box's score, boxes above ``box_threshold``, each labelled with the tokens above
``text_threshold``).

:meth:`Detector.detect` returns :class:`Detections` (boxes, scores, labels) without masks, for a
caller that decodes masks elsewhere (a server sending boxes to the page).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sam_onnx.detector import (
    DETECTOR_FILE,
    DETECTOR_GRAPH,
    DETECTOR_KIND,
    DETECTOR_ROLE,
    TOKENIZER_FILE,
    phrase_structure,
    resized_hw,
)
from sam_onnx.errors import ModelLoadError, ModelMismatchError
from sam_onnx.images import DEFAULT_MAX_PIXELS, ImageSource, load_image

from ..core.graphs import MANIFEST, Graph
from ..core.session import SessionConfig
from .tokens import PromptTokenizer, merged_prompt

# transformers' defaults for post_process_grounded_object_detection
BOX_THRESHOLD = 0.25
TEXT_THRESHOLD = 0.25


@dataclass(frozen=True)
class Detections:
    """The boxes found for one prompt on one image, in the detector's query order.

    Attributes:
      prompt: the prompt as tokenised.
      boxes_xyxy: ``K x 4`` float32 (x0, y0, x1, y1) in original-image pixels.
      scores: ``K`` float32, each box's best token probability.
      labels: ``K`` phrases (the tokens above the text threshold, decoded as transformers does).
      best_score, best_label: the best query's, above the threshold or not (``nothing found``).
    """

    prompt: str
    boxes_xyxy: np.ndarray
    scores: np.ndarray
    labels: tuple[str, ...]
    best_score: float | None
    best_label: str

    def __len__(self) -> int:
        return len(self.scores)


class Detector:
    """The text-prompt detector of a ``sam-export-detector`` folder.

    Arguments:
      model_dir: the export folder (``detector.onnx``, ``tokenizer.json``, ``export.json``).
      config: providers and threads (:class:`SessionConfig`).
    Raises :class:`ModelLoadError` for a folder that is not a detector export (a SAM export is named
    as such) and :class:`ModelMismatchError` for a tokenizer that is not the detector's.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        config: SessionConfig | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        folder = check_detector_dir(Path(model_dir))
        self.graph = Graph.open(folder / DETECTOR_FILE, config or SessionConfig(), role=DETECTOR_ROLE)
        meta = self.graph.metadata
        if meta.get("role") != DETECTOR_ROLE:
            raise ModelMismatchError(self.graph.path, f"is a {meta.get('role')} graph, not the detector")
        self.tokenizer = PromptTokenizer(folder / TOKENIZER_FILE, meta)
        self.canvas = int(meta["canvas"])
        self.edges = (int(meta["shortest_edge"]), int(meta["longest_edge"]))
        self.rescale = float(meta["rescale_factor"])
        self.mean = np.array([float(v) for v in meta["image_mean"].split(",")])
        self.std = np.array([float(v) for v in meta["image_std"].split(",")])
        self.max_pixels = max_pixels

    def detect(
        self,
        image: ImageSource,
        prompt: str | list[str],
        *,
        box_threshold: float = BOX_THRESHOLD,
        text_threshold: float = TEXT_THRESHOLD,
    ) -> Detections:
        """Boxes of ``prompt`` (``"a cat. a remote."`` or ``["a cat", "a remote"]``) on ``image``."""
        logits, boxes, ids, orig_hw = self.run(image, prompt)
        return grounded_boxes(
            logits,
            boxes,
            ids[0],
            orig_hw,
            self.tokenizer,
            merged_prompt(prompt),
            box_threshold,
            text_threshold,
        )

    def run(self, image: ImageSource, prompt: str | list[str]):
        """The graph's raw outputs (``Q x L`` logits, ``Q x 4`` boxes), the ids and (H, W)."""
        ids = self.tokenizer.encode(merged_prompt(prompt))
        rgb = load_image(image, max_pixels=self.max_pixels)
        pixels, pixel_mask = detector_pixels(rgb, self.canvas, self.edges, self.rescale, self.mean, self.std)
        mask, position_ids = phrase_structure(ids, self.tokenizer.separator_ids)
        feeds = dict(
            zip(DETECTOR_GRAPH.input_names, (pixels, pixel_mask, ids, mask, position_ids), strict=True)
        )
        logits, boxes = self.graph.session.run(list(DETECTOR_GRAPH.output_names), feeds)
        return logits[0], boxes[0], ids, rgb.shape[:2]


def check_detector_dir(folder: Path) -> Path:
    """``folder`` if it holds a detector export; a SAM export or anything else is named."""
    if not folder.is_dir():
        raise ModelLoadError(folder, "not a directory (expected the output folder of sam-export-detector)")
    try:
        kind = json.loads((folder / MANIFEST).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None
    if kind != DETECTOR_KIND and not (folder / DETECTOR_FILE).is_file():
        what = "a SAM export (give it as -m)" if (folder / MANIFEST).is_file() else "no detector export"
        raise ModelLoadError(folder, f"is {what}; --detector takes the folder sam-export-detector wrote")
    return folder


def detector_pixels(rgb: np.ndarray, canvas: int, edges: tuple[int, int], rescale: float, mean, std):
    """``1 x 3 x S x S`` float32 pixels and ``1 x S x S`` int64 mask of ``rgb`` (``H x W x 3``
    uint8), as transformers' PIL processor with ``pad_size`` S x S computes them."""
    height, width = resized_hw(rgb.shape[:2], *edges)
    resized = np.asarray(Image.fromarray(rgb).resize((width, height), resample=Image.Resampling.BILINEAR))
    normalised = ((resized.astype(np.float64) * rescale - mean) / std).astype(np.float32)
    pixels = np.zeros((1, 3, canvas, canvas), np.float32)
    pixels[0, :, :height, :width] = normalised.transpose(2, 0, 1)
    mask = np.zeros((1, canvas, canvas), np.int64)
    mask[0, :height, :width] = 1
    return pixels, mask


def grounded_boxes(
    logits, boxes_cxcywh, ids, orig_hw, tokenizer, prompt, box_threshold, text_threshold
) -> Detections:
    """transformers' ``post_process_grounded_object_detection`` for one image: ``logits`` ``Q x L``,
    ``boxes_cxcywh`` ``Q x 4`` relative, ``ids`` the prompt's ``T`` token ids, ``orig_hw`` (H, W)."""
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float32)))
    scores = probs.max(axis=-1)
    height, width = orig_hw
    cx, cy, w, h = np.moveaxis(boxes_cxcywh, -1, 0)
    corners = np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)
    boxes = (corners * np.array([width, height, width, height], np.float32)).astype(np.float32)
    keep = scores > box_threshold
    posmaps = probs[keep] > text_threshold
    posmaps[:, 0] = False  # transformers' get_phrases_from_posmap drops the first and last column
    posmaps[:, -1:] = False
    labels = tuple(tokenizer.decode([ids[i] for i in np.flatnonzero(row)]) for row in posmaps)
    best = int(np.argmax(scores)) if len(scores) else None
    best_label = "" if best is None else tokenizer.decode([ids[int(np.argmax(probs[best, : len(ids)]))]])
    return Detections(
        prompt, boxes[keep], scores[keep], labels, None if best is None else float(scores[best]), best_label
    )
