"""Parity checks run after every export: onnxruntime against the PyTorch model, on fresh inputs.

The inputs differ from the ones the graphs were traced with: three image sizes (landscape,
portrait and a tiny one, or the caller's own images), and per size one point, five points, a box,
and a mask input fed back from a previous call. Each graph output is compared with the PyTorch
wrapper it was traced from (same contract, same options); the encoder is compared with the
model's image encoder on the same preprocessing.

Tolerance of an output: ``ATOL + RTOL * max|reference|`` on the max abs difference. Binary masks
(threshold 0) are reported as the share of agreeing pixels; they can only differ where the
reference logit is within the max abs difference of 0.

Reduced-precision graphs (fp16, int8) are compared with the fp32 graphs instead: embedding max abs
and cosine, and IoU of the binary masks decoded from their outputs; they fail on NaN/Inf and on a
mean mask IoU under ``min_mask_iou``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..contract import HIGH_RES_FEATS, IMAGE_EMBEDDINGS, OBJECT_SCORE
from ..preprocess import normalize_and_pad, resize_longest_side, scale_coords_xy
from ..progress import bar, counted
from .decoder_graph import DecoderGraph
from .encoder_graph import EncoderGraph

# name -> (H, W): landscape, portrait, and one so small that it is upscaled 80x.
VALIDATION_SIZES = {"landscape": (427, 640), "portrait": (800, 533), "tiny": (9, 13)}
TOLERANCES = {  # output -> (atol, rtol)
    # every family's encoder outputs (SAM 2's high-res maps too): the embedding's tolerance
    **{t.name: (1e-3, 1e-4) for t in (IMAGE_EMBEDDINGS, *HIGH_RES_FEATS)},
    OBJECT_SCORE.name: (1e-4, 1e-5),  # SAM 2's batched decoder
    "masks": (1e-4, 1e-5),
    "low_res_masks": (1e-4, 1e-5),
    "iou_predictions": (1e-4, 1e-5),
    "stability_scores": (1e-4, 0.0),
    "areas": (0.0, 1e-4),
}
MIN_MASK_IOU = 0.9
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
        agree = float(((g > 0) == (w > 0)).mean()) if name == "masks" else None
        tol = tolerance(name, w)
        if not np.isfinite(g).all():
            name, diff = f"{name} (NaN or Inf in the output)", float("inf")
        checks.append(Check(graph, case, name, diff, tol, agree))
    return checks


@dataclass(frozen=True)
class PreparedImage:
    name: str
    orig_hw: tuple[int, int]
    resized: np.ndarray  # h x w x 3 uint8
    padded: np.ndarray  # 1 x 3 x 1024 x 1024 float32

    @classmethod
    def from_image(cls, name: str, image: np.ndarray) -> PreparedImage:
        resized = resize_longest_side(image)
        return cls(name, (image.shape[0], image.shape[1]), resized, normalize_and_pad(resized))


def decoder_cases(orig_hw: tuple[int, int], seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Prompts in original-image pixels (x, y): one point, five points, a box, and a mask input.

    Returns the five prompt inputs of the official contract per case (``image_embeddings`` is
    added by the caller; ``mask_input`` of the mask case is filled in from the one-point case).
    """
    h, w = orig_hw
    rng = np.random.default_rng(seed)

    def feed(coords, labels, mask=None):
        coords_1024 = scale_coords_xy(np.asarray(coords, np.float64), orig_hw)
        return {
            "point_coords": coords_1024[None].astype(np.float32),
            "point_labels": np.asarray(labels, np.float32)[None],
            "mask_input": np.zeros((1, 1, 256, 256), np.float32) if mask is None else mask,
            "has_mask_input": np.array([0.0 if mask is None else 1.0], np.float32),
            "orig_im_size": np.array([h, w], np.float32),
        }

    def point():
        return [rng.uniform(0, w - 1), rng.uniform(0, h - 1)]

    xs = sorted(rng.uniform(0, w - 1, size=2))
    ys = sorted(rng.uniform(0, h - 1, size=2))
    mask = np.zeros((1, 1, 256, 256), np.float32)  # replaced by the caller with real logits
    return {
        "one_point": feed([point(), [0, 0]], [1, -1]),
        "five_points": feed([point() for _ in range(5)] + [[0, 0]], [1, 1, 0, 1, 0, -1]),
        "box": feed([[xs[0], ys[0]], [xs[1], ys[1]]], [2, 3]),
        "mask_input": feed([point(), point(), [0, 0]], [1, 0, -1], mask=mask),
    }


def _session(path: Path):
    from sam_onnx.runtime.core.backend import onnxruntime_module

    ort = onnxruntime_module()
    options = ort.SessionOptions()
    # Without the arena, activation memory goes back to the system after each run, so a
    # validation holding the PyTorch model and several sessions stays near one model's peak.
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _torch_outputs(module: torch.nn.Module, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    with torch.inference_mode():
        out = module(*(torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()))
    out = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in out]


def _encoder_feed(kind: str, img: PreparedImage) -> dict[str, np.ndarray]:
    return {"image": img.padded} if kind == "normalized" else {"resized_image": img.resized}


def _batch(cases: Mapping[str, dict[str, np.ndarray]], rows: Sequence[str], n: int) -> dict[str, np.ndarray]:
    """Stack cases into one prompt batch, padding every row to ``n`` points with label -1."""
    first = cases[rows[0]]
    stacked: dict[str, list[np.ndarray]] = {
        "point_coords": [],
        "point_labels": [],
        "mask_input": [],
        "has_mask_input": [],
    }
    for row in rows:
        case = cases[row]
        pad = n - case["point_labels"].shape[1]
        stacked["point_coords"].append(np.pad(case["point_coords"], ((0, 0), (0, pad), (0, 0))))
        stacked["point_labels"].append(np.pad(case["point_labels"], ((0, 0), (0, pad)), constant_values=-1))
        stacked["mask_input"].append(case["mask_input"])
        stacked["has_mask_input"].append(case["has_mask_input"])
    return {
        "image_embeddings": first["image_embeddings"],
        **{k: np.concatenate(v) for k, v in stacked.items()},
        "orig_im_size": first["orig_im_size"],
    }


class Validator:
    """Runs the checks of one export; holds the PyTorch embeddings shared by every graph."""

    def __init__(
        self, sam, images: Mapping[str, np.ndarray] | None = None, *, progress: bool | None = False
    ) -> None:
        self.sam = sam
        self.progress = progress  # a bar over each graph's cases (see sam_onnx.progress)
        raw = default_images() if images is None else images
        self.images = [PreparedImage.from_image(name, image) for name, image in raw.items()]
        self._embeddings: dict[str, np.ndarray] = {}
        self._cases: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        self.report = ValidationReport()

    def embedding(self, img: PreparedImage) -> np.ndarray:
        if img.name not in self._embeddings:
            with torch.inference_mode():
                self._embeddings[img.name] = self.sam.image_encoder(torch.from_numpy(img.padded)).numpy()
        return self._embeddings[img.name]

    def cases(self, img: PreparedImage) -> dict[str, dict[str, np.ndarray]]:
        """Decoder feeds for ``img``; the mask case gets the one-point case's best low-res logits."""
        if img.name not in self._cases:
            cases = decoder_cases(img.orig_hw, seed=len(self._cases) + 100)
            emb = self.embedding(img)
            cases = {case: {"image_embeddings": emb, **feeds} for case, feeds in cases.items()}
            single = DecoderGraph(self.sam, return_single_mask=True)
            cases["mask_input"]["mask_input"] = _torch_outputs(single, cases["one_point"])[2]
            self._cases[img.name] = cases
        return self._cases[img.name]

    def check_interface(self, name: str, session, wrapper: EncoderGraph | DecoderGraph) -> bool:
        """The graph's input and output names are the wrapper's, in order (the exporter drops an
        input that the traced computation never read, e.g. a size frozen into a constant)."""
        got = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
        want = (list(wrapper.input_names), list(wrapper.output_names))
        if got == want:
            return True
        problem = f"interface: inputs {got[0]} outputs {got[1]}, expected {want[0]} and {want[1]}"
        self.report.checks.append(Check(name, "graph", problem, float("inf"), 0.0))
        return False

    def _run(self, name: str, case: str, session, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray] | None:
        """``session.run``; an onnxruntime error becomes a failed check naming graph and case."""
        try:
            return session.run(None, dict(feeds))
        except Exception as exc:  # onnxruntime raises its own exception types from C++
            message = str(exc).splitlines()[0][:300]
            self.report.checks.append(Check(name, case, f"run failed: {message}", float("inf"), 0.0))
            return None

    def check_encoder(self, name: str, path: Path, wrapper: EncoderGraph) -> None:
        session = _session(path)
        if not self.check_interface(name, session, wrapper):
            return
        with self._bar(name, len(self.images)) as cases_done:
            for img in self.images:
                got = self._run(name, img.name, session, _encoder_feed(wrapper.input_kind, img))
                if got is not None:
                    want = [self.embedding(img)]
                    self.report.checks += compare(name, img.name, ["image_embeddings"], got, want)
                cases_done.update()

    def check_decoder(self, name: str, path: Path, wrapper: DecoderGraph) -> None:
        session = _session(path)
        if not self.check_interface(name, session, wrapper):
            return
        names = wrapper.output_names
        per_image = 2 if wrapper.batched else len(decoder_cases((1, 1), 0))
        with self._bar(name, per_image * len(self.images)) as cases_done:
            for img in self.images:
                cases = self.cases(img)
                if wrapper.batched:
                    feeds = {
                        "batch_of_4": _batch(cases, list(cases), n=6),
                        "batch_of_1": cases["five_points"],
                    }
                else:
                    feeds = cases
                for case, feed in feeds.items():
                    got = self._run(name, f"{img.name}/{case}", session, feed)
                    if got is not None:
                        want = _torch_outputs(wrapper, feed)
                        self.report.checks += compare(name, f"{img.name}/{case}", names, got, want)
                    cases_done.update()

    def reference_tokens(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The official computation's all four tokens for one decoder feed: masks ``1 x 4 x H x W``,
        low-res logits ``1 x 4 x 256 x 256``, IoU ``1 x 4``."""
        wrapper = DecoderGraph(self.sam, return_single_mask=False, factored=False)
        masks, iou, low_res = _torch_outputs(wrapper, feed)
        return [masks, low_res, iou]

    def _bar(self, graph: str, total: int):
        return bar(total=total, desc=f"validating {graph}", unit="case", progress=self.progress)

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
        """Compare a reduced-precision graph with its fp32 graph (``role``: encoder or decoder)."""
        low, ref = _session(path), _session(reference_path)
        decoder = DecoderGraph(self.sam, return_single_mask=True)
        emb_diff, cosines, low_res_diff, ious, finite = [], [], [], [], True
        with self._bar(name, len(self.images)) as images_done:
            for img in counted(self.images, images_done):
                cases = self.cases(img)
                if role == "encoder":
                    feed = _encoder_feed(encoder_kind, img)
                    got = self._run(name, img.name, low, feed)
                    if got is None:
                        continue
                    e_low, e_ref = got[0], ref.run(None, feed)[0]
                    finite &= bool(np.isfinite(e_low).all())
                    emb_diff.append(float(np.abs(e_low - e_ref).max()))
                    cosines.append(_cosine(e_low, e_ref))
                    for case in cases.values():
                        m_low = _torch_outputs(decoder, {**case, "image_embeddings": e_low})[0]
                        m_ref = _torch_outputs(decoder, {**case, "image_embeddings": e_ref})[0]
                        ious.append(_iou(m_low > 0, m_ref > 0))
                else:
                    for case_name, case in cases.items():
                        o_low = self._run(name, f"{img.name}/{case_name}", low, case)
                        if o_low is None:
                            continue
                        o_ref = ref.run(None, case)
                        finite &= all(bool(np.isfinite(o).all()) for o in o_low)
                        low_res_diff.append(float(np.abs(o_low[2] - o_ref[2]).max()))
                        ious.extend(_iou(a > 0, b > 0) for a, b in zip(o_low[0][0], o_ref[0][0], strict=True))
        quality = Quality(
            graph=name,
            reference=reference_name,
            embedding_max_abs=max(emb_diff) if emb_diff else None,
            embedding_cosine=min(cosines) if cosines else None,
            low_res_max_abs=max(low_res_diff) if low_res_diff else None,
            mask_iou_mean=float(np.mean(ious)) if ious else float("nan"),  # no run: a failed check
            mask_iou_min=float(np.min(ious)) if ious else float("nan"),
            finite=finite,
            min_mask_iou=min_mask_iou,
        )
        self.report.quality.append(quality)
        return quality


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a64 @ b64 / max(np.linalg.norm(a64) * np.linalg.norm(b64), 1e-30))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
