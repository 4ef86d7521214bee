"""Parity check of the fast decoder pair after export: onnxruntime against the official decoder.

On each validation image and prompt case of the :class:`.validate.Validator` (by the family's
rules), ``decoder_image.onnx`` runs once per image and ``decoder_click.onnx`` per case; its four
mask tokens are compared with the official contract's computation in PyTorch (official layout,
no factoring; :meth:`.validate.Validator.reference_tokens`): ``low_res_masks`` and ``iou_predictions``
with the decoder tolerances, and ``masks`` (the runtime's numpy upscaling of the click graph's
low-res logits, :func:`sam_onnx.runtime.core.upscale.upscale_logits`) against the official full-size
logits, with the share of agreeing pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..contract import IOU_PREDICTIONS, LOW_RES_MASKS, MASKS, ORIG_IM_SIZE, PROMPT_INPUTS
from ..families import family_of
from ..runtime.core.upscale import upscale_logits
from .validate import compare, cpu_session

COMPARED = (MASKS, LOW_RES_MASKS, IOU_PREDICTIONS)


def check_fast_pair(validator, name: str, image_path: Path, click_path: Path, family: str) -> None:
    """Add the pair's checks (graph ``name``) to ``validator.report``; a run error is a failed check."""
    image_session, click_session = cpu_session(image_path), cpu_session(click_path)
    image_inputs = [i.name for i in image_session.get_inputs()]
    with validator.bar(name, len(validator.images)) as done:
        for img in validator.images:
            cases = validator.cases(img)
            first = next(iter(cases.values()))
            tensors = validator.run_graph(name, img.name, image_session, {k: first[k] for k in image_inputs})
            if tensors is None:
                continue
            per_image = dict(zip([o.name for o in image_session.get_outputs()], tensors, strict=True))
            for case, feed in cases.items():
                prompt = {k: feed[k] for k in PROMPT_INPUTS}
                got = validator.run_graph(name, f"{img.name}/{case}", click_session, {**per_image, **prompt})
                if got is None:
                    continue
                low_res, iou = got
                hw = tuple(int(v) for v in feed[ORIG_IM_SIZE.name])
                masks = upscale_logits(low_res[0], hw, family)[None]
                clamp = family_of(family).low_res_clamp  # the contract returns them clamped, or not
                if clamp is not None:
                    low_res = np.clip(low_res, -clamp, clamp)
                want = validator.reference_tokens(feed)
                checks = compare(name, f"{img.name}/{case}", COMPARED, [masks, low_res, iou], want)
                validator.report.checks += checks
            done.update()
