"""Validation of graphs written in a client layout (``--layout samexporter``).

The checks of :class:`.validate.Validator` feed and read our own contract's names; a layout graph
computes the same values under other names and in another order. Each layout wrapper says how to
translate (``feature_order`` and ``layout_input`` for encoders; ``layout_feed``,
``contract_twin``, ``from_contract_outputs`` and ``compared_outputs`` for decoders), and the
checks here run the graph on the validator's images and prompt cases and compare it with the
PyTorch reference of our own graph, by the same tolerances (:func:`.validate.compare`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sam_onnx.contract import POINT_LABELS, PROMPT_INPUTS

from .validate import Validator, batch_prompts, compare, cpu_session


def check_layout_encoder(validator: Validator, name: str, path: Path, wrapper: torch.nn.Module) -> None:
    """Every image: the graph's outputs against the PyTorch encoder's, in the layout's order."""
    session = cpu_session(path)
    if not validator.check_interface(name, session, wrapper):
        return
    compared = [validator.rules.features[i] for i in wrapper.feature_order]
    with validator.bar(name, len(validator.images)) as done:
        for img in validator.images:
            feed = {wrapper.input_names[0]: wrapper.layout_input(img)}
            got = validator.run_graph(name, img.name, session, feed)
            if got is not None:
                want = validator.features(img)
                want = [want[i] for i in wrapper.feature_order]
                validator.report.checks += compare(name, img.name, compared, got, want)
            done.update()


def check_layout_decoder(validator: Validator, name: str, path: Path, wrapper: torch.nn.Module) -> None:
    """Every image: each prompt case alone, and all of them as one prompt batch (rows padded with
    label -1, as a client pads them), against the reference of our own decoder row by row."""
    session = cpu_session(path)
    if not validator.check_interface(name, session, wrapper):
        return
    twin = wrapper.contract_twin()
    with validator.bar(name, 5 * len(validator.images)) as done:
        for img in validator.images:
            cases = dict(validator.cases(img))
            cases["batch_of_4"] = batch_prompts(validator.cases(img), validator.rules.features)
            for case, feed in cases.items():
                got = validator.run_graph(name, f"{img.name}/{case}", session, wrapper.layout_feed(feed))
                if got is not None:
                    want = _reference_rows(validator, twin, wrapper, feed)
                    checks = compare(name, f"{img.name}/{case}", wrapper.compared_outputs, got, want)
                    validator.report.checks += checks
                done.update()


def _reference_rows(validator: Validator, twin, wrapper, feed: dict) -> list[np.ndarray]:
    """The reference of ``twin`` (a one-prompt decoder) for each prompt row of ``feed``, stacked,
    in the layout's output order."""
    rows = []
    for b in range(feed[POINT_LABELS].shape[0]):
        row = {k: (v[b : b + 1] if k in PROMPT_INPUTS else v) for k, v in feed.items()}
        rows.append(wrapper.from_contract_outputs(validator.rules.reference(twin, row)))
    return [np.concatenate(outputs) for outputs in zip(*rows, strict=True)]
