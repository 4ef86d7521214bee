"""The image embedding as a value: the encoder's output plus what is needed to use it later.

An :class:`ImageEmbedding` is immutable and carries its own sizes and model identity, so the
predictor can take it explicitly (thread-safe by construction), and a saved one can be loaded by
another process, or by the web demo, without the image or the encoder.

On disk it is two files side by side: ``NAME.npy`` (``1 x 256 x 64 x 64`` float32, written by
``numpy.save``) and ``NAME.json``::

    {"format": "sam-onnx-embedding", "version": 1, "orig_hw": [H, W], "input_hw": [h, w],
     "variant": "vit_b", "checkpoint_sha256": "...", "image": "photo.jpg"}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from sam_onnx.errors import EmbeddingFileError, InvalidInputError, OutputWriteError
from sam_onnx.preprocess import resized_hw
from sam_onnx.variants import EMBED_HW, PROMPT_EMBED_DIM

from .outputs import atomic_write

EMBEDDING_SHAPE = (1, PROMPT_EMBED_DIM, EMBED_HW, EMBED_HW)
FORMAT = "sam-onnx-embedding"
FORMAT_VERSION = 1


class ImageEmbedding:
    """One image's embedding.

    Attributes:
      embedding: ``1 x 256 x 64 x 64`` float32 numpy array (copied from the device on first read
        when the encoder ran with IO binding on CUDA).
      orig_hw: (H, W) of the original image.
      input_hw: (h, w) of the image resized to long side 1024, before padding.
      variant: ``vit_b``, ``vit_l``, ``vit_h`` (or a test variant).
      checkpoint_sha256: hash of the checkpoint the encoder was exported from.
      device_value: the onnxruntime ``OrtValue`` holding the embedding on the device, or ``None``.
    """

    __slots__ = ("_host", "checkpoint_sha256", "device_value", "input_hw", "orig_hw", "variant")

    def __init__(
        self,
        embedding: np.ndarray | None,
        orig_hw: tuple[int, int],
        *,
        variant: str,
        checkpoint_sha256: str,
        device_value: object | None = None,
    ) -> None:
        if embedding is None and device_value is None:
            raise InvalidInputError("embedding", "an array or a device value", "neither")
        if embedding is not None:
            embedding = check_embedding_array(embedding)
        self._host = embedding
        self.device_value = device_value
        self.orig_hw = (int(orig_hw[0]), int(orig_hw[1]))
        self.input_hw = resized_hw(self.orig_hw)
        self.variant = variant
        self.checkpoint_sha256 = checkpoint_sha256

    @property
    def embedding(self) -> np.ndarray:
        if self._host is None:  # one copy from the device, kept
            self._host = check_embedding_array(self.device_value.numpy())
        return self._host

    def metadata(self) -> dict:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "orig_hw": list(self.orig_hw),
            "input_hw": list(self.input_hw),
            "variant": self.variant,
            "checkpoint_sha256": self.checkpoint_sha256,
        }

    def save(self, path: str | os.PathLike[str], **extra: str) -> tuple[Path, Path]:
        """Write ``NAME.npy`` and ``NAME.json`` (``path`` may end in ``.npy`` or not).

        ``extra`` goes into the JSON (e.g. ``image="photo.jpg"``). Each file is written to a
        temporary name and renamed, so a crash never leaves a half-written embedding.
        Returns the two paths.
        """
        npy, sidecar = embedding_paths(path)
        text = json.dumps({**self.metadata(), **extra}, indent=1).encode()
        writers = (
            (npy, lambda f: np.save(f, self.embedding, allow_pickle=False)),
            (sidecar, lambda f: f.write(text)),
        )
        for file, write in writers:
            try:
                atomic_write(file, write)
            except OSError as exc:
                why = f"{exc.strerror or exc} (disk full or file size limit?); the file there is unchanged"
                raise OutputWriteError(file, why) from None
        return npy, sidecar

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ImageEmbedding:
        """Read an embedding written by :meth:`save`; raises :class:`EmbeddingFileError`."""
        npy, sidecar = embedding_paths(path)
        for file in (npy, sidecar):
            if not file.is_file():
                raise EmbeddingFileError(
                    file, "no such file (an embedding is a .npy and a .json side by side)"
                )
        try:
            meta = json.loads(sidecar.read_text())
            orig_hw = tuple(int(v) for v in meta["orig_hw"])
            variant, sha = str(meta["variant"]), str(meta["checkpoint_sha256"])
            if meta.get("format") != FORMAT or len(orig_hw) != 2:
                raise ValueError(f"format {meta.get('format')!r}, orig_hw {meta['orig_hw']!r}")
            if meta.get("version") != FORMAT_VERSION:
                raise ValueError(
                    f"format version {meta.get('version')!r}; this sam-onnx reads {FORMAT_VERSION}"
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EmbeddingFileError(sidecar, f"not a sam-onnx embedding sidecar ({exc})") from None
        try:
            array = np.load(npy, allow_pickle=False)
        except Exception as exc:
            raise EmbeddingFileError(npy, f"not a readable .npy array ({exc})") from None
        try:
            return cls(array, orig_hw, variant=variant, checkpoint_sha256=sha)
        except InvalidInputError as exc:
            raise EmbeddingFileError(npy, str(exc)) from None


def check_embedding_array(array: object) -> np.ndarray:
    """Return ``array`` if it is a finite ``1 x 256 x 64 x 64`` float32 array, else raise."""
    if not isinstance(array, np.ndarray):
        raise InvalidInputError("embedding", "a numpy array", type(array).__name__)
    if array.shape != EMBEDDING_SHAPE or array.dtype != np.float32:
        raise InvalidInputError(
            "embedding", f"float32 of shape {EMBEDDING_SHAPE}", f"{array.dtype} of shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise InvalidInputError("embedding", "finite values", "NaN or infinity")
    return array


def embedding_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``NAME.npy`` and ``NAME.json`` for ``path`` given as ``NAME`` or ``NAME.npy``."""
    path = Path(path)
    base = path.with_suffix("") if path.suffix == ".npy" else path
    return base.with_name(base.name + ".npy"), base.with_name(base.name + ".json")
