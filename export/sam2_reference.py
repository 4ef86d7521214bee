"""SAM 2's validation rules (:data:`SAM2_VALIDATION`) and the official computations they call.

:class:`.validate.Validator` runs the same checks, sizes and tolerances for every family; this is
what SAM 2's differ in. The reference is the official computation, not the traced wrapper: the
preprocessing by ``F.interpolate(antialias=True)``, :meth:`Sam2.encode`, :meth:`Sam2.decode` in
the official (unfactored) form with the prompt encoder's own padding point, the official
selection rule, one bilinear resize to (H, W) and the clamp of the returned low-res logits. The
prompts are taken to the square 1024 frame, with no padding point (the graph appends it).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from sam_onnx.modeling.sam2 import Sam2, select_masks

from ..contract import (
    ENCODER_ORIGINAL_IMAGE,
    HAS_MASK_INPUT,
    MASK_INPUT,
    ORIG_IM_SIZE,
    POINT_COORDS,
    POINT_LABELS,
)
from ..families import SAM2
from ..variants import IMAGE_SIZE, SAM2_PIXEL_MEAN, SAM2_PIXEL_STD
from .sam2_decoder_graph import LOW_RES_CLAMP, Sam2DecoderGraph
from .validate import ValidationRules, decoder_cases

FEATURE_NAMES = SAM2.feature_names  # the encoder's outputs, the decoder's image inputs


def official_input(image: np.ndarray) -> torch.Tensor:
    """``H x W x 3`` uint8 -> ``1 x 3 x 1024 x 1024``, the official SAM 2 transforms in torch
    (``/ 255``, ``F.interpolate(bilinear, antialias=True)`` unless already 1024 x 1024, mean/std)."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(torch.float32) / 255.0
    if tuple(x.shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE):
        x = F.interpolate(
            x[None], (IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False, antialias=True
        )[0]
    mean = torch.tensor(SAM2_PIXEL_MEAN).reshape(3, 1, 1)
    std = torch.tensor(SAM2_PIXEL_STD).reshape(3, 1, 1)
    return ((x - mean) / std)[None]


def official_inputs(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SAM 2's encoder inputs: the original image (``--encoder-input uint8`` resizes in the graph)
    and :func:`official_input` of it (``1 x 3 x 1024 x 1024`` float32)."""
    return image, official_input(image).numpy()


def reference_decoder(
    model, feed: Mapping[str, np.ndarray], *, multimask: bool, batched: bool
) -> list[np.ndarray]:
    """The outputs the decoder graph should give for ``feed`` (its input names), computed the
    official way, one prompt (row) at a time."""
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feed.items()}
    features = tuple(t[name] for name in FEATURE_NAMES)
    rows = []
    with torch.inference_mode():
        for b in range(t[POINT_COORDS].shape[0]):
            mask = t[MASK_INPUT][b : b + 1] if float(t[HAS_MASK_INPUT][b]) == 1.0 else None
            coords, labels = t[POINT_COORDS][b : b + 1], t[POINT_LABELS][b : b + 1]
            rows.append(model.decode(*features, coords, labels, mask, factored=False))
        low_res = torch.cat([r.low_res_logits for r in rows])
        iou = torch.cat([r.iou_predictions for r in rows])
        if not batched:
            low_res, iou = select_official(low_res, iou, multimask=multimask, variant=model.variant)
        hw = [int(s) for s in feed[ORIG_IM_SIZE.name]]
        masks = F.interpolate(low_res, hw, mode="bilinear", align_corners=False)
        out = [masks, iou, low_res.clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)]
        if batched:
            out.append(torch.cat([r.object_score_logits for r in rows]))
    return [o.numpy() for o in out]


def official_outputs(wrapper: Sam2DecoderGraph, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """:func:`reference_decoder` in the form of ``wrapper``'s graph (multimask, batched)."""
    return reference_decoder(wrapper.model, feed, multimask=wrapper.multimask, batched=wrapper.batched)


def select_official(
    low_res: torch.Tensor, iou: torch.Tensor, *, multimask: bool, variant
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sam_onnx.modeling.sam2.select_masks` with ``variant``'s stability settings."""
    delta, thresh = variant.dynamic_multimask_stability_delta, variant.dynamic_multimask_stability_thresh
    return select_masks(low_res, iou, multimask=multimask, delta=delta, threshold=thresh)


SAM2_VALIDATION = ValidationRules(
    features=FEATURE_NAMES,
    uint8_input=ENCODER_ORIGINAL_IMAGE.name,
    prepare=official_inputs,
    encode=Sam2.encode,
    prompt_cases=partial(decoder_cases, family=SAM2),
    reference=official_outputs,
    single_decoder=Sam2DecoderGraph,  # the official single-mask rule (multimask=False)
    token_decoder=partial(Sam2DecoderGraph, batched=True),
    # all four tokens, compared token by token (see Validator._quality_masks)
    quality_decoder=partial(Sam2DecoderGraph, batched=True),
)
