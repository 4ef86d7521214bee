"""What an export plans before tracing: one :class:`GraphSpec` per graph, and the metadata every
graph carries (:func:`graph_metadata`). Each family's own plan is :mod:`.sam_plan` / :mod:`.sam2_plan`,
chosen through :mod:`.families`."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import nn

from .. import __version__
from ..contract import DEFAULT_LAYOUT, SAMEXPORTER_LAYOUTS
from ..families import Family
from ..variants import IMAGE_SIZE
from .staging import TOOL_NAME


@dataclass
class GraphSpec:
    """One graph to trace: its export.json key, file name, the wrapper module traced and its
    ``metadata_props``; ``simplify_note`` says what onnxsim did; ``check``, for a graph whose
    interface is not our contract's (a client layout), is its validation
    ``(validator, name, path, wrapper)`` (:mod:`.layout_validate`)."""

    key: str
    filename: str
    wrapper: nn.Module
    metadata: dict[str, str]
    simplify_note: str = ""
    check: Callable | None = None


def graph_metadata(family: Family, variant: str, sha256: str, opset: int) -> dict[str, str]:
    """The ``metadata_props`` every graph carries (the family's preprocessing included); role- and
    family-specific keys are added after these."""
    return {
        "producer": TOOL_NAME,
        "sam_onnx_version": __version__,
        "family": family.name,
        "variant": variant,
        "checkpoint_sha256": sha256,
        "opset": str(opset),
        "input_size": str(IMAGE_SIZE),
        "pixel_mean": json.dumps(list(family.pixel_mean)),
        "pixel_std": json.dumps(list(family.pixel_std)),
        "resize": family.resize,
        "precision": "fp32",
    }


def layout_metadata(common: Mapping[str, str], layout: str) -> dict[str, str]:
    """``common`` with the layout's keys: none for ours (those graphs are unchanged); for a client
    layout its name and what the client gets where our layout gives more."""
    if layout == DEFAULT_LAYOUT:
        return dict(common)
    family = common["family"]
    return {**common, "layout": layout, "layout_client_gets": SAMEXPORTER_LAYOUTS[family].client_gets}
