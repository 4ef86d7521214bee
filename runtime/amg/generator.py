"""Automatic mask generation ("segment everything") without torch, as the official generator.

For each crop (the whole image, then ``crop_n_layers`` layers of overlapping crops): embed the
crop once, decode a grid of single-click prompts in batches through the batched decoder (three
multimask outputs each), and per batch keep masks whose predicted IoU and stability score pass,
that are not cut by the crop's edge; encode them as RLE at once, so no more than one decoder run
of full-size masks is ever held. Then box NMS within the crop, NMS across crops (smaller crops
win), and optionally hole/island removal. Annotations have the official fields and order.

SAM 2 / 2.1 exports run the same algorithm with the official ``SAM2AutomaticMaskGenerator``'s
differences, which are data (``Family.amg`` in :mod:`sam_onnx.families`) and one step
(:meth:`AutomaticMaskGenerator._refine`): the default ``pred_iou_thresh`` (0.8, not 0.88); clicks
kept in float32 (their ``point_coords`` are float32 values); ``multimask_output=False`` (SAM 2's
single-mask rule per click) and ``use_m2m`` (each mask decoded once more with its own low-res logits as
``mask_input``, single-mask output; filters and scores then apply to the refined masks).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace

import numpy as np

from sam_onnx.errors import InvalidInputError
from sam_onnx.families import DEFAULT_FAMILY, family_of
from sam_onnx.images import ImageSource, load_image
from sam_onnx.progress import bar, plural

from ..core.predictor import MASK_THRESHOLD, SamPredictor
from .crops import crop_boxes, layer_point_grids
from .masks import (
    is_box_near_crop_edge,
    masks_to_boxes,
    nms,
    remove_small_regions,
    stability_score,
    uncrop_boxes,
    uncrop_masks,
    uncrop_points,
)
from .rle import coco_encode, masks_to_rle, rle_area, rle_to_mask

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")


# The filters in the order they apply, as named in AmgOptions (crop_edge: masks touching a crop's
# inner edge; min_mask_region_area: the box NMS after hole/island removal).
FILTERS = (
    "pred_iou_thresh",
    "stability_score_thresh",
    "crop_edge",
    "box_nms_thresh",
    "crop_nms_thresh",
    "min_mask_region_area",
)


@dataclass(frozen=True)
class AmgOptions:
    """The official ``SamAutomaticMaskGenerator`` parameters, with its defaults.

    Attributes:
      points_per_side: grid of n x n clicks on the whole image (``None`` with ``point_grids``).
      points_per_batch: clicks decoded per onnxruntime run (fewer for very large crops, so that
        one run's full-size logits stay within the predictor's memory bound).
      pred_iou_thresh, stability_score_thresh: keep masks above these (0 keeps all);
        ``pred_iou_thresh`` ``None``: the model family's default (0.88 SAM v1, 0.8 SAM 2).
      stability_score_offset: logit offset of the stability score.
      box_nms_thresh: box IoU above which the lower-scored mask of a crop is dropped.
      crop_n_layers: extra layers of crops; layer i has 2^i x 2^i crops.
      crop_nms_thresh: box IoU for suppression across crops.
      crop_overlap_ratio: crop overlap, as a fraction of the short image side (layer 1).
      crop_n_points_downscale_factor: layer i has ``points_per_side / factor**i`` points per side.
      point_grids: explicit per-layer grids of (x, y) in [0, 1], instead of points_per_side.
      min_mask_region_area: fill holes and drop islands under this many pixels (0: off).
      output_mode: ``binary_mask`` (H x W bool), ``uncompressed_rle`` or ``coco_rle``.
      use_m2m: SAM 2 only: refine each mask once with its own low-res logits (official ``use_m2m``).
      multimask_output: three masks per click; ``False``: one (SAM 2 only, its single-mask rule).
    """

    points_per_side: int | None = 32
    points_per_batch: int = 64
    pred_iou_thresh: float | None = None
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    point_grids: tuple[np.ndarray, ...] | None = field(default=None, compare=False)
    min_mask_region_area: int = 0
    output_mode: str = "binary_mask"
    use_m2m: bool = False
    multimask_output: bool = True

    def __post_init__(self) -> None:
        if (self.points_per_side is None) == (self.point_grids is None):
            raise InvalidInputError(
                "points_per_side / point_grids",
                "exactly one of the two",
                "both" if self.point_grids else "neither",
            )
        for name in ("points_per_side", "points_per_batch", "crop_n_points_downscale_factor"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InvalidInputError(name, "an integer >= 1", repr(value))
        for name in ("crop_n_layers", "min_mask_region_area"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise InvalidInputError(name, "an integer >= 0", repr(getattr(self, name)))
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh"):
            if getattr(self, name) is not None and not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise InvalidInputError(name, "a number from 0 to 1", repr(getattr(self, name)))
        if not 0.0 <= self.crop_overlap_ratio < 1.0:
            raise InvalidInputError("crop_overlap_ratio", "a number in [0, 1)", repr(self.crop_overlap_ratio))
        if self.output_mode not in OUTPUT_MODES:
            raise InvalidInputError("output_mode", f"one of {OUTPUT_MODES}", repr(self.output_mode))
        if self.point_grids is not None:
            self._check_grids()

    def _check_grids(self) -> None:
        if len(self.point_grids) != self.crop_n_layers + 1:
            raise InvalidInputError(
                "point_grids",
                f"one grid per crop layer ({self.crop_n_layers + 1})",
                f"{len(self.point_grids)}",
            )
        for grid in self.point_grids:
            grid = np.asarray(grid, np.float64)
            if (
                grid.ndim != 2
                or grid.shape[1] != 2
                or not np.isfinite(grid).all()
                or (grid < 0).any()
                or (grid > 1).any()
            ):
                raise InvalidInputError("point_grids", "N x 2 (x, y) arrays in [0, 1]", f"shape {grid.shape}")

    def for_family(self, family: str) -> AmgOptions:
        """These options for a model of ``family`` (``"sam"`` / ``"sam2"``): the family's default
        ``pred_iou_thresh`` filled in; the SAM 2-only options refused for SAM v1."""
        label, rules = family_of(family).label, family_of(family).amg
        if not rules.refinement:
            for name, default in (("use_m2m", False), ("multimask_output", True)):
                if getattr(self, name) != default:
                    why = "the official SamAutomaticMaskGenerator has no such option"
                    raise InvalidInputError(
                        name, f"{default} for a {label} model ({why})", repr(getattr(self, name))
                    )
        if not rules.region_filling and self.min_mask_region_area > 0:
            # The official SAM 2 generator fills holes and removes islands in the decoder's
            # unclamped low-res logits before they are upscaled, which the exported graph does inside.
            raise InvalidInputError(
                "min_mask_region_area",
                "0 for a SAM 2 model (its hole filling works on the decoder's unclamped low-res logits, "
                "inside the exported graph; not supported)",
                repr(self.min_mask_region_area),
            )
        if self.pred_iou_thresh is not None:
            return self
        return replace(self, pred_iou_thresh=rules.pred_iou_thresh)

    def grids(self) -> list[np.ndarray]:
        if self.point_grids is not None:
            return [np.asarray(g, np.float64) for g in self.point_grids]
        return layer_point_grids(
            self.points_per_side, self.crop_n_layers, self.crop_n_points_downscale_factor
        )


def _rows(logits: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Masks ``index`` (click-major, M per click) of ``b x M x h x w`` logits as ``n x h x w``,
    copying only the selected ones (full-size logits are large)."""
    per_click = logits.shape[1]
    if len(index) == logits.shape[0] * per_click:
        return logits.reshape(-1, *logits.shape[2:])
    return logits[index // per_click, index % per_click]


@dataclass
class _Masks:
    """Masks kept so far, one row each: RLE at full image size, box (inclusive xyxy, image
    frame once uncropped), IoU, stability, click (x, y) and crop box."""

    rles: list[dict] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    iou: list[np.ndarray] = field(default_factory=list)
    stability: list[np.ndarray] = field(default_factory=list)
    points: list[np.ndarray] = field(default_factory=list)
    crop_boxes: list[np.ndarray] = field(default_factory=list)

    def add(self, other: _Masks) -> None:
        for f in fields(self):
            getattr(self, f.name).extend(getattr(other, f.name))

    def keep(self, index: np.ndarray) -> None:
        for f in fields(self):
            values = getattr(self, f.name)
            setattr(self, f.name, [values[i] for i in index])

    def __len__(self) -> int:
        return len(self.rles)


class AutomaticMaskGenerator:
    """The official ``SamAutomaticMaskGenerator`` on a :class:`SamPredictor` (batched decoder).

    ``generate(image)`` returns annotations as the official one: ``segmentation`` (per
    ``output_mode``), ``area``, ``bbox`` (x, y, w, h with w = x1 - x0 of the inclusive box, as
    officially), ``predicted_iou``, ``point_coords`` ([[x, y]]), ``stability_score``,
    ``crop_box`` (x, y, w, h). Options: :class:`AmgOptions` or the same names as keywords.
    """

    def __init__(self, predictor: SamPredictor, options: AmgOptions | None = None, **kwargs) -> None:
        if options is not None and kwargs:
            raise InvalidInputError("options", "an AmgOptions or keywords", "both")
        self.predictor = predictor
        self.family = getattr(predictor, "family", DEFAULT_FAMILY.name)
        self.options = (options or AmgOptions(**kwargs)).for_family(self.family)
        self.grids = self.options.grids()
        # seconds spent in the last generate(): encoder, decoder, postprocess; and prompts decoded
        self.timings: dict[str, float] = {}
        # masks of the last generate(): "candidates" decoded, then how many each filter removed
        self.filter_counts: dict[str, int] = {}

    def generate(self, image: ImageSource, *, bgr: bool = False) -> list[dict]:
        """Masks for everything in ``image`` (``H x W x 3`` uint8 RGB, or any source
        :func:`~sam_onnx.images.load_image` reads)."""
        rgb = load_image(image, bgr=bgr, max_pixels=self.predictor.max_pixels)
        start = time.perf_counter()
        data = self.generate_masks(rgb)
        anns = self.annotations(data, rgb.shape[:2])
        clock = self.timings  # everything that is neither graph is post-processing
        clock["postprocess"] = time.perf_counter() - start - clock["encoder"] - clock["decoder"]
        return anns

    def generate_masks(self, rgb: np.ndarray) -> _Masks:
        opts = self.options
        self.timings = dict.fromkeys(("encoder", "decoder", "postprocess", "prompts"), 0)
        self.filter_counts = dict.fromkeys(("candidates", *FILTERS), 0)
        orig_hw = rgb.shape[:2]
        boxes, layers = crop_boxes(orig_hw, opts.crop_n_layers, opts.crop_overlap_ratio)
        data = _Masks()
        clicks = sum(len(self.grids[layer]) for layer in layers)
        with bar(total=clicks, desc="segmenting", unit="click", progress=self.predictor.progress) as done:
            for i, (box, layer) in enumerate(zip(boxes, layers, strict=True)):
                done.set_description(f"crop {i + 1}/{len(boxes)}" if len(boxes) > 1 else "segmenting")
                data.add(self._process_crop(rgb, box, layer, done))
        if len(boxes) > 1 and len(data):
            crops = np.asarray(data.crop_boxes, np.float64)
            scores = 1 / ((crops[:, 2] - crops[:, 0]) * (crops[:, 3] - crops[:, 1]))
            self._keep(data, nms(np.asarray(data.boxes), scores, opts.crop_nms_thresh), "crop_nms_thresh")
        if opts.min_mask_region_area > 0 and len(data):
            self._remove_small_regions(data, max(opts.box_nms_thresh, opts.crop_nms_thresh))
        return data

    def _keep(self, data: _Masks, index: np.ndarray, stage: str) -> None:
        """``data.keep(index)``, counting the masks left out against ``stage``."""
        self.filter_counts[stage] += len(data) - len(index)
        data.keep(index)

    def _process_crop(self, rgb: np.ndarray, crop_box: list[int], layer: int, progress) -> _Masks:
        x0, y0, x1, y1 = crop_box
        crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        clock = self.timings
        start = time.perf_counter()
        emb = self.predictor.embed(crop)
        clock["encoder"] += time.perf_counter() - start
        h, w = crop.shape[:2]
        points = self.grids[layer] * np.array([w, h], np.float64)
        points = points.astype(family_of(self.family).amg.points_dtype)
        data = _Masks()
        done = 0
        opts = self.options
        runs = self.predictor.decode_points(
            points, emb, batch=opts.points_per_batch, multimask_output=opts.multimask_output
        )
        for logits, iou, low_res in self._timed(runs):
            batch_points = points[done : done + len(iou)]
            done += len(iou)
            if opts.use_m2m:
                for run, run_points in self._refine(batch_points, low_res, emb):
                    data.add(self._process_batch(*run, run_points, crop_box, rgb.shape[:2]))
            else:
                data.add(self._process_batch(logits, iou, batch_points, crop_box, rgb.shape[:2]))
            progress.update(len(iou))
        clock["prompts"] += done
        if not len(data):
            return data
        keep = nms(np.asarray(data.boxes), np.asarray(data.iou), self.options.box_nms_thresh)
        self._keep(data, keep, "box_nms_thresh")
        data.boxes = list(uncrop_boxes(np.asarray(data.boxes), crop_box))
        data.points = list(uncrop_points(np.asarray(data.points), crop_box))
        return data

    def _timed(self, runs):
        """The decoder's runs, their time added to ``timings["decoder"]``."""
        while True:
            start = time.perf_counter()
            run = next(runs, None)
            self.timings["decoder"] += time.perf_counter() - start
            if run is None:
                return
            yield run

    def _refine(self, points: np.ndarray, low_res: np.ndarray, emb):
        """SAM 2's ``use_m2m``: every mask of ``b`` clicks (``b x M x 256 x 256`` low-res logits,
        clamped as the official predictor returns them) decoded again from its click with those
        logits as ``mask_input``, one mask each (the single-mask rule). Yields ((logits ``n x 1 x H
        x W``, IoU ``n x 1``), the ``n`` clicks) per decoder run, in order."""
        per_click = low_res.shape[1]
        clicks = np.repeat(points, per_click, axis=0)
        masks_in = low_res.reshape(-1, 1, *low_res.shape[2:])
        runs = self.predictor.decode_points(
            clicks, emb, batch=self.options.points_per_batch, multimask_output=False, mask_input=masks_in
        )
        done = 0
        for logits, iou, _ in self._timed(runs):
            yield (logits, iou), clicks[done : done + len(iou)]
            done += len(iou)

    def _process_batch(self, logits, iou, points, crop_box, orig_hw) -> _Masks:
        """``b x M x h x w`` logits and ``b x M`` IoU of b clicks -> the masks that pass."""
        opts, counts = self.options, self.filter_counts
        iou = iou.reshape(-1)
        points = np.repeat(points, logits.shape[1], axis=0)
        index = (
            np.arange(len(iou)) if opts.pred_iou_thresh <= 0 else np.flatnonzero(iou > opts.pred_iou_thresh)
        )
        counts["candidates"] += len(iou)
        counts["pred_iou_thresh"] += len(iou) - len(index)
        stability = np.zeros(len(iou), np.float32)
        stability[index] = stability_score(_rows(logits, index), MASK_THRESHOLD, opts.stability_score_offset)
        if opts.stability_score_thresh > 0:
            passed = index[stability[index] >= opts.stability_score_thresh]
            counts["stability_score_thresh"] += len(index) - len(passed)
            index = passed
        masks = _rows(logits, index) > MASK_THRESHOLD
        boxes = masks_to_boxes(masks)
        h, w = orig_hw
        inside = ~is_box_near_crop_edge(boxes, crop_box, [0, 0, w, h])
        counts["crop_edge"] += int((~inside).sum())
        if not inside.all():
            masks, boxes, index = masks[inside], boxes[inside], index[inside]
        return _Masks(
            rles=masks_to_rle(uncrop_masks(masks, crop_box, orig_hw)),
            boxes=list(boxes),
            iou=list(iou[index]),
            stability=list(stability[index]),
            points=list(points[index]),
            crop_boxes=[np.asarray(crop_box)] * len(index),
        )

    def _remove_small_regions(self, data: _Masks, nms_thresh: float) -> None:
        """Fill holes and drop islands under ``min_mask_region_area``; then a box NMS that
        prefers masks this left unchanged (official ``postprocess_small_regions``)."""
        min_area = self.options.min_mask_region_area
        new_rles, boxes, unchanged = [], [], []
        for rle in data.rles:  # one full-size mask at a time
            mask, holes = remove_small_regions(rle_to_mask(rle), min_area, "holes")
            mask, islands = remove_small_regions(mask, min_area, "islands")
            unchanged.append(not (holes or islands))
            new_rles.append(rle if unchanged[-1] else masks_to_rle(mask[None])[0])
            boxes.append(masks_to_boxes(mask[None])[0])
        keep = nms(np.asarray(boxes), np.asarray(unchanged, np.float64), nms_thresh)
        for i in keep:
            if not unchanged[i]:
                data.rles[i], data.boxes[i] = new_rles[i], boxes[i]
        self._keep(data, keep, "min_mask_region_area")

    def annotations(self, data: _Masks, orig_hw: tuple[int, int]) -> list[dict]:
        mode = self.options.output_mode
        anns = []
        for i, rle in enumerate(data.rles):
            if mode == "coco_rle":
                segmentation = coco_encode(rle)
            elif mode == "binary_mask":
                segmentation = rle_to_mask(rle)
            else:
                segmentation = rle
            x0, y0, x1, y1 = (int(v) for v in data.boxes[i])
            cx0, cy0, cx1, cy1 = (int(v) for v in data.crop_boxes[i])
            anns.append(
                {
                    "segmentation": segmentation,
                    "area": rle_area(rle),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "predicted_iou": float(data.iou[i]),
                    "point_coords": [[float(v) for v in data.points[i]]],
                    "stability_score": float(data.stability[i]),
                    "crop_box": [cx0, cy0, cx1 - cx0, cy1 - cy0],
                }
            )
        return anns


def describe_filters(counts: dict[str, int], options: AmgOptions) -> str:
    """Where the masks went, from :attr:`AutomaticMaskGenerator.filter_counts`: e.g.
    ``"of 3072 candidate masks, pred_iou_thresh 0.88 removed 3060, stability_score_thresh 0.95
    removed 12"`` (filters that removed none are left out)."""
    parts = [f"of {plural(counts.get('candidates', 0), 'candidate mask')}"]
    for name in FILTERS:
        if counts.get(name):
            setting = "" if name == "crop_edge" else f" {getattr(options, name):g}"
            parts.append(f"{name}{setting} removed {counts[name]}")
    return ", ".join(parts)
