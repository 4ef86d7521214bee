"""The export side of each model family, as data: one :class:`ExportFamily` record per family.

The family-independent steps of :func:`.api.export_sam` (load, trace, simplify, reduced
precision, the fast pair, staging, the manifest) ask the record of the loaded model's family for
what differs: the metadata of its graphs, the plan of graphs to trace and the rules of its
validation. Adding a family: a record here, its plan module (``<family>_plan.py``), its
:class:`.validate.ValidationRules` and one module per graph that really differs; the family's
rules themselves are in :mod:`sam_onnx.families`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..families import SAM, SAM2, Family, family_of
from .precision import SAM2_INT8_MAX_ROWS
from .sam2_plan import plan_sam2_graphs, sam2_metadata
from .sam2_reference import SAM2_VALIDATION
from .sam2_video_plan import plan_video
from .sam_plan import plan_sam_graphs, sam_metadata
from .validate import SAM_VALIDATION, ValidationRules


@dataclass(frozen=True)
class ExportFamily:
    """What an export does for one family.

    Attributes:
      family: the family's rules (:mod:`sam_onnx.families`).
      metadata: ``(common metadata, variant) -> metadata`` every graph of the family carries.
      plan: ``(model, ExportOptions, metadata) -> [GraphSpec]``: the fp32 graphs to trace.
      validation: what :class:`.validate.Validator` computes for the family (its parity checks
        with PyTorch).
      int8_encoder_max_rows: the int8 encoder quantises only products on at most this many rows
        (None: every product with a constant weight).
      video: ``(model, checkpoint, ExportOptions, metadata) -> ([GraphSpec], note)``: the video
        graphs to trace and what happens to them (``export.json`` ``video_graphs``); None for a
        family without video graphs.
    """

    family: Family
    metadata: Callable[[Mapping[str, str], object], dict[str, str]]
    plan: Callable
    validation: ValidationRules
    int8_encoder_max_rows: int | None = None
    video: Callable | None = None


EXPORT_FAMILIES: dict[str, ExportFamily] = {
    SAM.name: ExportFamily(SAM, sam_metadata, plan_sam_graphs, SAM_VALIDATION),
    SAM2.name: ExportFamily(
        SAM2,
        sam2_metadata,
        plan_sam2_graphs,
        SAM2_VALIDATION,
        int8_encoder_max_rows=SAM2_INT8_MAX_ROWS,
        video=plan_video,
    ),
}


def export_family(variant) -> ExportFamily:
    """The record of a variant's family (a :class:`~sam_onnx.variants.SamVariant` or ``Sam2Variant``)."""
    return EXPORT_FAMILIES[family_of(variant.family, "variant family").name]
