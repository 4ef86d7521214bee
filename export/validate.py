"""Parity checks run after every export: onnxruntime against the PyTorch model, on fresh inputs.

One :class:`Validator` for every family; what a family computes differently is its
:class:`ValidationRules` record (SAM v1's :data:`SAM_VALIDATION` here, SAM 2's in
:mod:`.sam2_reference`), chosen through :mod:`.families`.

The inputs differ from the ones the graphs were traced with: three image sizes (landscape,
portrait and a tiny one, or the caller's own images), and per size one point, five points, a box,
and a mask input fed back from the one-point case; the batched decoder on a batch of the four
cases and a batch of one. Each graph output is compared with the family's reference for the
wrapper it was traced from (SAM v1: the wrapper itself, same contract, same options; SAM 2: the
official computation); the encoder is compared with the model's encoder on the family's
preprocessing.

Tolerance of an output: ``ATOL + RTOL * max|reference|`` on the max abs difference. Binary masks
(threshold 0) are reported as the share of agreeing pixels; they can only differ where the
reference logit is within the max abs difference of 0.

Reduced-precision graphs (fp16, int8) are compared with the fp32 graphs instead: embedding max abs
and cosine, and IoU of the binary masks decoded from their outputs; they fail on NaN/Inf and on a
mean mask IoU under ``min_mask_iou``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..contract import (
    ENCODER_IMAGE,
    ENCODER_RESIZED_IMAGE,
    HAS_MASK_INPUT,
    HIGH_RES_FEATS,
    IMAGE_EMBEDDINGS,
    IOU_PREDICTIONS,
    LOW_RES_MASKS,
    MASK_INPUT,
    MASKS,
    OBJECT_SCORE,
    ORIG_IM_SIZE,
    POINT_COORDS,
    POINT_LABELS,
    PROMPT_INPUTS,
)
from ..families import SAM, Family
from ..preprocess import frame_coords_xy, normalize_and_pad, resize_longest_side
from ..progress import bar
from .decoder_graph import DecoderGraph

VIDEO_TOLERANCES = {  # SAM 2.1's video graphs (export/video_validate.py)
    "low_res_logits": (1e-4, 1e-5),  # the heads' (gated to -1024) and the mask prompt's
    "obj_ptr": (1e-4, 1e-5),
    # features: the embedding's tolerance
    "conditioned_embeddings": (1e-3, 1e-4),
    "maskmem_features": (1e-3, 1e-4),
}
# name -> (H, W): landscape, portrait, and one so small that it is upscaled 80x.
VALIDATION_SIZES = {"landscape": (427, 640), "portrait": (800, 533), "tiny": (9, 13)}
TOLERANCES = {  # output -> (atol, rtol)
    # every family's encoder outputs (SAM 2's high-res maps too): the embedding's tolerance
    **{t.name: (1e-3, 1e-4) for t in (IMAGE_EMBEDDINGS, *HIGH_RES_FEATS)},
    OBJECT_SCORE.name: (1e-4, 1e-5),  # SAM 2's batched decoder
    MASKS: (1e-4, 1e-5),
    LOW_RES_MASKS: (1e-4, 1e-5),
    IOU_PREDICTIONS: (1e-4, 1e-5),
    "stability_scores": (1e-4, 0.0),
    "areas": (0.0, 1e-4),
    **VIDEO_TOLERANCES,
}
MIN_MASK_IOU = 0.9
MASK_CASE_SOURCE = "one_point"  # the case whose low-res output feeds the mask-input case
MASK_AGREEMENT_NOTE = (
    "masks agree: share of pixels thresholded alike (logit > 0); a pixel can flip only where the "
    "reference logit is within max abs of 0, so under 100% is within tolerance when max abs is (ok)"
)


def synthetic_image(hw: tuple[int, int], seed: int) -> np.ndarray:
    """A deterministic ``H x W x 3`` uint8 RGB image: smooth colour gradients, a disc, and noise."""
    h, w = hw
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / max(w - 1, 1), y / max(h - 1, 1), 0.5 + 0.5 * np.sin((x + y) / 17.0)], axis=-1)
    disc = ((x - w * 0.6) ** 2 + (y - h * 0.4) ** 2) < (0.25 * min(h, w)) ** 2
    base[disc] = [0.9, 0.2, 0.1]
    noisy = base * 230 + rng.normal(0, 12, size=base.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def default_images() -> dict[str, np.ndarray]:
    return {name: synthetic_image(hw, seed) for seed, (name, hw) in enumerate(VALIDATION_SIZES.items())}


@dataclass
class Check:
    """One output of one graph on one input, against its reference."""

    graph: str
    case: str
    output: str
    max_abs: float
    tolerance: float
    mask_agreement: float | None = None

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_abs)) and self.max_abs <= self.tolerance

    def describe(self) -> str:
        if not np.isfinite(self.max_abs):
            return f"{self.graph} {self.output} on {self.case}"
        return f"{self.graph} {self.output} on {self.case}: max abs {self.max_abs:.3g} > {self.tolerance:.3g}"


@dataclass
class Quality:
    """A reduced-precision graph against its fp32 graph."""

    graph: str
    reference: str
    embedding_max_abs: float | None
    embedding_cosine: float | None
    low_res_max_abs: float | None
    mask_iou_mean: float
    mask_iou_min: float
    finite: bool
    min_mask_iou: float = MIN_MASK_IOU

    @property
    def ok(self) -> bool:
        return self.finite and self.mask_iou_mean >= self.min_mask_iou

    def describe(self) -> str:
        if np.isnan(self.mask_iou_mean):
            return f"{self.graph} did not run on any validation case"
        if not self.finite:
            return f"{self.graph} gives NaN or Inf"
        return (
            f"{self.graph} mask IoU against {self.reference} {self.mask_iou_mean:.4f} < {self.min_mask_iou}"
        )


@dataclass
class ValidationReport:
    checks: list[Check] = field(default_factory=list)
    quality: list[Quality] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return [c.describe() for c in self.checks if not c.ok] + [
            q.describe() for q in self.quality if not q.ok
        ]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "checks": [asdict(c) | {"ok": c.ok} for c in self.checks],
            "quality": [asdict(q) | {"ok": q.ok} for q in self.quality],
        }

    def format(self) -> str:
        """A table: worst max abs and mask agreement per graph and output, then quality rows."""
        lines = [f"{'graph':<26} {'output':<18} {'max abs':>10} {'tolerance':>10} {'masks agree':>12}  ok"]
        grouped: dict[tuple[str, str], list[Check]] = {}
        for c in self.checks:
            grouped.setdefault((c.graph, c.output), []).append(c)
        for (graph, output), checks in grouped.items():
            worst = max(checks, key=lambda c: c.max_abs / max(c.tolerance, 1e-30))
            agree = [c.mask_agreement for c in checks if c.mask_agreement is not None]
            agree_s = f"{min(agree) * 100:.4f}%" if agree else "-"
            ok = "yes" if all(c.ok for c in checks) else "NO"
            lines.append(
                f"{graph:<26} {output:<18} {worst.max_abs:>10.3g} {worst.tolerance:>10.3g} "
                f"{agree_s:>12}  {ok}"
            )
        for q in self.quality:
            if q.embedding_max_abs is not None:
                emb = f"embedding max abs {q.embedding_max_abs:.3g}, cosine {q.embedding_cosine:.6f}; "
            elif q.low_res_max_abs is not None:
                emb = f"low-res max abs {q.low_res_max_abs:.3g}; "
            else:
                emb = "no case ran; "
            lines.append(
                f"{q.graph} vs {q.reference}: {emb}"
                f"mask IoU mean {q.mask_iou_mean:.4f} min {q.mask_iou_min:.4f}; "
                f"finite {'yes' if q.finite else 'NO'}  {'ok' if q.ok else 'FAIL'}"
            )
        if any(c.mask_agreement is not None for c in self.checks):
            lines.append(MASK_AGREEMENT_NOTE)
        return "\n".join(lines)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1))


def tolerance(output: str, reference: np.ndarray) -> float:
    atol, rtol = TOLERANCES[output]
    return atol + rtol * float(np.abs(reference).max(initial=0.0))


def compare(
    graph: str, case: str, names: Sequence[str], got: Sequence[np.ndarray], want: Sequence[np.ndarray]
):
    """One :class:`Check` per output; shape mismatches count as an infinite difference."""
    checks = []
    for name, g, w in zip(names, got, want, strict=True):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape:
            checks.append(Check(graph, case, f"{name} shape {g.shape} vs {w.shape}", float("inf"), 0.0))
            continue
        diff = float(np.abs(g.astype(np.float64) - w.astype(np.float64)).max(initial=0.0))
        agree = float(((g > 0) == (w > 0)).mean()) if name == MASKS else None
        tol = tolerance(name, w)
        if not np.isfinite(g).all():
            name, diff = f"{name} (NaN or Inf in the output)", float("inf")
        checks.append(Check(graph, case, name, diff, tol, agree))
    return checks


@dataclass(frozen=True)
class PreparedImage:
    """One validation image and its two encoder inputs, by the family's preprocessing.

    Attributes:
      orig_hw: (H, W) of the original image.
      uint8: the ``--encoder-input uint8`` graph's input, ``h x w x 3`` or ``H x W x 3`` uint8.
      normalized: the ``normalized`` graph's input, ``1 x 3 x 1024 x 1024`` float32.
    """

    name: str
    orig_hw: tuple[int, int]
    uint8: np.ndarray
    normalized: np.ndarray


@dataclass(frozen=True)
class ValidationRules:
    """What one family's checks compute differently, as values and functions.

    Attributes:
      features: the encoder's outputs, which are the decoder's image inputs, in that order.
      uint8_input: the encoder input's name under ``--encoder-input uint8``.
      prepare: ``H x W x 3`` uint8 image -> (its uint8 encoder input, its normalised
        ``1 x 3 x 1024 x 1024`` float32 encoder input).
      encode: ``(model, 1 x 3 x 1024 x 1024 tensor)`` -> the encoder's tensors, in ``features`` order.
      prompt_cases: ``(orig_hw, seed)`` -> case name -> the decoder contract's prompt inputs and
        ``orig_im_size``: one point, five points, a box and the mask case (its ``mask_input`` is
        filled in by the validator).
      reference: ``(decoder wrapper, feed)`` -> what the graph traced from that wrapper must give
        for ``feed`` (the contract's input names, features first), in the wrapper's output order.
      single_decoder: ``model`` -> the single-mask decoder wrapper whose one-point low-res logits
        (by ``reference``) become the mask case's ``mask_input``.
      token_decoder: ``model`` -> a wrapper whose ``reference`` gives all four mask tokens
        (masks, IoU, low-res first): what the fast pair is compared with.
      quality_decoder: ``model`` -> the wrapper whose masks (first output, first row), decoded from
        a reduced-precision encoder's outputs and from fp32's, are compared mask by mask.
    """

    features: tuple[str, ...]
    uint8_input: str
    prepare: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    encode: Callable[[torch.nn.Module, torch.Tensor], Sequence[torch.Tensor]]
    prompt_cases: Callable[[tuple[int, int], int], dict[str, dict[str, np.ndarray]]]
    reference: Callable[[torch.nn.Module, Mapping[str, np.ndarray]], list[np.ndarray]]
    single_decoder: Callable[[torch.nn.Module], torch.nn.Module]
    token_decoder: Callable[[torch.nn.Module], torch.nn.Module]
    quality_decoder: Callable[[torch.nn.Module], torch.nn.Module]


def decoder_cases(
    orig_hw: tuple[int, int], seed: int, family: Family = SAM
) -> dict[str, dict[str, np.ndarray]]:
    """The validation prompts in original-image pixels (x, y), taken to ``family``'s encoder frame
    (:func:`~sam_onnx.preprocess.frame_coords_xy`): one point, five points, a box, and two points
    with a mask input; the padding point (0, 0) labelled -1 is appended where the family's official
    predictor adds it (``pad_without_box``: SAM v1; SAM 2's graph appends its own).

    Returns the five prompt inputs of the decoder contract per case (the image features are added
    by the caller; ``mask_input`` of the mask case is filled in from the one-point case). The
    random draws do not depend on the family.
    """
    h, w = orig_hw
    rng = np.random.default_rng(seed)

    def feed(coords, labels, mask=None, *, box=False):
        if family.pad_without_box and not box:
            coords, labels = [*coords, [0, 0]], [*labels, -1]
        return {
            POINT_COORDS: frame_coords_xy(np.asarray(coords, np.float64), orig_hw, family.resize)[None],
            POINT_LABELS: np.asarray(labels, np.float32)[None],
            MASK_INPUT: np.zeros((1, 1, 256, 256), np.float32) if mask is None else mask,
            HAS_MASK_INPUT: np.array([0.0 if mask is None else 1.0], np.float32),
            ORIG_IM_SIZE.name: np.array([h, w], np.float32),
        }

    def point():
        return [rng.uniform(0, w - 1), rng.uniform(0, h - 1)]

    xs = sorted(rng.uniform(0, w - 1, size=2))
    ys = sorted(rng.uniform(0, h - 1, size=2))
    mask = np.zeros((1, 1, 256, 256), np.float32)  # replaced by the caller with real logits
    return {
        "one_point": feed([point()], [1]),
        "five_points": feed([point() for _ in range(5)], [1, 1, 0, 1, 0]),
        "box": feed([[xs[0], ys[0]], [xs[1], ys[1]]], [2, 3], box=True),
        "mask_input": feed([point(), point()], [1, 0], mask=mask),
    }


def sam_inputs(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SAM v1's encoder inputs: the image with its long side resized to 1024 (``h x w x 3`` uint8)
    and that normalised and zero-padded (``1 x 3 x 1024 x 1024`` float32)."""
    resized = resize_longest_side(image)
    return resized, normalize_and_pad(resized)


def sam_encode(sam: torch.nn.Module, image: torch.Tensor) -> tuple[torch.Tensor]:
    """SAM v1's ViT: the image embedding, its one feature."""
    return (sam.image_encoder(image),)


def cpu_session(path: Path):
    """An onnxruntime session of ``path`` on the CPU provider, without the memory arena."""
    from sam_onnx.runtime.core.backend import onnxruntime_module

    ort = onnxruntime_module()
    options = ort.SessionOptions()
    # Without the arena, activation memory goes back to the system after each run, so a
    # validation holding the PyTorch model and several sessions stays near one model's peak.
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def torch_outputs(module: torch.nn.Module, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """``module``'s outputs for ``feeds``, passed positionally in their order, as numpy arrays."""
    with torch.inference_mode():
        out = module(*(torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()))
    out = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in out]


SAM_VALIDATION = ValidationRules(
    features=SAM.feature_names,
    uint8_input=ENCODER_RESIZED_IMAGE.name,
    prepare=sam_inputs,
    encode=sam_encode,
    prompt_cases=partial(decoder_cases, family=SAM),
    reference=torch_outputs,  # the wrapper the graph was traced from, in PyTorch
    single_decoder=partial(DecoderGraph, return_single_mask=True),
    token_decoder=partial(DecoderGraph, return_single_mask=False, factored=False),
    quality_decoder=partial(DecoderGraph, return_single_mask=True),
)


def batch_prompts(
    cases: Mapping[str, Mapping[str, np.ndarray]], features: Sequence[str]
) -> dict[str, np.ndarray]:
    """Stack every case into one prompt batch, padding each row to the most points with label -1;
    the image inputs (``features``, ``orig_im_size``) are the first case's. Inputs in the
    contract's order: features, prompt, ``orig_im_size``."""
    first = next(iter(cases.values()))
    n = max(case[POINT_LABELS].shape[1] for case in cases.values())
    stacked: dict[str, list[np.ndarray]] = {name: [] for name in PROMPT_INPUTS}
    for case in cases.values():
        pad = n - case[POINT_LABELS].shape[1]
        stacked[POINT_COORDS].append(np.pad(case[POINT_COORDS], ((0, 0), (0, pad), (0, 0))))
        stacked[POINT_LABELS].append(np.pad(case[POINT_LABELS], ((0, 0), (0, pad)), constant_values=-1))
        stacked[MASK_INPUT].append(case[MASK_INPUT])
        stacked[HAS_MASK_INPUT].append(case[HAS_MASK_INPUT])
    return {
        **{name: first[name] for name in features},
        **{k: np.concatenate(v) for k, v in stacked.items()},
        ORIG_IM_SIZE.name: first[ORIG_IM_SIZE.name],
    }


class Validator:
    """Runs the checks of one export by its family's ``rules``; holds the PyTorch encoder outputs
    and prompt cases shared by every graph."""

    def __init__(
        self,
        model: torch.nn.Module,
        rules: ValidationRules,
        images: Mapping[str, np.ndarray] | None = None,
        *,
        progress: bool | None = False,
    ) -> None:
        self.model = model
        self.rules = rules
        self.progress = progress  # a bar over each graph's cases (see sam_onnx.progress)
        raw = default_images() if images is None else images
        self.images = [
            PreparedImage(name, (image.shape[0], image.shape[1]), *rules.prepare(image))
            for name, image in raw.items()
        ]
        self._single = rules.single_decoder(model)
        self._tokens = rules.token_decoder(model)
        self._quality = rules.quality_decoder(model)
        self._features: dict[str, list[np.ndarray]] = {}
        self._cases: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        # The fp32 encoder's outputs and masks, shared by the fp16 and int8 measurements.
        self._fp32_masks: dict[tuple[str, str], tuple[list[np.ndarray], list[np.ndarray]]] = {}
        self.report = ValidationReport()

    def features(self, img: PreparedImage) -> list[np.ndarray]:
        """The PyTorch encoder's outputs for ``img`` (cached), in the family's feature order."""
        if img.name not in self._features:
            with torch.inference_mode():
                outputs = self.rules.encode(self.model, torch.from_numpy(img.normalized))
                self._features[img.name] = [t.numpy() for t in outputs]
        return self._features[img.name]

    def cases(self, img: PreparedImage) -> dict[str, dict[str, np.ndarray]]:
        """Decoder feeds for ``img`` (input names -> arrays, features first); the mask case gets
        the one-point case's low-res logits from the single-mask reference, as a caller feeds
        them back."""
        if img.name not in self._cases:
            seed = 100 + [i.name for i in self.images].index(img.name)
            features = dict(zip(self.rules.features, self.features(img), strict=True))
            prompts = self.rules.prompt_cases(img.orig_hw, seed)
            cases = {case: {**features, **prompt} for case, prompt in prompts.items()}
            source = self.rules.reference(self._single, cases[MASK_CASE_SOURCE])
            cases["mask_input"][MASK_INPUT] = source[self._single.output_names.index(LOW_RES_MASKS)]
            self._cases[img.name] = cases
        return self._cases[img.name]

    def encoder_feed(self, kind: str, img: PreparedImage) -> dict[str, np.ndarray]:
        """The encoder graph's feed for ``img`` with input ``kind`` (``normalized`` or ``uint8``)."""
        if kind == "normalized":
            return {ENCODER_IMAGE.name: img.normalized}
        return {self.rules.uint8_input: img.uint8}

    def decoder_feeds(self, img: PreparedImage, batched: bool) -> dict[str, dict[str, np.ndarray]]:
        """The cases of ``img``, or for a batched graph a batch of all four and a batch of one."""
        cases = self.cases(img)
        if not batched:
            return cases
        return {"batch_of_4": batch_prompts(cases, self.rules.features), "batch_of_1": cases["five_points"]}

    def reference_tokens(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The reference's all four tokens for one decoder feed: masks ``1 x 4 x H x W``, low-res
        logits ``1 x 4 x 256 x 256``, IoU ``1 x 4`` (low-res clamped where the contract is)."""
        masks, iou, low_res, *_ = self.rules.reference(self._tokens, feed)
        return [masks, low_res, iou]

    def check_interface(self, name: str, session, wrapper: torch.nn.Module) -> bool:
        """The graph's input and output names are the wrapper's, in order (the exporter drops an
        input that the traced computation never read, e.g. a size frozen into a constant)."""
        got = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
        want = (list(wrapper.input_names), list(wrapper.output_names))
        if got == want:
            return True
        problem = f"interface: inputs {got[0]} outputs {got[1]}, expected {want[0]} and {want[1]}"
        self.report.checks.append(Check(name, "graph", problem, float("inf"), 0.0))
        return False

    def run_graph(
        self, name: str, case: str, session, feeds: Mapping[str, np.ndarray]
    ) -> list[np.ndarray] | None:
        """``session.run``; an onnxruntime error becomes a failed check naming graph and case."""
        try:
            return session.run(None, dict(feeds))
        except Exception as exc:  # onnxruntime raises its own exception types from C++
            message = str(exc).splitlines()[0][:300]
            self.report.checks.append(Check(name, case, f"run failed: {message}", float("inf"), 0.0))
            return None

    def bar(self, graph: str, total: int):
        """A progress bar over ``total`` cases of ``graph`` (off unless asked)."""
        return bar(total=total, desc=f"validating {graph}", unit="case", progress=self.progress)

    def check_encoder(self, name: str, path: Path, wrapper: torch.nn.Module) -> None:
        session = cpu_session(path)
        if not self.check_interface(name, session, wrapper):
            return
        with self.bar(name, len(self.images)) as done:
            for img in self.images:
                got = self.run_graph(name, img.name, session, self.encoder_feed(wrapper.input_kind, img))
                if got is not None:
                    self.report.checks += compare(
                        name, img.name, self.rules.features, got, self.features(img)
                    )
                done.update()

    def check_decoder(self, name: str, path: Path, wrapper: torch.nn.Module) -> None:
        session = cpu_session(path)
        if not self.check_interface(name, session, wrapper):
            return
        per_image = 2 if wrapper.batched else len(self.rules.prompt_cases((1, 1), 0))
        with self.bar(name, per_image * len(self.images)) as done:
            for img in self.images:
                for case, feed in self.decoder_feeds(img, wrapper.batched).items():
                    got = self.run_graph(name, f"{img.name}/{case}", session, feed)
                    if got is not None:
                        want = self.rules.reference(wrapper, feed)
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
        max abs and least cosine, and mask IoU: of the quality decoder's masks for an encoder, of
        the returned masks for a decoder."""
        low, ref = cpu_session(path), cpu_session(reference_path)
        stats = {"emb": [], "cos": [], "low_res": [], "iou": [], "finite": True}
        with self.bar(name, len(self.images)) as done:
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
        cases = self.cases(img)
        got = self.run_graph(name, img.name, low, self.encoder_feed(kind, img))
        if got is None:
            return
        want, want_masks = self._fp32_encoder_masks(ref, kind, img)
        stats["finite"] &= all(bool(np.isfinite(g).all()) for g in got)
        stats["emb"].append(max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True)))
        stats["cos"].append(min(cosine(g, w) for g, w in zip(got, want, strict=True)))
        for masks, case in zip(want_masks, cases.values(), strict=True):
            got_masks = self._quality_masks(case, got)
            stats["iou"].extend(mask_iou(a > 0, b > 0) for a, b in zip(got_masks, masks, strict=True))

    def _fp32_encoder_masks(
        self, ref, kind: str, img: PreparedImage
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The fp32 encoder graph's outputs for ``img`` and the masks decoded from them."""
        key = (kind, img.name)
        if key not in self._fp32_masks:
            features = ref.run(None, self.encoder_feed(kind, img))
            masks = [self._quality_masks(case, features) for case in self.cases(img).values()]
            self._fp32_masks[key] = (features, masks)
        return self._fp32_masks[key]

    def _quality_masks(self, case: Mapping[str, np.ndarray], features: list[np.ndarray]) -> np.ndarray:
        """The quality decoder's full-size mask logits ``M x H x W`` for ``case`` with other
        ``features``, in PyTorch. SAM 2's are all four tokens, compared token by token: its
        single-mask rule can flip between tokens at its stability threshold (the kit's random
        weights sit at 0.97-0.98), which would count a change of choice as a loss of quality."""
        feed = {**case, **dict(zip(self.rules.features, features, strict=True))}
        return torch_outputs(self._quality, feed)[0][0]

    def _decoder_quality(self, name, img, low, ref, stats) -> None:
        for case_name, case in self.cases(img).items():
            got = self.run_graph(name, f"{img.name}/{case_name}", low, case)
            if got is None:
                continue
            want = ref.run(None, case)
            stats["finite"] &= all(bool(np.isfinite(o).all()) for o in got)
            stats["low_res"].append(float(np.abs(got[2] - want[2]).max()))
            stats["iou"].extend(mask_iou(a > 0, b > 0) for a, b in zip(got[0][0], want[0][0], strict=True))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays, in float64."""
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a64 @ b64 / max(np.linalg.norm(a64) * np.linalg.norm(b64), 1e-30))


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks; 1 when both are empty."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
