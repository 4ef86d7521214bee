"""``SamPredictor``: the official predictor's semantics on onnxruntime, without torch.

image --(load_image, resize_longest_side, normalize_and_pad)--> encoder --> ImageEmbedding
prompt --(prompts.check_*, prompts.decoder_feeds)--> decoder (all 4 mask tokens) --> Prediction

SAM 2 / 2.1 exports (``family`` ``sam2`` in the graphs' metadata) go the same way with the official
``SAM2ImagePredictor``'s semantics: ``sam2_preprocess`` (square resize, no padding), an encoder with
three outputs (the embedding carries them all), prompts in the square frame with the box first,
and the decoder's four tokens picked by SAM 2's rule (:func:`pick_tokens`: multimask tokens 1..3,
else token 0 unless its stability is under the threshold, then the best of 1..3).

Thread safety, by design: the predictor holds only the two onnxruntime sessions (whose ``run``
is thread-safe) and read-only settings. The embedding is a value: pass it to ``predict(...,
embedding=emb)``, or call ``set_image`` first, which remembers the embedding *per thread* — so
threads that each call ``set_image`` and ``predict`` with different images never see each
other's image, and the results equal sequential calls.

IO binding: on CUDA (by default) the encoder writes the embedding into device memory and the
decoder reads it from there, so the 4 MiB embedding never crosses to the host between the two
graphs; it is copied to the host only when read (``ImageEmbedding.embedding``) or saved.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam_onnx.errors import InvalidInputError, NoImageError
from sam_onnx.families import family_of
from sam_onnx.images import DEFAULT_MAX_PIXELS, ImageSource, load_image
from sam_onnx.preprocess import encoder_input, resized_hw
from sam_onnx.progress import stage

from .decoders import GraphDecoder, PairDecoder
from .decoders import inference_error as _inference_error
from .embedding import ImageEmbedding
from .fast_decoder import FastDecoder, fast_decoder_paths
from .graphs import Graph, check_pair, export_graph_paths, graph_family
from .prompts import (
    MAX_POINTS,
    check_boxes,
    check_coords_xy,
    check_points,
    check_prompt,
    decoder_feeds,
)
from .session import SessionConfig
from .upscale import upscale_logits, upscale_masks

MASK_THRESHOLD = 0.0
MAX_DECODER_BATCH = 16
# Prompts of at most this many points (padding point and box corners counted) go through the fast
# pair, longer ones through the decoder graph: the pair's click graph grows faster than linearly
# with the points. Measured (bench/points.py, docs/BENCHMARKS.md row 22): the pair is faster up to
# 16 points, even at 24, and 1.3x slower at 32 (ViT-B decoder, 480x640 and 200x300, 2 threads).
PAIR_MAX_POINTS = 16
# ... and at most this much of the decoder's estimated working memory per run (decoder_bytes).
DECODER_BYTES = 256 << 20
# Per prompt, besides the logits: the upscaled features, 32 channels of 256 x 256 float32.
UPSCALE_BYTES = 32 * 256 * 256 * 4


@dataclass(frozen=True)
class Prediction:
    """Masks for one prompt (or, from ``predict_boxes``, with a leading axis B of prompts).

    M = 3 with ``multimask_output``, else 1 (mask token 0; SAM 2: token 0 or its stability
    fallback), as the official predictor.

    Attributes:
      masks: ``M x H x W`` bool at the original size, or float32 logits with ``return_logits``.
      iou_predictions: ``M`` float32, the predicted IoU of each mask.
      low_res_logits: ``M x 256 x 256`` float32; feed one (``1 x 256 x 256``) back as
        ``mask_input`` to refine.
    """

    masks: np.ndarray
    iou_predictions: np.ndarray
    low_res_logits: np.ndarray


class SamPredictor:
    """SAM on an encoder and a decoder graph exported by ``sam-export``.

    Arguments:
      encoder: encoder ``.onnx`` path, or ``None`` for a predictor that only decodes saved
        embeddings.
      decoder: ``decoder_batched.onnx`` or a ``--multimask`` ``decoder.onnx`` (SAM v1); SAM 2
        needs ``decoder_batched.onnx`` (all four tokens). The family (SAM v1 or SAM 2, attribute
        ``family``) is read from the graphs' metadata.
      config: providers, strict provider check, threads (see :class:`SessionConfig`).
      io_binding: keep the embedding on the device between graphs; ``None`` turns it on when
        the encoder runs on CUDA.
      max_points: most clicks per prompt (decoder memory grows with the number of points).
      max_pixels: images larger than this are refused before decoding (``None``: no limit of ours;
        files stay bound by Pillow's limit, see :mod:`sam_onnx.images`).
      progress: a line with a running clock on stderr during each encoder run, and bars in the
        automatic mask generator (``None``: when stderr is a terminal; see :mod:`sam_onnx.progress`).
      fast_decoder: ``(decoder_image.onnx, decoder_click.onnx)``, the fast decoder pair that
        every prompt goes through when given (:meth:`predict`, :meth:`predict_boxes`,
        :meth:`decode_points` and so the automatic mask generator; the same masks up to rounding,
        see :mod:`sam_onnx.runtime.core.fast_decoder`); ``None``: the decoder graph for every prompt.

    Raises :class:`~sam_onnx.errors.ModelLoadError` for a missing or corrupt graph and
    :class:`~sam_onnx.errors.ModelMismatchError` for graphs that do not belong together.
    """

    def __init__(
        self,
        encoder: str | os.PathLike[str] | None,
        decoder: str | os.PathLike[str],
        *,
        config: SessionConfig | None = None,
        io_binding: bool | None = None,
        max_points: int = MAX_POINTS,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        progress: bool | None = False,
        fast_decoder: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
    ) -> None:
        config = config or SessionConfig()
        self.encoder = None if encoder is None else Graph.open(encoder, config, role="encoder")
        self.decoder = Graph.open(decoder, config, role="decoder")
        check_pair(self.encoder, self.decoder)
        self.variant = self.decoder.metadata["variant"]
        self.family = graph_family(self.decoder)
        self.rules = family_of(self.family)  # the family's rules (sam_onnx.families)
        meta, stability = self.decoder.metadata, self.rules.stability
        # the single-mask rule's constants: the graph's metadata, else the family's defaults
        self.stability_delta = float(meta.get("stability_delta", stability.delta)) if stability else None
        self.stability_thresh = float(meta.get("stability_thresh", stability.thresh)) if stability else None
        self.checkpoint_sha256 = self.decoder.metadata["checkpoint_sha256"]
        self.batched = self.decoder.metadata.get("batched") == "true"
        self.max_points = max_points
        self.max_pixels = max_pixels
        self.progress = progress
        self._device = _binding_device(self.encoder or self.decoder)
        self.io_binding = self._device[0] == "cuda" if io_binding is None else io_binding
        self._local = threading.local()
        paths = None if fast_decoder is None else (Path(fast_decoder[0]), Path(fast_decoder[1]))
        self.fast = None if paths is None else FastDecoder.open(paths, config, self.decoder)
        # the two implementations of decoding (.decoders), chosen per call by cost
        self._graph = GraphDecoder(self.decoder, io_binding=self.io_binding)
        self._pair = None if self.fast is None else PairDecoder(self.fast)
        self.pair_max_points = PAIR_MAX_POINTS
        self._no_pair_reason = "not given (fast_decoder=None)"  # from_export says more

    @classmethod
    def from_export(
        cls,
        model_dir: str | os.PathLike[str],
        *,
        precision: str = "fp32",
        encoder: bool = True,
        use_fast_decoder: bool = True,
        **kwargs,
    ) -> SamPredictor:
        """Open the graphs of a ``sam-export`` directory (``precision``: fp32, fp16 or int8 encoder).

        ``encoder=False`` opens only the decoder, for saved embeddings: a ``--decoder-only``
        export will do, and a full export's encoder is not loaded. The fast decoder pair is used
        when the export has it and ``use_fast_decoder`` (not with ``precision="int8"``, which asks
        for the int8 decoder); :attr:`decoder_note` says why it is not. ``fast_decoder=`` in
        ``kwargs`` (explicit paths, or None) overrides all this."""
        encoder_path, decoder = export_graph_paths(model_dir, precision, encoder=encoder)
        reason = None
        if "fast_decoder" not in kwargs:
            paths = fast_decoder_paths(model_dir)
            reason = (
                "not asked for (--no-fast-decoder)"
                if not use_fast_decoder
                else "the int8 decoder was asked for (--precision int8)"
                if precision == "int8"
                else "the export has none (exported with --no-fast-decoder or by an older sam-onnx)"
                if paths is None
                else None
            )
            kwargs["fast_decoder"] = None if reason else paths
        predictor = cls(encoder_path, decoder, **kwargs)
        if reason:
            predictor._no_pair_reason = reason
        return predictor

    @property
    def decoder_label(self) -> str:
        """Which graphs decode prompts: ``fast decoder pair``, or the decoder graph's file name
        (no pair in the export, ``fast_decoder=None``, the int8 decoder, or IO binding)."""
        return "fast decoder pair" if self._fast_path else self.decoder.path.name

    @property
    def decoder_note(self) -> str:
        """Why the fast decoder pair is not used (``""`` when it is): never silent."""
        if self._fast_path:
            return ""
        if self.fast is not None:
            return "no click pair: IO binding keeps the image features on the device for the decoder graph"
        return f"no click pair: {self._no_pair_reason}"

    @property
    def _fast_path(self) -> bool:
        """Whether prompts go through the fast decoder pair (IO binding keeps the decoder graph,
        whose image inputs it holds on the device)."""
        return self.fast is not None and not self.io_binding

    @property
    def providers(self) -> list[str]:
        """Execution providers in use, best first (as onnxruntime reports them)."""
        return (self.encoder or self.decoder).providers

    @property
    def engine(self) -> str:
        """The engine and compute precision of the encoder (else the decoder), e.g.
        ``OpenVINOExecutionProvider (CPU, bf16; auto: ...)``: reduced precision is never silent."""
        return (self.encoder or self.decoder).engine

    # -- images ------------------------------------------------------------------------------

    def embed(self, image: ImageSource, *, bgr: bool = False) -> ImageEmbedding:
        """Run the encoder on ``image``: ``H x W x 3`` uint8 array (RGB, or BGR with ``bgr``),
        ``H x W`` grey, RGBA, 16-bit, a PIL image or a file path (see :mod:`sam_onnx.images`)."""
        if self.encoder is None:
            raise InvalidInputError(
                "image",
                "a predictor with an encoder graph (encoder.onnx) to embed it",
                "one that decodes saved embeddings only (opened with encoder=None or encoder=False)",
            )
        rgb = load_image(image, bgr=bgr, max_pixels=self.max_pixels)
        h, w = rgb.shape[:2]
        uint8_input = self.encoder.metadata.get("encoder_input") == "uint8"
        with stage(f"encoder on {w}x{h}", progress=self.progress):
            host, device = self._run_encoder(encoder_input(rgb, self.rules.resize, uint8_input=uint8_input))
        extra = len(self.rules.features) > 1  # features after the embedding (SAM 2's high-res maps)
        return ImageEmbedding(
            None if host is None else host[0],
            rgb.shape[:2],
            variant=self.variant,
            checkpoint_sha256=self.checkpoint_sha256,
            device_value=None if device is None else (tuple(device) if extra else device[0]),
            family=self.family,
            high_res_feats=tuple(host[1:]) if extra and host is not None else None,
        )

    def set_image(self, image: ImageSource, *, bgr: bool = False) -> ImageEmbedding:
        """Embed ``image`` and make it this thread's current image for :meth:`predict`."""
        return self.set_embedding(self.embed(image, bgr=bgr))

    def set_embedding(self, embedding: ImageEmbedding) -> ImageEmbedding:
        """Make a (saved, loaded or computed) embedding this thread's current image."""
        self._local.embedding = self._check_embedding(embedding)
        if self._pair is not None:  # the per-image half of the fast decoder, once per image
            self._pair.image_tensors(embedding)
        return embedding

    def get_image_embedding(self) -> ImageEmbedding:
        """This thread's current embedding; raises :class:`NoImageError` before ``set_image``."""
        embedding = getattr(self._local, "embedding", None)
        if embedding is None:
            raise NoImageError(
                "no image set in this thread: call set_image(image) first, or pass embedding= to predict"
            )
        return embedding

    def reset_image(self) -> None:
        self._local.embedding = None

    # -- prompts -----------------------------------------------------------------------------

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        *,
        normalize_coords: bool = True,
        embedding: ImageEmbedding | None = None,
    ) -> Prediction:
        """Official ``SamPredictor.predict`` (SAM 2: ``SAM2ImagePredictor.predict``): masks for one
        prompt on the current image.

        Arguments:
          point_coords: ``N x 2`` (x, y) in original-image pixels, with ``point_labels`` ``N``
            (1 positive, 0 negative; -1, 2, 3 as in the ONNX contract).
          box: ``4`` values (x0, y0, x1, y1) in original-image pixels.
          mask_input: ``1 x 256 x 256`` low-res logits of an earlier prediction, to refine.
          multimask_output: 3 masks (mask tokens 1..3) instead of 1 (token 0; SAM 2: token 0
            unless its stability is under the threshold, then the best of tokens 1..3).
          return_logits: float32 logits instead of masks thresholded at 0.
          normalize_coords: SAM 2 only, as officially: ``False`` when points and box are already
            divided by (W, H) (in 0..1).
          embedding: use this embedding instead of the thread's current image.
        At least one point or a box is needed. Coordinates outside the image: see
        :mod:`sam_onnx.runtime.core.prompts`.
        """
        emb = self._embedding(embedding)
        frame_hw = self._coords_frame(emb, normalize_coords)
        checked = check_prompt(
            point_coords, point_labels, box, mask_input, frame_hw, max_points=self.max_points
        )
        feeds = self._feeds(emb, *checked, normalized=not normalize_coords)
        run = self._decoded(emb, [feeds], multimask=multimask_output, as_masks=not return_logits)
        masks, iou, low_res = next(run)
        return Prediction(masks[0], iou[0], low_res[0])

    def _coords_frame(self, emb: ImageEmbedding, normalize_coords: bool) -> tuple[int, int]:
        """(H, W) that the range check of prompt coordinates uses: the image's, or (1, 1) for
        SAM 2's coordinates already divided by (W, H)."""
        if normalize_coords:
            return emb.orig_hw
        if not self.rules.normalized_coords:
            raise InvalidInputError(
                "normalize_coords",
                f"True for a {self.rules.label} model (its official predictor takes pixel coordinates only)",
                "False",
            )
        return (1, 1)

    def _feeds(self, emb, coords, labels, box, mask_input, *, normalized: bool = False):
        return decoder_feeds(
            emb.orig_hw, coords, labels, box, mask_input, family=self.family, normalized=normalized
        )

    def predict_boxes(
        self,
        boxes: np.ndarray,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        multimask_output: bool = False,
        return_logits: bool = False,
        *,
        embedding: ImageEmbedding | None = None,
    ) -> Prediction:
        """Many boxes on one image, through the batched decoder (official ``predict_torch``).

        Arguments:
          boxes: ``B x 4`` (x0, y0, x1, y1) in original-image pixels.
          point_coords, point_labels: optional ``B x N x 2`` and ``B x N`` clicks per box.
        Returns a :class:`Prediction` whose arrays have a leading axis B
        (``B x M x H x W`` masks, ``B x M`` scores, ``B x M x 256 x 256`` low-res logits).
        """
        emb = self._embedding(embedding)
        boxes_xyxy = check_boxes(boxes, emb.orig_hw)
        per_box: Sequence[tuple[np.ndarray | None, np.ndarray | None]] = [(None, None)] * len(boxes_xyxy)
        if point_coords is not None or point_labels is not None:
            per_box = self._points_per_box(point_coords, point_labels, len(boxes_xyxy), emb.orig_hw)
        feeds = [
            self._feeds(emb, pts, lbl, box, None) for (pts, lbl), box in zip(per_box, boxes_xyxy, strict=True)
        ]
        runs = list(self._decoded(emb, feeds, multimask=multimask_output, as_masks=not return_logits))
        return Prediction(*(np.concatenate([run[i] for run in runs]) for i in range(3)))

    def iter_point_masks(self, points_xy: np.ndarray, embedding: ImageEmbedding, *, batch: int = 64):
        """One positive click per prompt, decoded in batches (the automatic generator's step).

        ``points_xy``: ``B x 2`` (x, y) in the embedded image's pixels. Yields, in order, runs of
        ``b <= batch`` prompts: ``b x 3 x H x W`` float32 logits of the multimask tokens and ``b x 3``
        IoU. Each run holds at most :data:`DECODER_BYTES` of logits, so memory stays bounded
        for large images.
        """
        for masks, iou, _ in self.decode_points(points_xy, embedding, batch=batch):
            yield masks, iou

    def decode_points(
        self,
        points_xy: np.ndarray,
        embedding: ImageEmbedding,
        *,
        batch: int = 64,
        multimask_output: bool = True,
        mask_input: np.ndarray | None = None,
    ):
        """One positive click per prompt (optionally each with its own ``mask_input``), decoded in
        batches: the automatic generator's step, also its SAM 2 mask-to-mask refinement.

        ``points_xy``: ``B x 2`` (x, y) in the embedded image's pixels; ``mask_input``: ``B x 1 x
        256 x 256`` low-res logits or ``None``. Yields, in order, runs of ``b <= batch`` prompts:
        ``b x M x H x W`` float32 logits, ``b x M`` IoU and ``b x M x 256 x 256`` low-res logits,
        M = 3 with ``multimask_output``, else 1 (the single-mask rule of the model's family).
        Each run holds at most :data:`DECODER_BYTES` of logits.
        """
        emb = self._check_embedding(embedding)
        points = np.asarray(points_xy)
        # float32 clicks stay float32: the SAM 2 generator's clicks are, as officially
        points = (points if points.dtype == np.float32 else points.astype(np.float64)).reshape(-1, 1, 2)
        check_coords_xy("points_xy", points, emb.orig_hw)
        masks_in = [None] * len(points) if mask_input is None else self._grid_masks(mask_input, len(points))
        labels = np.ones(1, np.int64)
        feeds = [self._feeds(emb, p, labels, None, m) for p, m in zip(points, masks_in, strict=True)]
        yield from self._decoded(emb, feeds, multimask=multimask_output, as_masks=False, batch=batch)

    @staticmethod
    def _grid_masks(mask_input: np.ndarray, count: int) -> np.ndarray:
        arr = np.asarray(mask_input, np.float32)
        if arr.shape != (count, 1, 256, 256) or not np.isfinite(arr).all():
            raise InvalidInputError(
                "mask_input", f"finite float {count} x 1 x 256 x 256", f"shape {arr.shape}"
            )
        return arr[:, None]

    def _points_per_box(self, point_coords, point_labels, num_boxes, orig_hw):
        coords = np.asarray(point_coords, dtype=np.float64) if point_coords is not None else None
        if coords is None or coords.ndim != 3 or coords.shape[0] != num_boxes:
            raise InvalidInputError(
                "point_coords",
                f"{num_boxes} x N x 2 (one row of clicks per box)",
                f"shape {np.shape(point_coords)}",
            )
        labels = np.asarray(point_labels, dtype=np.float64) if point_labels is not None else None
        if labels is None or labels.shape != coords.shape[:2]:
            got = "none" if labels is None else f"shape {labels.shape}"
            raise InvalidInputError("point_labels", f"shape {coords.shape[:2]} (B x N)", got)
        pairs = zip(coords, labels, strict=True)
        return [check_points(c, lbl, orig_hw, max_points=self.max_points) for c, lbl in pairs]

    # -- running graphs ----------------------------------------------------------------------

    def _embedding(self, embedding: ImageEmbedding | None) -> ImageEmbedding:
        return self.get_image_embedding() if embedding is None else self._check_embedding(embedding)

    def _check_embedding(self, embedding: ImageEmbedding) -> ImageEmbedding:
        if not isinstance(embedding, ImageEmbedding):
            raise InvalidInputError("embedding", "an ImageEmbedding", type(embedding).__name__)
        if embedding.rules is not self.rules:
            raise InvalidInputError(
                "embedding",
                f"a {self.rules.label} embedding (this model is {self.variant}, family {self.family!r})",
                f"a {embedding.rules.label} embedding of {embedding.variant} (family {embedding.family!r})",
            )
        if embedding.checkpoint_sha256 != self.checkpoint_sha256:
            raise InvalidInputError(
                "embedding",
                f"one from this model's checkpoint ({self.variant}, sha256 {self.checkpoint_sha256[:12]}…)",
                f"one from {embedding.variant}, sha256 {embedding.checkpoint_sha256[:12]}…",
            )
        if embedding.variant != self.variant:  # one checkpoint, two variants: a sidecar edited or mixed up
            raise InvalidInputError(
                "embedding",
                f"one of this model's variant {self.variant!r} (sha256 {self.checkpoint_sha256[:12]}…)",
                f"one that claims variant {embedding.variant!r} for the same checkpoint",
            )
        return embedding

    def _run_encoder(self, feed: np.ndarray) -> tuple[list | None, list | None]:
        """Returns (host arrays, None), or (None, device OrtValues) with IO binding: the
        embedding, and for SAM 2 the two high-res maps after it."""
        session, name = self.encoder.session, self.encoder.input_names[0]
        outputs = list(self.rules.feature_names)
        try:
            if not self.io_binding:
                return session.run(outputs, {name: feed}), None
            binding = session.io_binding()
            binding.bind_cpu_input(name, feed)
            for output in outputs:
                binding.bind_output(output, *self._device)
            session.run_with_iobinding(binding)
            return None, list(binding.get_outputs())
        except Exception as exc:  # onnxruntime's own exception types
            raise _inference_error(self.encoder, {name: feed}, exc) from None

    def _run_size(self, emb: ImageEmbedding, batch: int) -> int:
        """Prompts per decoder run: at most ``batch``, and at most :data:`DECODER_BYTES` of working
        memory (:func:`decoder_bytes`) at the embedded image's size; at least 1."""
        return max(1, min(batch, DECODER_BYTES // decoder_bytes(emb.orig_hw, self.family)))

    def _decoder_for(self, feeds: list[dict[str, np.ndarray]]) -> GraphDecoder | PairDecoder:
        """The cheaper decoder for these prompts: the pair up to :attr:`pair_max_points` points
        per prompt (padding point and box corners counted), else the decoder graph."""
        if self._pair is None or self.io_binding:
            return self._graph
        points = max(f["point_coords"].shape[1] for f in feeds)
        return self._pair if points <= self.pair_max_points else self._graph

    def _decoded(self, emb, feeds, *, multimask: bool, as_masks: bool, batch: int = MAX_DECODER_BATCH):
        """Decode ``feeds`` (one dict per prompt) in runs of at most ``batch`` prompts holding at most
        :data:`DECODER_BYTES`; yields per run ``b x M x H x W`` masks (bool with ``as_masks``, else
        float32 logits), ``b x M`` IoU and ``b x M x 256 x 256`` low-res logits as the contract
        returns them, M = 3 or 1 (:meth:`pick_tokens`). The pair's tokens are upscaled here, only
        the picked ones."""
        decoder = self._decoder_for(feeds)
        for masks, iou, low_res in decoder.runs(emb, feeds, self._run_size(emb, batch)):
            masks, iou, low_res = self.pick_tokens(masks, iou, low_res, multimask)
            if masks is None:
                upscale = upscale_masks if as_masks else upscale_logits
                flat = upscale(low_res.reshape(-1, *low_res.shape[2:]), emb.orig_hw, self.family)
                masks = flat.reshape(*low_res.shape[:2], *flat.shape[1:])
            elif as_masks:
                masks = masks > MASK_THRESHOLD
            yield masks, np.ascontiguousarray(iou), self._feedback(low_res)

    def pick_tokens(self, masks, iou, low_res, multimask_output: bool):
        """The official outputs among all four mask tokens of ``b`` prompts (``b x 4 x ...``):
        tokens 1..3 with ``multimask_output``; else token 0 (SAM v1), or SAM 2's rule per prompt
        (token 0 unless the stability of its low-res logits, ``count(> delta) / count(> -delta)``,
        is under the threshold; then the token of 1..3 with the highest IoU, the first on ties).
        Returns ``(masks, iou, low_res)`` with M = 3 or 1 tokens (``masks`` may be None: the
        pair's, upscaled after the pick)."""
        if multimask_output:
            pick = np.s_[:, 1:]
        elif self.rules.stability is None:
            pick = np.s_[:, :1]
        else:
            token = sam2_single_tokens(low_res, iou, self.stability_delta, self.stability_thresh)
            pick = (np.arange(len(token))[:, None], token[:, None])
        return (None if masks is None else masks[pick]), iou[pick], low_res[pick]

    def _feedback(self, low: np.ndarray) -> np.ndarray:
        """Low-res logits as the decoder contract returns them, to feed back (SAM 2: clamped)."""
        clamp = self.rules.low_res_clamp
        if clamp is not None:
            low = np.clip(low, -clamp, clamp)
        return np.ascontiguousarray(low)


def decoder_bytes(orig_hw: tuple[int, int], family: str = "sam") -> int:
    """Estimated working memory of one prompt in a decoder run, in bytes: 4 mask tokens of float32
    logits at the original size (H x W) and at the resized size the first resize makes (long side
    1024), and the upscaled features (measured: 25 MB per prompt at 480 x 640, this gives 26).
    SAM 2 resizes straight to H x W by two gathers and weighted sums: counted as three H x W
    arrays per token (an estimate, not measured)."""
    if family_of(family).resize == "square":
        return 4 * 4 * 3 * orig_hw[0] * orig_hw[1] + UPSCALE_BYTES
    resized_h, resized_w = resized_hw(orig_hw)
    return 4 * 4 * (orig_hw[0] * orig_hw[1] + resized_h * resized_w) + UPSCALE_BYTES


def sam2_single_tokens(low_res: np.ndarray, iou: np.ndarray, delta: float, thresh: float) -> np.ndarray:
    """SAM 2's single-mask token of each of ``b`` prompts (``b x 4 x 256 x 256`` low-res logits,
    ``b x 4`` IoU): 0 when token 0's stability (float32 ``count(> delta) / count(> -delta)``, 1 when
    nothing passes ``-delta``) is at least ``thresh``, else ``1 + argmax(iou[:, 1:])``. The low-res
    logits may be the clamped ones: clamping to +-32 moves no logit across +-delta."""
    token0 = low_res[:, 0].reshape(len(low_res), -1)
    inter = np.count_nonzero(token0 > np.float32(delta), axis=1).astype(np.float32)
    union = np.count_nonzero(token0 > np.float32(-delta), axis=1).astype(np.float32)
    stability = np.where(union > 0, inter / np.maximum(union, 1), np.float32(1.0))
    stable = stability >= np.float32(thresh)
    return np.where(stable, 0, 1 + np.argmax(iou[:, 1:], axis=1))


def _binding_device(graph: Graph) -> tuple[str, int]:
    """(device type, id) for IO binding outputs: where the graph's first provider runs."""
    provider = graph.providers[0]
    if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        options = graph.session.get_provider_options().get(provider, {})
        return "cuda", int(options.get("device_id", 0))
    return "cpu", 0
