"""The PyTorch reference path: image -> embedding -> prompts -> masks, with official semantics.

Export validation and the conformance tests compare against this path; it reproduces the
official ``SamPredictor`` (``segment_anything.predictor``). State is passed explicitly (an
:class:`ImageEmbedding` value), so one :class:`SamReference` serves many images and threads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InvalidInputError
from ..preprocess import check_image, resize_longest_side, resized_hw, scale_boxes_xyxy, scale_coords_xy
from ..variants import LOW_RES_MASK_SIZE
from .sam import Sam


@dataclass(frozen=True)
class ImageEmbedding:
    """The encoder's output for one image and the sizes needed to map prompts and masks.

    Attributes:
      embedding: ``1 x 256 x 64 x 64`` float32.
      orig_hw: (H, W) of the original image.
      input_hw: (h, w) of the image resized to long side 1024 (before padding).
    """

    embedding: torch.Tensor
    orig_hw: tuple[int, int]
    input_hw: tuple[int, int]


@dataclass(frozen=True)
class Prediction:
    """Masks for one prompt. M = 3 in multimask mode, else 1.

    Attributes:
      masks: ``M x H x W`` bool, or float32 logits when ``return_logits``.
      iou_predictions: ``M`` float32.
      low_res_logits: ``M x 256 x 256`` float32, to feed back as ``mask_input``.
    """

    masks: np.ndarray
    iou_predictions: np.ndarray
    low_res_logits: np.ndarray


class SamReference:
    """Official predictor semantics on a :class:`Sam` model (eval mode, CPU or GPU)."""

    def __init__(self, model: Sam) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device

    @torch.inference_mode()
    def embed_resized(self, resized: np.ndarray, orig_hw: tuple[int, int]) -> ImageEmbedding:
        """Encode an image already resized to long side 1024 (``h x w x 3`` uint8 RGB)."""
        check_image(resized, "resized image")
        input_hw = resized_hw(orig_hw, self.model.img_size)
        if tuple(resized.shape[:2]) != input_hw:
            raise InvalidInputError(
                "resized image", f"size {input_hw} for original {tuple(orig_hw)}", str(resized.shape[:2])
            )
        x = torch.tensor(resized, device=self.device).permute(2, 0, 1)[None]
        embedding = self.model.image_encoder(self.model.preprocess(x))
        return ImageEmbedding(embedding, (int(orig_hw[0]), int(orig_hw[1])), input_hw)

    def embed(self, image: np.ndarray) -> ImageEmbedding:
        """Encode an ``H x W x 3`` uint8 RGB image (resized as officially)."""
        check_image(image)
        return self.embed_resized(resize_longest_side(image, self.model.img_size), image.shape[:2])

    @torch.inference_mode()
    def predict(
        self,
        emb: ImageEmbedding,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> Prediction:
        """Official ``SamPredictor.predict`` for one prompt.

        Arguments:
          emb: from :meth:`embed`.
          point_coords: ``N x 2`` (x, y) in original-image pixels; needs ``point_labels``.
          point_labels: ``N`` of 1 (positive) / 0 (negative).
          box: ``4`` (x0, y0, x1, y1) in original-image pixels.
          mask_input: ``1 x 256 x 256`` low-res logits from a previous prediction.
          multimask_output: 3 masks (tokens 1..3) instead of 1 (token 0).
          return_logits: full-size logits instead of masks thresholded at 0.
        """
        points = self._points(emb, point_coords, point_labels)
        boxes = None
        if box is not None:
            box_arr = np.asarray(box)
            if box_arr.shape not in ((4,), (1, 4)):
                raise InvalidInputError("box", "4 values (x0, y0, x1, y1)", f"shape {box_arr.shape}")
            boxes = self._tensor(scale_boxes_xyxy(box_arr.reshape(1, 4), emb.orig_hw))
        masks_in = None
        if mask_input is not None:
            expected = (1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE)
            if np.shape(mask_input) != expected:
                raise InvalidInputError("mask_input", f"shape {expected}", f"shape {np.shape(mask_input)}")
            masks_in = self._tensor(np.asarray(mask_input, np.float32))[None]

        sam = self.model
        sparse, dense = sam.prompt_encoder(points, boxes, masks_in)
        low_res, iou = sam.mask_decoder(
            emb.embedding, sam.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output
        )
        masks = sam.postprocess_masks(low_res, emb.input_hw, emb.orig_hw)
        if not return_logits:
            masks = masks > sam.mask_threshold
        return Prediction(masks[0].cpu().numpy(), iou[0].cpu().numpy(), low_res[0].cpu().numpy())

    def _points(self, emb, point_coords, point_labels):
        if point_coords is None and point_labels is None:
            return None
        if point_coords is None or point_labels is None:
            raise InvalidInputError("point_labels", "given together with point_coords", "only one of the two")
        coords = np.asarray(point_coords)
        labels = np.asarray(point_labels)
        if coords.ndim != 2 or coords.shape[1] != 2 or labels.shape != (coords.shape[0],):
            raise InvalidInputError(
                "points", "point_coords N x 2 and point_labels N", f"shapes {coords.shape} and {labels.shape}"
            )
        coords_1024 = self._tensor(scale_coords_xy(coords, emb.orig_hw))[None]
        return coords_1024, torch.as_tensor(labels, dtype=torch.int, device=self.device)[None]

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=torch.float, device=self.device)
