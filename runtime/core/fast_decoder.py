"""The fast decoder pair at run time: ``decoder_image.onnx`` once per image, ``decoder_click.onnx``
per click (see ``sam_onnx.export.fast_decoder_graph`` for what the two graphs compute).

:class:`SamPredictor` opens the pair when the export has it and runs every prompt through it, one
click graph run per prompt (single prompts, boxes in batches, the automatic mask generator's
clicks: per prompt the pair beats the batched decoder, which upscales all four tokens to the image
size); the official-contract decoders stay in use with IO binding and for the int8 decoder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam_onnx.contract import FAST_FILES, PROMPT_INPUTS
from sam_onnx.errors import ModelLoadError, ModelMismatchError

from .graphs import Graph, _check_role, _manifest_files
from .session import SessionConfig

FAST_KEYS = tuple(FAST_FILES)  # export.json keys, per-image graph first


def fast_decoder_paths(model_dir: str | os.PathLike[str]) -> tuple[Path, Path] | None:
    """``(decoder_image.onnx, decoder_click.onnx)`` of a ``sam-export`` directory, or None when
    it has not both (exported with ``--no-fast-decoder``, or by an older sam-onnx)."""
    model_dir = Path(model_dir)
    try:
        files = _manifest_files(model_dir)
    except ModelLoadError:
        return None
    paths = [model_dir / files.get(key, f"{key}.onnx") for key in FAST_KEYS]
    return (paths[0], paths[1]) if all(p.is_file() for p in paths) else None


@dataclass(frozen=True)
class FastDecoder:
    """The pair, open. ``image`` and ``click``: their :class:`Graph` s."""

    image: Graph
    click: Graph

    @classmethod
    def open_unchecked(cls, paths: tuple[Path, Path], config: SessionConfig) -> FastDecoder:
        """Open both graphs; raise :class:`ModelMismatchError` unless each is its role of the pair
        (which checkpoint they come from is the caller's to check)."""
        graphs = []
        for path, key in zip(paths, FAST_KEYS, strict=True):
            graphs.append(Graph.open(path, config, role=key))
            _check_role(graphs[-1], key)
        return cls(*graphs)

    @classmethod
    def open(cls, paths: tuple[Path, Path], config: SessionConfig, decoder: Graph) -> FastDecoder:
        """Open both graphs; raise :class:`ModelMismatchError` unless they are the pair's roles and
        come from ``decoder``'s checkpoint."""
        pair = cls.open_unchecked(paths, config)
        for graph in (pair.image, pair.click):
            sha = graph.metadata.get("checkpoint_sha256")
            if sha != decoder.metadata.get("checkpoint_sha256"):
                raise ModelMismatchError(
                    graph.path,
                    f"comes from checkpoint {sha}, decoder {decoder.path.name} from "
                    f"{decoder.metadata.get('checkpoint_sha256')}: export both with one sam-export run",
                )
        return pair

    def image_tensors(self, image_inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The per-image tensors by name, from the image's decoder inputs (``image_embeddings``
        and, SAM 2, the high-res features)."""
        feeds = {name: image_inputs[name] for name in self.image.input_names}
        return dict(zip(self.image.output_names, self.image.session.run(None, feeds), strict=True))

    def tokens(self, tensors: dict[str, np.ndarray], prompt: dict[str, np.ndarray]):
        """All four mask tokens of one prompt: low-res logits ``1 x 4 x 256 x 256`` float32 (not
        clamped) and IoU ``1 x 4``. ``prompt``: the contract's prompt inputs (see
        ``sam_onnx.runtime.core.prompts.decoder_feeds``; ``orig_im_size`` is not read)."""
        feeds = {**tensors, **{name: prompt[name] for name in PROMPT_INPUTS}}
        low_res, iou = self.click.session.run(None, feeds)
        return low_res, iou
