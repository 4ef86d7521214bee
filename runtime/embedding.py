"""The image embedding as a value: the encoder's output plus what is needed to use it later.

An :class:`ImageEmbedding` is immutable and carries its own sizes and model identity, so the
predictor can take it explicitly (thread-safe by construction), and a saved one can be loaded by
another process, or by the web demo, without the image or the encoder.

On disk it is two files side by side: ``NAME.npy`` (``1 x 256 x 64 x 64`` float32, written by
``numpy.save``) and ``NAME.json``::

    {"format": "sam-onnx-embedding", "version": 1, "orig_hw": [H, W], "input_hw": [h, w],
     "variant": "vit_b", "checkpoint_sha256": "...", "family": "sam", "image": "photo.jpg"}

A SAM 2 embedding (``family`` ``"sam2"``) carries the encoder's two high-resolution feature maps
too: ``NAME.high_res_feats_0.npy`` (``1 x 32 x 256 x 256``) and ``NAME.high_res_feats_1.npy``
(``1 x 64 x 128 x 128``) beside ``NAME.npy`` (``image_embed``, ``no_mem_embed`` added); its JSON
says ``"version": 2``, ``"family": "sam2"`` and ``"input_hw": [1024, 1024]`` (SAM 2 resizes to the
square). The JSON is written last, so its presence means the arrays are complete. A file lacking
``family`` is SAM v1 (files of older sam-onnx releases).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from sam_onnx.errors import EmbeddingFileError, InvalidInputError, OutputWriteError
from sam_onnx.preprocess import resized_hw
from sam_onnx.variants import EMBED_HW, IMAGE_SIZE, PROMPT_EMBED_DIM

from .outputs import atomic_write

EMBEDDING_SHAPE = (1, PROMPT_EMBED_DIM, EMBED_HW, EMBED_HW)
FORMAT = "sam-onnx-embedding"
FORMAT_VERSION = 1
SAM2_FORMAT_VERSION = 2  # adds "family" and the high-res feature files
FAMILY_NAMES = {"sam": "SAM v1", "sam2": "SAM 2"}
# SAM 2's extra encoder outputs, as the decoder graph names its inputs, and their shapes
HIGH_RES_NAMES = ("high_res_feats_0", "high_res_feats_1")
HIGH_RES_SHAPES = ((1, 32, 256, 256), (1, 64, 128, 128))


class ImageEmbedding:
    """One image's embedding.

    Attributes:
      embedding: ``1 x 256 x 64 x 64`` float32 numpy array (copied from the device on first read
        when the encoder ran with IO binding on CUDA).
      orig_hw: (H, W) of the original image.
      input_hw: (h, w) of the image resized to long side 1024, before padding (SAM 2: the
        square, (1024, 1024)).
      variant: ``vit_b``, ``vit_l``, ``vit_h``, ``hiera_t`` ... (or a test variant).
      checkpoint_sha256: hash of the checkpoint the encoder was exported from.
      family: ``"sam"`` (SAM v1) or ``"sam2"`` (SAM 2 / 2.1).
      high_res_feats: SAM 2 only: ``1 x 32 x 256 x 256`` and ``1 x 64 x 128 x 128`` float32 (copied
        from the device on first read, as ``embedding``); ``()`` for SAM v1.
      device_value: the onnxruntime ``OrtValue`` holding the embedding on the device, or ``None``;
        for SAM 2 a tuple of three (``image_embeddings`` and the two high-res maps).
    """

    __slots__ = (
        "_high_res",
        "_host",
        "checkpoint_sha256",
        "device_value",
        "family",
        "input_hw",
        "orig_hw",
        "variant",
    )

    def __init__(
        self,
        embedding: np.ndarray | None,
        orig_hw: tuple[int, int],
        *,
        variant: str,
        checkpoint_sha256: str,
        device_value: object | None = None,
        family: str = "sam",
        high_res_feats: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        if family not in FAMILY_NAMES:
            raise InvalidInputError("family", f"one of {tuple(FAMILY_NAMES)}", repr(family))
        if embedding is None and device_value is None:
            raise InvalidInputError("embedding", "an array or a device value", "neither")
        if embedding is not None:
            embedding = check_embedding_array(embedding)
        self.family = family
        self._high_res = _check_high_res(family, high_res_feats, device_value)
        self._host = embedding
        self.device_value = device_value
        self.orig_hw = (int(orig_hw[0]), int(orig_hw[1]))
        self.input_hw = (IMAGE_SIZE, IMAGE_SIZE) if family == "sam2" else resized_hw(self.orig_hw)
        self.variant = variant
        self.checkpoint_sha256 = checkpoint_sha256

    @property
    def embedding(self) -> np.ndarray:
        if self._host is None:  # one copy from the device, kept
            value = self.device_value[0] if self.family == "sam2" else self.device_value
            self._host = check_embedding_array(value.numpy())
        return self._host

    @property
    def high_res_feats(self) -> tuple[np.ndarray, ...]:
        if self._high_res is None:  # SAM 2 with IO binding: one copy from the device, kept
            arrays = tuple(v.numpy() for v in self.device_value[1:])
            self._high_res = _check_high_res(self.family, arrays, None)
        return self._high_res

    def decoder_inputs(self) -> dict[str, np.ndarray]:
        """The image's inputs of the decoder graph by name: ``image_embeddings`` (and, SAM 2,
        ``high_res_feats_0`` / ``_1``), host arrays."""
        high_res = dict(zip(HIGH_RES_NAMES, self.high_res_feats, strict=False))  # none for SAM v1
        return {"image_embeddings": self.embedding, **high_res}

    def device_inputs(self) -> dict[str, object]:
        """As :meth:`decoder_inputs`, the device ``OrtValue`` s (empty without IO binding)."""
        if self.device_value is None:
            return {}
        if self.family == "sam2":
            return dict(zip(("image_embeddings", *HIGH_RES_NAMES), self.device_value, strict=True))
        return {"image_embeddings": self.device_value}

    def metadata(self) -> dict:
        sam2 = self.family == "sam2"
        return {
            "format": FORMAT,
            "version": SAM2_FORMAT_VERSION if sam2 else FORMAT_VERSION,
            "orig_hw": list(self.orig_hw),
            "input_hw": list(self.input_hw),
            "variant": self.variant,
            "checkpoint_sha256": self.checkpoint_sha256,
            "family": self.family,
        }

    def save(self, path: str | os.PathLike[str], **extra: str) -> tuple[Path, Path]:
        """Write ``NAME.npy`` and ``NAME.json`` (``path`` may end in ``.npy`` or not); SAM 2 also
        ``NAME.high_res_feats_0.npy`` and ``_1``.

        ``extra`` goes into the JSON (e.g. ``image="photo.jpg"``). Each file is written to a
        temporary name and renamed, so a crash never leaves a half-written embedding.
        Returns the two paths.
        """
        npy, sidecar = embedding_paths(path)
        meta = self.metadata()
        if self.family == "sam2":
            meta["high_res_feats"] = [p.name for p in high_res_paths(npy)]
        text = json.dumps({**meta, **extra}, indent=1).encode()
        arrays = [(npy, self.embedding)]
        if self.family == "sam2":
            arrays += list(zip(high_res_paths(npy), self.high_res_feats, strict=True))
        writers = [(file, _npy_writer(array)) for file, array in arrays]
        writers.append((sidecar, lambda f: f.write(text)))  # last: it marks the embedding complete
        for file, write in writers:
            try:
                atomic_write(file, write)
            except OSError as exc:
                why = f"{exc.strerror or exc} (disk full or file size limit?); the file there is unchanged"
                raise OutputWriteError(file, why) from None
        return npy, sidecar

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, family: str | None = None) -> ImageEmbedding:
        """Read an embedding written by :meth:`save`; raises :class:`EmbeddingFileError`, also
        when ``family`` (``"sam"`` / ``"sam2"``, the model that will use it) is given and the
        file is of the other family."""
        npy, sidecar = embedding_paths(path)
        for file in (npy, sidecar):
            if not file.is_file():
                raise EmbeddingFileError(
                    file, "no such file (an embedding is a .npy and a .json side by side)"
                )
        orig_hw, variant, sha, found = _read_sidecar(sidecar)
        if family is not None and found != family:
            raise EmbeddingFileError(
                sidecar,
                f"is a {FAMILY_NAMES.get(found, found)} embedding ({variant}); this model is "
                f"{FAMILY_NAMES.get(family, family)}: embed the image with this model's encoder",
            )
        array = _load_npy(npy)
        high_res = tuple(_load_npy(p) for p in high_res_paths(npy)) if found == "sam2" else None
        try:
            return cls(
                array, orig_hw, variant=variant, checkpoint_sha256=sha, family=found, high_res_feats=high_res
            )
        except InvalidInputError as exc:
            raise EmbeddingFileError(npy, str(exc)) from None


def _read_sidecar(sidecar: Path) -> tuple[tuple[int, ...], str, str, str]:
    """(orig_hw, variant, checkpoint_sha256, family) of an embedding's JSON."""
    try:
        meta = json.loads(sidecar.read_text())
        orig_hw = tuple(int(v) for v in meta["orig_hw"])
        variant, sha = str(meta["variant"]), str(meta["checkpoint_sha256"])
        family = meta.get("family", "sam")
        if meta.get("format") != FORMAT or len(orig_hw) != 2:
            raise ValueError(f"format {meta.get('format')!r}, orig_hw {meta['orig_hw']!r}")
        versions = {"sam": FORMAT_VERSION, "sam2": SAM2_FORMAT_VERSION}
        if family not in versions or meta.get("version") not in (FORMAT_VERSION, versions[family]):
            raise ValueError(
                f"family {family!r}, format version {meta.get('version')!r}; this sam-onnx reads "
                f"{FORMAT_VERSION} (SAM v1) and {SAM2_FORMAT_VERSION} (SAM 2)"
            )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EmbeddingFileError(sidecar, f"not a sam-onnx embedding sidecar ({exc})") from None
    return orig_hw, variant, sha, family


def _load_npy(file: Path) -> np.ndarray:
    if not file.is_file():
        raise EmbeddingFileError(file, "no such file (a SAM 2 embedding has two high-res .npy files)")
    try:
        return np.load(file, allow_pickle=False)
    except Exception as exc:
        raise EmbeddingFileError(file, f"not a readable .npy array ({exc})") from None


def _npy_writer(array: np.ndarray):
    return lambda f: np.save(f, array, allow_pickle=False)


def _check_high_res(family: str, arrays, device_value) -> tuple[np.ndarray, ...] | None:
    """SAM 2's two high-res maps, checked; ``()`` for SAM v1; ``None`` while on the device."""
    if family == "sam":
        if arrays is not None:
            raise InvalidInputError("high_res_feats", "none for a SAM v1 embedding", "two arrays")
        return ()
    if arrays is None:
        if device_value is None:
            raise InvalidInputError(
                "high_res_feats",
                "a SAM 2 embedding's two high-res maps (1 x 32 x 256 x 256, 1 x 64 x 128 x 128)",
                "none",
            )
        return None
    arrays = tuple(arrays)
    shapes = tuple(getattr(a, "shape", None) for a in arrays)
    if shapes != HIGH_RES_SHAPES or any(a.dtype != np.float32 for a in arrays):
        got = ", ".join(f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}" for a in arrays)
        raise InvalidInputError("high_res_feats", f"float32 of shapes {HIGH_RES_SHAPES}", got)
    if not all(np.isfinite(a).all() for a in arrays):
        raise InvalidInputError("high_res_feats", "finite values", "NaN or infinity")
    return arrays


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


def high_res_paths(npy: Path) -> tuple[Path, Path]:
    """``NAME.high_res_feats_0.npy`` and ``_1`` beside ``NAME.npy`` (a SAM 2 embedding's extra maps)."""
    base = npy.with_suffix("")
    return tuple(base.with_name(f"{base.name}.{name}.npy") for name in HIGH_RES_NAMES)


def embedding_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``NAME.npy`` and ``NAME.json`` for ``path`` given as ``NAME`` or ``NAME.npy``."""
    path = Path(path)
    base = path.with_suffix("") if path.suffix == ".npy" else path
    return base.with_name(base.name + ".npy"), base.with_name(base.name + ".json")
