"""Parity of the exported detector graph with transformers' ``GroundingDinoForObjectDetection``.

Run after every detector export, on inputs other than the traced ones: prompts of 1, 2 and 5
phrases (tokenised by transformers' own tokenizer from the model folder) on a landscape and a
portrait image on the canvas (the traced example is one 3:4 landscape of two phrases). Per case:
the ``-inf`` pattern of the logits (the prompt's length) must be the model's, and the finite logits
and the boxes within tolerance of the model's on the same inputs, its phrase structure computed by
transformers itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .detector_graph import example_pixels, separator_ids

PROMPTS = ("cat.", "a cat. a dog.", "cat. dog. car. tree. person.")
# Absolute tolerances: boxes are relative coordinates (1e-4 of the image size); a logit within
# 2e-4 moves a sigmoid score by at most 5e-5.
BOX_ATOL = 1e-4
LOGIT_ATOL = 2e-4


@dataclass
class DetectorReport:
    """Max abs differences per case (``prompt @ HxW``) and the failures beyond tolerance."""

    cases: dict[str, dict[str, float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def image_shapes(canvas: int) -> tuple[tuple[int, int], ...]:
    """A landscape and a portrait image on the canvas (rows x columns)."""
    return (canvas * 9 // 16, canvas), (canvas, canvas * 2 // 3)


def validate_detector(session, model, tokenizer, canvas: int) -> DetectorReport:
    """Compare ``session`` (onnxruntime, the exported graph) with ``model`` (transformers) on
    :data:`PROMPTS` x :func:`image_shapes`."""
    from transformers.models.grounding_dino.modeling_grounding_dino import (
        generate_masks_with_special_tokens_and_transfer_map as reference_structure,
    )

    report = DetectorReport()
    for seed, image_hw in enumerate(image_shapes(canvas), start=1):
        pixels, pixel_mask = example_pixels(canvas, image_hw, seed=seed)
        for prompt in PROMPTS:
            ids = torch.tensor([tokenizer(prompt)["input_ids"]])
            mask, position_ids = reference_structure(ids, torch.tensor(separator_ids()))
            inputs = (pixels, pixel_mask, ids, mask, position_ids)
            feeds = dict(zip(session_inputs(session), inputs, strict=True))
            got_logits, got_boxes = session.run(None, {k: v.numpy() for k, v in feeds.items()})
            with torch.no_grad():
                out = model(pixel_values=pixels, pixel_mask=pixel_mask, input_ids=ids)
            case = f"{prompt!r} @ {image_hw[0]}x{image_hw[1]}"
            report.cases[case] = _compare(case, got_logits, got_boxes, out, report.failures)
    return report


def session_inputs(session) -> list[str]:
    return [i.name for i in session.get_inputs()]


def _compare(case: str, logits: np.ndarray, boxes: np.ndarray, out, failures: list[str]) -> dict[str, float]:
    ref_logits, ref_boxes = out.logits.numpy(), out.pred_boxes.numpy()
    finite = np.isfinite(ref_logits)
    if not np.array_equal(np.isfinite(logits), finite):
        failures.append(f"{case}: logits are finite on other tokens than the model's")
        return {"logits": float("inf"), "pred_boxes": float("inf")}
    diffs = {
        "logits": float(np.abs(logits[finite] - ref_logits[finite]).max()),
        "pred_boxes": float(np.abs(boxes - ref_boxes).max()),
    }
    for name, atol in (("logits", LOGIT_ATOL), ("pred_boxes", BOX_ATOL)):
        if not diffs[name] <= atol:
            failures.append(f"{case}: {name} max abs difference {diffs[name]:.3g} > {atol:g}")
    return diffs
