"""Parity checks of a SAM 2 export: onnxruntime against the PyTorch :class:`Sam2`, on fresh inputs.

The same checks, sizes and tolerances as SAM v1's (:mod:`.validate`): three image sizes other than
the traced ones (or the caller's images), and per size one point, five points, a box and a mask
input fed back from the one-point case; the batched decoder on a batch of four prompts and a
batch of one. The reference is the official computation, not the traced wrapper: the
preprocessing by ``F.interpolate(antialias=True)``, :meth:`Sam2.encode`, :meth:`Sam2.decode` in
the official (unfactored) form with the prompt encoder's own padding point, the official
selection rule, one bilinear resize to (H, W) and the clamp of the returned low-res logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sam_onnx.modeling.sam2 import select_masks

from ..families import SAM2
from ..preprocess import sam2_coords_1024
from ..variants import IMAGE_SIZE, SAM2_PIXEL_MEAN, SAM2_PIXEL_STD
from .sam2_decoder_graph import LOW_RES_CLAMP, Sam2DecoderGraph
from .sam2_encoder_graph import Sam2EncoderGraph
from .validate import (
    MIN_MASK_IOU,
    Quality,
    ValidationReport,
    Validator,
    _batch,
    _cosine,
    _iou,
    _session,
    _torch_outputs,
    compare,
    default_images,
)

FEATURE_NAMES = SAM2.feature_names  # the encoder's outputs, the decoder's image inputs
MASK_CASE_SOURCE = "one_point"  # the case whose low-res output feeds the mask-input case


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


def reference_decoder(
    model, feed: Mapping[str, np.ndarray], *, multimask: bool, batched: bool
) -> list[np.ndarray]:
    """The outputs the decoder graph should give for ``feed`` (its input names), computed the
    official way, one prompt (row) at a time."""
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feed.items()}
    features = tuple(t[name] for name in FEATURE_NAMES)
    rows = []
    with torch.inference_mode():
        for b in range(t["point_coords"].shape[0]):
            mask = t["mask_input"][b : b + 1] if float(t["has_mask_input"][b]) == 1.0 else None
            coords, labels = t["point_coords"][b : b + 1], t["point_labels"][b : b + 1]
            rows.append(model.decode(*features, coords, labels, mask, factored=False))
        low_res = torch.cat([r.low_res_logits for r in rows])
        iou = torch.cat([r.iou_predictions for r in rows])
        if not batched:
            low_res, iou = select_official(low_res, iou, multimask=multimask, variant=model.variant)
        hw = [int(s) for s in feed["orig_im_size"]]
        masks = F.interpolate(low_res, hw, mode="bilinear", align_corners=False)
        out = [masks, iou, low_res.clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)]
        if batched:
            out.append(torch.cat([r.object_score_logits for r in rows]))
    return [o.numpy() for o in out]


def select_official(
    low_res: torch.Tensor, iou: torch.Tensor, *, multimask: bool, variant
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sam_onnx.modeling.sam2.select_masks` with ``variant``'s stability settings."""
    delta, thresh = variant.dynamic_multimask_stability_delta, variant.dynamic_multimask_stability_thresh
    return select_masks(low_res, iou, multimask=multimask, delta=delta, threshold=thresh)


def sam2_decoder_cases(orig_hw: tuple[int, int], seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Prompts in original-image pixels (x, y) taken to the square 1024 frame: one point, five
    points, a box, and two points with a mask input (filled in by the caller). No padding point:
    the graph appends it. Returns the five prompt inputs per case."""
    h, w = orig_hw
    rng = np.random.default_rng(seed)

    def feed(coords, labels, mask=None):
        return {
            "point_coords": sam2_coords_1024(np.asarray(coords, np.float32), orig_hw)[None],
            "point_labels": np.asarray(labels, np.float32)[None],
            "mask_input": np.zeros((1, 1, 256, 256), np.float32) if mask is None else mask,
            "has_mask_input": np.array([0.0 if mask is None else 1.0], np.float32),
            "orig_im_size": np.array([h, w], np.float32),
        }

    def point():
        return [rng.uniform(0, w - 1), rng.uniform(0, h - 1)]

    xs = sorted(rng.uniform(0, w - 1, size=2))
    ys = sorted(rng.uniform(0, h - 1, size=2))
    return {
        "one_point": feed([point()], [1]),
        "five_points": feed([point() for _ in range(5)], [1, 1, 0, 1, 0]),
        "box": feed([[xs[0], ys[0]], [xs[1], ys[1]]], [2, 3]),
        "mask_input": feed([point(), point()], [1, 0], mask=np.zeros((1, 1, 256, 256), np.float32)),
    }


@dataclass(frozen=True)
class Sam2Image:
    name: str
    orig_hw: tuple[int, int]
    image: np.ndarray  # H x W x 3 uint8, the original
    normalized: np.ndarray  # 1 x 3 x 1024 x 1024 float32, the official preprocessing


class Sam2Validator(Validator):
    """:class:`.validate.Validator`'s checks for a SAM 2 export (same methods, same report)."""

    def __init__(
        self, model, images: Mapping[str, np.ndarray] | None = None, *, progress: bool | None = False
    ):
        self.sam = model
        self.progress = progress
        raw = default_images() if images is None else images
        self.images = [
            Sam2Image(name, image.shape[:2], image, official_input(image).numpy())
            for name, image in raw.items()
        ]
        self._features: dict[str, list[np.ndarray]] = {}
        self._cases: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        # The fp32 encoder's outputs and masks, shared by the fp16 and int8 measurements.
        self._fp32_masks: dict[tuple[str, str], tuple[list[np.ndarray], list[np.ndarray]]] = {}
        self.report = ValidationReport()

    def features(self, img: Sam2Image) -> list[np.ndarray]:
        """The PyTorch encoder's three outputs for ``img`` (cached)."""
        if img.name not in self._features:
            with torch.inference_mode():
                self._features[img.name] = [
                    f.numpy() for f in self.sam.encode(torch.from_numpy(img.normalized))
                ]
        return self._features[img.name]

    def cases(self, img: Sam2Image) -> dict[str, dict[str, np.ndarray]]:
        """Decoder feeds for ``img`` (input names -> arrays); the mask case gets the one-point
        case's returned low-res logits (clamped, as a caller feeds them back)."""
        if img.name not in self._cases:
            feats = dict(zip(FEATURE_NAMES, self.features(img), strict=True))
            cases = sam2_decoder_cases(img.orig_hw, seed=len(self._cases) + 100)
            cases = {case: {**feats, **prompt} for case, prompt in cases.items()}
            source = reference_decoder(self.sam, cases[MASK_CASE_SOURCE], multimask=False, batched=False)
            cases["mask_input"]["mask_input"] = source[2]
            self._cases[img.name] = cases
        return self._cases[img.name]

    def reference_tokens(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """As :meth:`Validator.reference_tokens`, by the official SAM 2 computation (low-res
        logits clamped, as the contract returns them)."""
        masks, iou, low_res, _ = reference_decoder(self.sam, feed, multimask=False, batched=True)
        return [masks, low_res, iou]

    def _encoder_feed(self, kind: str, img: Sam2Image) -> dict[str, np.ndarray]:
        return {"image": img.normalized if kind == "normalized" else img.image}

    def check_encoder(self, name: str, path: Path, wrapper: Sam2EncoderGraph) -> None:
        session = _session(path)
        if not self.check_interface(name, session, wrapper):
            return
        with self._bar(name, len(self.images)) as done:
            for img in self.images:
                got = self._run(name, img.name, session, self._encoder_feed(wrapper.input_kind, img))
                if got is not None:
                    self.report.checks += compare(name, img.name, FEATURE_NAMES, got, self.features(img))
                done.update()

    def decoder_feeds(self, img: Sam2Image, batched: bool) -> dict[str, dict[str, np.ndarray]]:
        cases = self.cases(img)
        if not batched:
            return cases
        feats = {k: cases[MASK_CASE_SOURCE][k] for k in FEATURE_NAMES[1:]}
        return {
            "batch_of_4": {**_batch(cases, list(cases), n=5), **feats},
            "batch_of_1": cases["five_points"],
        }

    def check_decoder(self, name: str, path: Path, wrapper: Sam2DecoderGraph) -> None:
        session = _session(path)
        if not self.check_interface(name, session, wrapper):
            return
        per_image = 2 if wrapper.batched else len(sam2_decoder_cases((1, 1), 0))
        with self._bar(name, per_image * len(self.images)) as done:
            for img in self.images:
                for case, feed in self.decoder_feeds(img, wrapper.batched).items():
                    got = self._run(name, f"{img.name}/{case}", session, feed)
                    if got is not None:
                        kind = {"multimask": wrapper.multimask, "batched": wrapper.batched}
                        want = reference_decoder(self.sam, feed, **kind)
                        self.report.checks += compare(
                            name, f"{img.name}/{case}", wrapper.output_names, got, want
                        )
                    done.update()

    def check_precision(
        self,
        name: str,
        path: Path,
        reference_name: str,
        reference_path: Path,
        *,
        role: str,
        encoder_kind: str = "normalized",
        min_mask_iou: float = MIN_MASK_IOU,
    ) -> Quality:
        """A reduced-precision graph against its fp32 graph (``role``: encoder or decoder): feature
        max abs and least cosine, and mask IoU: per mask token for an encoder, of the returned masks
        for a decoder."""
        low, ref = _session(path), _session(reference_path)
        stats = {"emb": [], "cos": [], "low_res": [], "iou": [], "finite": True}
        with self._bar(name, len(self.images)) as done:
            for img in self.images:
                if role == "encoder":
                    self._encoder_quality(name, img, low, ref, encoder_kind, stats)
                else:
                    self._decoder_quality(name, img, low, ref, stats)
                done.update()
        ious = stats["iou"]
        quality = Quality(
            graph=name,
            reference=reference_name,
            embedding_max_abs=max(stats["emb"]) if stats["emb"] else None,
            embedding_cosine=min(stats["cos"]) if stats["cos"] else None,
            low_res_max_abs=max(stats["low_res"]) if stats["low_res"] else None,
            mask_iou_mean=float(np.mean(ious)) if ious else float("nan"),  # no run: a failed check
            mask_iou_min=float(np.min(ious)) if ious else float("nan"),
            finite=stats["finite"],
            min_mask_iou=min_mask_iou,
        )
        self.report.quality.append(quality)
        return quality

    def _encoder_quality(self, name, img, low, ref, kind, stats) -> None:
        feed = self._encoder_feed(kind, img)
        got = self._run(name, img.name, low, feed)
        if got is None:
            return
        want, want_masks = self._fp32_encoder_masks(ref, kind, img)
        stats["finite"] &= all(bool(np.isfinite(g).all()) for g in got)
        stats["emb"].append(max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True)))
        stats["cos"].append(min(_cosine(g, w) for g, w in zip(got, want, strict=True)))
        for masks, case in zip(want_masks, self.cases(img).values(), strict=True):
            got_masks = self._token_masks(case, got)
            stats["iou"].extend(_iou(a > 0, b > 0) for a, b in zip(got_masks, masks, strict=True))

    def _fp32_encoder_masks(
        self, ref, kind: str, img: Sam2Image
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The fp32 encoder graph's outputs for ``img`` and the masks decoded from them."""
        key = (kind, img.name)
        if key not in self._fp32_masks:
            features = ref.run(None, self._encoder_feed(kind, img))
            masks = [self._token_masks(case, features) for case in self.cases(img).values()]
            self._fp32_masks[key] = (features, masks)
        return self._fp32_masks[key]

    def _token_masks(self, case: Mapping[str, np.ndarray], features: list[np.ndarray]) -> np.ndarray:
        """The four mask tokens' full-size logits ``4 x H x W`` for ``case`` with other ``features``
        (the batched graph's computation in PyTorch). Compared token by token: the single-mask
        rule can flip between tokens at its stability threshold (the kit's random weights sit at
        0.97-0.98), which would count a change of choice as a loss of quality."""
        feed = {**case, **dict(zip(FEATURE_NAMES, features, strict=True))}
        return _torch_outputs(Sam2DecoderGraph(self.sam, batched=True), feed)[0][0]

    def _decoder_quality(self, name, img, low, ref, stats) -> None:
        for case_name, case in self.cases(img).items():
            got = self._run(name, f"{img.name}/{case_name}", low, case)
            if got is None:
                continue
            want = ref.run(None, case)
            stats["finite"] &= all(bool(np.isfinite(o).all()) for o in got)
            stats["low_res"].append(float(np.abs(got[2] - want[2]).max()))
            stats["iou"].extend(_iou(a > 0, b > 0) for a, b in zip(got[0][0], want[0][0], strict=True))
