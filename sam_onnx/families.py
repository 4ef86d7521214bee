"""The model families as data (torch-free): one frozen :class:`Family` record each, in :data:`FAMILIES`.

SAM v1 (``"sam"``) and SAM 2 / 2.1 (``"sam2"``) share the decoder contract's shape and differ in a
handful of rules, all of them here: the resize, the pixel statistics, the image features, where the
box corners and the padding point go, the clamp of returned low-res logits, the single-mask rule,
the embedding file's version and the automatic mask generator's defaults. The runtime and the
exporter ask the record (``family_of(metadata["family"])``); nothing else compares family names.
The page's copy of these records is generated from them (:mod:`sam_onnx.web_contract`).

To add a family: one record here (a test fails when a field is missing), its variants in
:mod:`sam_onnx.variants`, and on the export side one module per graph that really differs
(:mod:`sam_onnx.export.families`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .contract import HIGH_RES_FEATS, IMAGE_EMBEDDINGS, ORIG_IM_SIZE, PROMPT_INPUTS, Tensor
from .errors import InvalidInputError
from .variants import (
    OFFICIAL_SAM2_VARIANTS,
    OFFICIAL_VARIANTS,
    PIXEL_MEAN,
    PIXEL_STD,
    SAM2_PIXEL_MEAN,
    SAM2_PIXEL_STD,
    SAM2_VARIANTS,
    VARIANTS,
)

Resize = Literal["long_side", "square"]


@dataclass(frozen=True)
class Stability:
    """SAM 2's single-mask rule: token 0 unless its low-res stability ``count(> delta) /
    count(> -delta)`` is under ``thresh``; then the best IoU among tokens 1..3."""

    delta: float
    thresh: float


@dataclass(frozen=True)
class AmgRules:
    """What the official automatic mask generator of a family does differently.

    Attributes:
      pred_iou_thresh: the default of ``pred_iou_thresh``.
      points_dtype: the clicks' numpy dtype name (the official SAM 2 generator casts them to
        float32 before scaling them, and reports those values; SAM v1 keeps numpy's float64).
      refinement: ``use_m2m`` and ``multimask_output=False`` exist (SAM 2 only).
      region_filling: ``min_mask_region_area`` is supported (SAM v1: OpenCV on the upscaled masks;
        SAM 2 fills holes in the decoder's unclamped low-res logits, inside the graph: not supported).
    """

    pred_iou_thresh: float
    points_dtype: str
    refinement: bool
    region_filling: bool


@dataclass(frozen=True)
class Family:
    """One model family's rules.

    Attributes:
      name: the ``family`` value of graph metadata, export.json and embedding files.
      label: what people call it (``SAM v1``, ``SAM 2``).
      resize: ``long_side`` (long side to 1024, aspect kept, padded bottom/right) or ``square``
        (to 1024 x 1024, aspect not kept): the frame of the encoder input and of ``point_coords``.
      pixel_mean, pixel_std: RGB normalisation, on the scale ``pixel_scale`` (``0..255``, or
        ``0..1``: the image is divided by 255 first).
      features: the encoder's outputs, which are the decoder's image inputs, in that order.
      box_first: box corners (labels 2, 3) go before the clicks (SAM 2) or after them (SAM v1).
      pad_without_box: the caller appends the padding point (0, 0) labelled -1 to a prompt without
        a box (SAM v1's predictor); SAM 2's decoder graph appends it itself, always.
      normalized_coords: the predictor accepts coordinates already divided by (W, H)
        (the official SAM 2 ``normalize_coords=False``).
      low_res_clamp: the decoder contract returns low-res logits clamped to +- this; None: not.
      stability: the single-mask rule: None is SAM v1's official ONNX rule (token 0 in the
        predictor; the graph's argmax of ``iou + (N - 2.5) * 1000``), else SAM 2's fallback.
      embedding_version: the ``version`` of this family's embedding files.
      amg: the automatic mask generator's rules.
      variants: the registry of this family's variants (name -> variant record).
      official_variants: the names of the released checkpoints' variants.
      page_encoder: the web page can run this family's encoder in the browser (SAM v1's ViT, up
        to about ViT-B); otherwise the page decodes embeddings made by the runtime.
    """

    name: str
    label: str
    resize: Resize
    pixel_mean: tuple[float, float, float]
    pixel_std: tuple[float, float, float]
    pixel_scale: str
    features: tuple[Tensor, ...]
    box_first: bool
    pad_without_box: bool
    normalized_coords: bool
    low_res_clamp: float | None
    stability: Stability | None
    embedding_version: int
    amg: AmgRules
    variants: dict
    official_variants: tuple[str, ...]
    page_encoder: bool

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.features)

    @property
    def decoder_inputs(self) -> tuple[str, ...]:
        """The decoder contract's inputs, in graph order: features, prompt, ``orig_im_size``."""
        return (*self.feature_names, *PROMPT_INPUTS, ORIG_IM_SIZE.name)

    @property
    def single_mask_needs_all_tokens(self) -> bool:
        """The single-mask rule looks at all four tokens (so the predictor needs a 4-token decoder
        even for one mask)."""
        return self.stability is not None


SAM = Family(
    name="sam",
    label="SAM v1",
    resize="long_side",
    pixel_mean=PIXEL_MEAN,
    pixel_std=PIXEL_STD,
    pixel_scale="0..255",
    features=(IMAGE_EMBEDDINGS,),
    box_first=False,
    pad_without_box=True,
    normalized_coords=False,
    low_res_clamp=None,
    stability=None,
    embedding_version=1,
    amg=AmgRules(pred_iou_thresh=0.88, points_dtype="float64", refinement=False, region_filling=True),
    variants=VARIANTS,
    official_variants=OFFICIAL_VARIANTS,
    page_encoder=True,
)

SAM2 = Family(
    name="sam2",
    label="SAM 2",
    resize="square",
    pixel_mean=SAM2_PIXEL_MEAN,
    pixel_std=SAM2_PIXEL_STD,
    pixel_scale="0..1",
    features=(IMAGE_EMBEDDINGS, *HIGH_RES_FEATS),
    box_first=True,
    pad_without_box=False,
    normalized_coords=True,
    low_res_clamp=32.0,
    # the SAM 2.1 configs' dynamic_multimask_stability_delta / _thresh
    stability=Stability(delta=0.05, thresh=0.98),
    embedding_version=2,  # adds "family" and the high-res feature files
    amg=AmgRules(pred_iou_thresh=0.8, points_dtype="float32", refinement=True, region_filling=False),
    variants=SAM2_VARIANTS,
    official_variants=OFFICIAL_SAM2_VARIANTS,
    page_encoder=False,
)

FAMILIES: dict[str, Family] = {f.name: f for f in (SAM, SAM2)}
# What a graph or file that names no family is: files of sam-onnx before SAM 2 were SAM v1.
DEFAULT_FAMILY = SAM


def family_of(name: object, where: str = "family") -> Family:
    """The record of family ``name`` (``None``: :data:`DEFAULT_FAMILY`); raises
    :class:`InvalidInputError` naming ``where``, the known families and what came."""
    if name is None:
        return DEFAULT_FAMILY
    if isinstance(name, Family):
        return name
    found = FAMILIES.get(name) if isinstance(name, str) else None
    if found is None:
        raise InvalidInputError(where, f"one of {tuple(FAMILIES)}", repr(name))
    return found


def label(name: object) -> str:
    """``SAM v1`` / ``SAM 2`` for a family name, or the name itself when it is none of ours."""
    found = FAMILIES.get(name) if isinstance(name, str) else None
    return name if found is None else found.label


def family_of_variant(variant) -> Family:
    """The family of a variant record (:class:`~sam_onnx.variants.SamVariant` / ``Sam2Variant``)."""
    return family_of(variant.family, "variant family")
