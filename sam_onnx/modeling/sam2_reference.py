"""The PyTorch reference path of SAM 2 / 2.1 for images, with the official predictor's semantics.

Reproduces ``sam2.sam2_image_predictor.SAM2ImagePredictor`` (``set_image`` / ``predict``) on a
:class:`Sam2`: the torch-free preprocessing and coordinate transforms of :mod:`sam_onnx.preprocess`,
the encoder, the prompt encoder (box corners first, padding point always), the decoder, the
official mask selection and the numpy mask upscaling the runtime uses. State is passed
explicitly (a :class:`Sam2ImageEmbedding` value), so one :class:`Sam2Reference` serves many images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InvalidInputError
from ..preprocess import check_image, resize_bilinear, sam2_coords_1024, sam2_preprocess
from ..variants import IMAGE_SIZE, LOW_RES_MASK_SIZE
from .reference import Prediction
from .sam2 import Sam2, Sam2Features, select_masks

LOW_RES_CLAMP = 32.0  # the official predictor clamps the low-res logits it returns (only those)


@dataclass(frozen=True)
class Sam2ImageEmbedding:
    """The encoder side's output for one image.

    Attributes:
      features: :class:`Sam2Features` (``1 x 256 x 64 x 64``, ``1 x 32 x 256 x 256``,
        ``1 x 64 x 128 x 128`` float32).
      orig_hw: (H, W) of the original image.
    """

    features: Sam2Features
    orig_hw: tuple[int, int]


class Sam2Reference:
    """Official ``SAM2ImagePredictor`` semantics on a :class:`Sam2` model (eval mode, CPU or GPU)."""

    def __init__(self, model: Sam2) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device

    def embed(self, image: np.ndarray) -> Sam2ImageEmbedding:
        """Encode an ``H x W x 3`` uint8 RGB image (preprocessed by :func:`sam2_preprocess`)."""
        check_image(image)
        return self.embed_preprocessed(sam2_preprocess(image), image.shape[:2])

    @torch.inference_mode()
    def embed_preprocessed(self, input_tensor: np.ndarray, orig_hw: tuple[int, int]) -> Sam2ImageEmbedding:
        """Encode a ``1 x 3 x 1024 x 1024`` float32 encoder input of an image of size ``orig_hw``."""
        expected = (1, 3, IMAGE_SIZE, IMAGE_SIZE)
        if np.shape(input_tensor) != expected:
            raise InvalidInputError("input tensor", f"shape {expected}", f"shape {np.shape(input_tensor)}")
        features = self.model.encode(self._tensor(input_tensor))
        return Sam2ImageEmbedding(features, (int(orig_hw[0]), int(orig_hw[1])))

    def embedding_from_features(
        self,
        image_embed: np.ndarray,
        high_res_feats_0: np.ndarray,
        high_res_feats_1: np.ndarray,
        orig_hw: tuple[int, int],
    ) -> Sam2ImageEmbedding:
        """A :class:`Sam2ImageEmbedding` of stored encoder outputs (shapes as in :class:`Sam2Features`)."""
        tensors = (self._tensor(a) for a in (image_embed, high_res_feats_0, high_res_feats_1))
        return Sam2ImageEmbedding(Sam2Features(*tensors), (int(orig_hw[0]), int(orig_hw[1])))

    @torch.inference_mode()
    def predict(
        self,
        emb: Sam2ImageEmbedding,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> Prediction:
        """Official ``SAM2ImagePredictor.predict`` for one prompt.

        Arguments:
          emb: from :meth:`embed`.
          point_coords: ``N x 2`` (x, y) in original-image pixels (0..1 when not
            ``normalize_coords``); needs ``point_labels``.
          point_labels: ``N`` of 1 (positive) / 0 (negative).
          box: ``4`` (x0, y0, x1, y1), same frame as the points.
          mask_input: ``1 x 256 x 256`` low-res logits from a previous prediction.
          multimask_output: 3 masks (tokens 1..3) instead of 1 (token 0, or the stability fallback).
          return_logits: full-size logits instead of masks thresholded at 0.
          normalize_coords: the coordinates are pixels of the original image (divided by (W, H)
            here); False: they are already divided.
        Returns a :class:`~sam_onnx.modeling.reference.Prediction`; its ``low_res_logits`` are
        clamped to +-32 as officially (the full-size masks are computed before the clamp).
        """
        sam2 = self.model
        points = self._points(emb, point_coords, point_labels, normalize_coords)
        boxes = None
        if box is not None:
            box_arr = np.asarray(box)
            if box_arr.shape not in ((4,), (1, 4)):
                raise InvalidInputError("box", "4 values (x0, y0, x1, y1)", f"shape {box_arr.shape}")
            corners = sam2_coords_1024(box_arr.reshape(1, 2, 2), emb.orig_hw, normalized=not normalize_coords)
            boxes = self._tensor(corners.reshape(1, 4))
        sparse, dense = sam2.sam_prompt_encoder(points, boxes, self._mask(mask_input))
        decoded = sam2.decode_embeddings(emb.features, sparse, dense)
        v = sam2.variant
        low_res, iou = select_masks(
            decoded.low_res_logits,
            decoded.iou_predictions,
            multimask=multimask_output,
            delta=v.dynamic_multimask_stability_delta,
            threshold=v.dynamic_multimask_stability_thresh,
        )
        low_res = low_res[0].cpu().numpy()
        masks = resize_bilinear(low_res, emb.orig_hw)
        if not return_logits:
            masks = masks > sam2.mask_threshold
        clamped = np.clip(low_res, -LOW_RES_CLAMP, LOW_RES_CLAMP)
        return Prediction(masks, iou[0].cpu().numpy(), clamped)

    def _points(self, emb, point_coords, point_labels, normalize_coords):
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
        coords_1024 = sam2_coords_1024(coords, emb.orig_hw, normalized=not normalize_coords)
        return self._tensor(coords_1024)[None], torch.as_tensor(labels, dtype=torch.int, device=self.device)[
            None
        ]

    def _mask(self, mask_input):
        if mask_input is None:
            return None
        expected = (1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE)
        if np.shape(mask_input) != expected:
            raise InvalidInputError("mask_input", f"shape {expected}", f"shape {np.shape(mask_input)}")
        return self._tensor(np.asarray(mask_input, np.float32))[None]

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=torch.float, device=self.device)
