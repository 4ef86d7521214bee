"""Grounded SAM: a text prompt's boxes (:class:`~.detector.Detector`) through ``SamPredictor``'s
batched boxes, one mask per box with its phrase and score.

    predictor = TextPredictor.from_exports("onnx/vit_b", "onnx/grounding-dino")
    for found in predictor.predict_text(image, "a cat. a remote."):
        found.label, found.score, found.box_xyxy, found.mask

Either SAM family: the masks are exactly ``SamPredictor.predict_boxes`` on the found boxes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sam_onnx.errors import NothingFoundError
from sam_onnx.images import ImageSource, load_image

from ..core.predictor import SamPredictor
from ..core.session import SessionConfig
from .detector import BOX_THRESHOLD, TEXT_THRESHOLD, Detections, Detector
from .tokens import merged_prompt


@dataclass(frozen=True)
class TextMask:
    """One found object: its phrase, the detector's score, its box and SAM's mask.

    Attributes:
      label: the phrase (tokens above the text threshold).
      score: the box's score (best token probability).
      box_xyxy: ``4`` float32 (x0, y0, x1, y1) in original-image pixels.
      mask: ``H x W`` bool.
      iou_prediction: SAM's predicted IoU of the mask.
    """

    label: str
    score: float
    box_xyxy: np.ndarray
    mask: np.ndarray
    iou_prediction: float


class TextPredictor:
    """A detector and a SAM predictor, used together for text prompts."""

    def __init__(self, detector: Detector, sam: SamPredictor) -> None:
        self.detector = detector
        self.sam = sam

    @classmethod
    def from_exports(
        cls,
        sam_dir: str | os.PathLike[str],
        detector_dir: str | os.PathLike[str],
        *,
        config: SessionConfig | None = None,
        **sam_options,
    ) -> TextPredictor:
        """Open a ``sam-export`` folder and a ``sam-export-detector`` folder."""
        sam = SamPredictor.from_export(sam_dir, config=config, **sam_options)
        return cls(Detector(detector_dir, config=config, max_pixels=sam.max_pixels), sam)

    def predict_text(
        self,
        image: ImageSource,
        prompt: str | list[str],
        *,
        box_threshold: float = BOX_THRESHOLD,
        text_threshold: float = TEXT_THRESHOLD,
    ) -> list[TextMask]:
        """One mask per box found for ``prompt`` on ``image``, in the detector's order.

        Raises :class:`~sam_onnx.errors.NothingFoundError` (with the best score seen) when no box
        passes ``box_threshold``; :meth:`Detector.detect` returns the empty result instead."""
        rgb = load_image(image, max_pixels=self.sam.max_pixels)
        found = self.detector.detect(rgb, prompt, box_threshold=box_threshold, text_threshold=text_threshold)
        if not len(found):
            raise NothingFoundError(merged_prompt(prompt), box_threshold, found.best_score, found.best_label)
        return list(self.masks_for(rgb, found))

    def masks_for(self, rgb: np.ndarray, found: Detections) -> Iterator[TextMask]:
        """SAM's mask for each of ``found``'s boxes (``predict_boxes``, one mask per box)."""
        embedding = self.sam.embed(rgb)
        prediction = self.sam.predict_boxes(found.boxes_xyxy, embedding=embedding)
        for i, label in enumerate(found.labels):
            yield TextMask(
                label,
                float(found.scores[i]),
                found.boxes_xyxy[i],
                prediction.masks[i, 0],
                float(prediction.iou_predictions[i, 0]),
            )
