"""The two ways a prompt is decoded, behind one interface: ``runs(emb, feeds, step)``.

Both yield, per run of at most ``step`` prompts, all four mask tokens of each prompt:
``(masks, iou, low_res)`` with ``iou`` ``b x 4`` and ``low_res`` ``b x 4 x 256 x 256`` float32.

- :class:`GraphDecoder`: the contract decoder graph (``decoder_batched.onnx``, or a ``--multimask``
  ``decoder.onnx`` one prompt at a time). ``masks`` are its ``b x 4 x H x W`` logits, upscaled in
  the graph; ``low_res`` as the contract returns them (SAM 2: clamped).
- :class:`PairDecoder`: the fast pair (``decoder_image.onnx`` once per image, then
  ``decoder_click.onnx`` per prompt). ``masks`` is ``None``: the caller upscales only the tokens it
  keeps (:mod:`.upscale`); ``low_res`` unclamped.

:class:`~.predictor.SamPredictor` picks the official tokens (the family's single-mask rule) and
chooses the implementation per call by cost (``PAIR_MAX_POINTS``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np

from sam_onnx.contract import DECODER_OUTPUTS
from sam_onnx.errors import InferenceError

from .embedding import ImageEmbedding
from .fast_decoder import FastDecoder
from .graphs import Graph, check_feeds
from .prompts import stack_feeds

Feeds = dict[str, np.ndarray]
Run = tuple[np.ndarray | None, np.ndarray, np.ndarray]


class GraphDecoder:
    """The contract decoder graph; ``io_binding``: read the image features from the device."""

    def __init__(self, graph: Graph, *, io_binding: bool) -> None:
        self.graph = graph
        self.batched = graph.metadata.get("batched") == "true"
        self.io_binding = io_binding

    def runs(self, emb: ImageEmbedding, feeds: list[Feeds], step: int) -> Iterator[Run]:
        """Runs of at most ``step`` prompts (1 without the batch axis); prompts of one run must
        share N, so a run of mixed counts goes one prompt at a time."""
        step = step if self.batched else 1
        for start in range(0, len(feeds), step):
            chunk = feeds[start : start + step]
            if len({f["point_coords"].shape[1] for f in chunk}) == 1:
                yield self._run(emb, stack_feeds(chunk))
            else:
                yield from (self._run(emb, f) for f in chunk)

    def _run(self, emb: ImageEmbedding, feeds: Feeds) -> Run:
        session, names = self.graph.session, list(DECODER_OUTPUTS)
        device = emb.device_inputs() if self.io_binding else {}
        check_feeds(self.graph, {**(device or emb.decoder_inputs()), **feeds})
        try:
            if device:
                binding = session.io_binding()
                for name, value in device.items():
                    binding.bind_ortvalue_input(name, value)
                for name, array in feeds.items():
                    binding.bind_cpu_input(name, array)
                for name in names:
                    binding.bind_output(name, "cpu")
                session.run_with_iobinding(binding)
                masks, iou, low_res = binding.copy_outputs_to_cpu()
            else:
                masks, iou, low_res = session.run(names, {**emb.decoder_inputs(), **feeds})
        except Exception as exc:  # onnxruntime's own exception types
            raise inference_error(self.graph, feeds, exc) from None
        return masks, iou, low_res


class PairDecoder:
    """The fast decoder pair; the per-image tensors are kept for each thread's last image."""

    def __init__(self, pair: FastDecoder) -> None:
        self.pair = pair
        self._local = threading.local()

    def image_tensors(self, emb: ImageEmbedding) -> Feeds:
        """The per-image graph's outputs for ``emb`` (run once per image and thread)."""
        cached = getattr(self._local, "tensors", None)
        if cached is None or cached[0] is not emb:
            try:
                cached = (emb, self.pair.image_tensors(emb.decoder_inputs()))
            except Exception as exc:  # onnxruntime's own exception types
                raise inference_error(self.pair.image, emb.decoder_inputs(), exc) from None
            self._local.tensors = cached
        return cached[1]

    def runs(self, emb: ImageEmbedding, feeds: list[Feeds], step: int) -> Iterator[Run]:
        tensors = self.image_tensors(emb)
        for start in range(0, len(feeds), step):
            tokens = [self._click(tensors, f) for f in feeds[start : start + step]]
            low_res = np.concatenate([low for low, _ in tokens])
            yield None, np.concatenate([iou for _, iou in tokens]), low_res

    def _click(self, tensors: Feeds, feeds: Feeds) -> tuple[np.ndarray, np.ndarray]:
        try:
            return self.pair.tokens(tensors, feeds)
        except Exception as exc:  # onnxruntime's own exception types
            raise inference_error(self.pair.click, feeds, exc) from None


def inference_error(graph: Graph, feeds: dict[str, np.ndarray], exc: Exception) -> InferenceError:
    """A graph's run failing, named: the file, every input's shape and dtype, onnxruntime's words."""
    shapes = ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in feeds.items())
    first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
    return InferenceError(f"{graph.path.name} ({graph.path}) failed on inputs {shapes}: {first}")
