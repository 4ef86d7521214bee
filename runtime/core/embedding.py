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

from sam_onnx.atomic import atomic_write
from sam_onnx.contract import IMAGE_EMBEDDINGS
from sam_onnx.errors import EmbeddingFileError, InvalidInputError, OutputWriteError
from sam_onnx.families import DEFAULT_FAMILY, FAMILIES, Family, family_of
from sam_onnx.preprocess import encoder_input_hw

EMBEDDING_SHAPE = IMAGE_EMBEDDINGS.shape
FORMAT = "sam-onnx-embedding"
FORMAT_VERSION = DEFAULT_FAMILY.embedding_version  # files that name no family are of this version


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
        rules = family_of(family)
        if embedding is None and device_value is None:
            raise InvalidInputError("embedding", "an array or a device value", "neither")
        if embedding is not None:
            embedding = check_embedding_array(embedding)
        self.family = rules.name
        self._high_res = _check_high_res(rules, high_res_feats, device_value)
        self._host = embedding
        self.device_value = device_value
        self.orig_hw = (int(orig_hw[0]), int(orig_hw[1]))
        self.input_hw = encoder_input_hw(self.orig_hw, rules.resize)
        self.variant = variant
        self.checkpoint_sha256 = checkpoint_sha256

    @property
    def embedding(self) -> np.ndarray:
        if self._host is None:  # one copy from the device, kept
            self._host = check_embedding_array(self._device_values()[0].numpy())
        return self._host

    @property
    def high_res_feats(self) -> tuple[np.ndarray, ...]:
        if self._high_res is None:  # SAM 2 with IO binding: one copy from the device, kept
            arrays = tuple(v.numpy() for v in self._device_values()[1:])
            self._high_res = _check_high_res(self.rules, arrays, None)
        return self._high_res

    @property
    def rules(self) -> Family:
        """The record of this embedding's model family (:mod:`sam_onnx.families`)."""
        return FAMILIES[self.family]

    def _device_values(self) -> tuple:
        """The device values in the order of the family's features (SAM v1 keeps one bare)."""
        value = self.device_value
        return value if isinstance(value, tuple | list) else (value,)

    def decoder_inputs(self) -> dict[str, np.ndarray]:
        """The image's inputs of the decoder graph by name: ``image_embeddings`` (and, SAM 2,
        ``high_res_feats_0`` / ``_1``), host arrays."""
        arrays = (self.embedding, *self.high_res_feats)
        return dict(zip(self.rules.feature_names, arrays, strict=True))

    def device_inputs(self) -> dict[str, object]:
        """As :meth:`decoder_inputs`, the device ``OrtValue`` s (empty without IO binding)."""
        if self.device_value is None:
            return {}
        return dict(zip(self.rules.feature_names, self._device_values(), strict=True))

    def metadata(self) -> dict:
        return {
            "format": FORMAT,
            "version": self.rules.embedding_version,
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
        extra_files = feature_paths(npy, self.rules)[1:]
        if extra_files:
            meta["high_res_feats"] = [p.name for p in extra_files]
        text = json.dumps({**meta, **extra}, indent=1).encode()
        arrays = [(npy, self.embedding), *zip(extra_files, self.high_res_feats, strict=True)]
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
        if family is not None and found is not family_of(family):
            raise EmbeddingFileError(
                sidecar,
                f"is a {found.label} embedding ({variant}); this model is "
                f"{family_of(family).label}: embed the image with this model's encoder",
            )
        array = _load_npy(npy)
        extra_files = feature_paths(npy, found)[1:]
        high_res = tuple(_load_npy(p) for p in extra_files) if extra_files else None
        try:
            return cls(
                array,
                orig_hw,
                variant=variant,
                checkpoint_sha256=sha,
                family=found.name,
                high_res_feats=high_res,
            )
        except InvalidInputError as exc:
            raise EmbeddingFileError(npy, str(exc)) from None


def _read_sidecar(sidecar: Path) -> tuple[tuple[int, ...], str, str, Family]:
    """(orig_hw, variant, checkpoint_sha256, family record) of an embedding's JSON."""
    try:
        meta = json.loads(sidecar.read_text())
        orig_hw = tuple(int(v) for v in meta["orig_hw"])
        variant, sha = str(meta["variant"]), str(meta["checkpoint_sha256"])
        name = meta.get("family", DEFAULT_FAMILY.name)
        if meta.get("format") != FORMAT or len(orig_hw) != 2:
            raise ValueError(f"format {meta.get('format')!r}, orig_hw {meta['orig_hw']!r}")
        family = FAMILIES.get(name) if isinstance(name, str) else None
        if family is None or meta.get("version") not in (FORMAT_VERSION, family.embedding_version):
            reads = " and ".join(f"{f.embedding_version} ({f.label})" for f in FAMILIES.values())
            raise ValueError(
                f"family {name!r}, format version {meta.get('version')!r}; this sam-onnx reads {reads}"
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


def _check_high_res(family: Family, arrays, device_value) -> tuple[np.ndarray, ...] | None:
    """The family's features after the embedding (SAM 2's two high-res maps), checked; ``()``
    for a family without any (SAM v1); ``None`` while on the device."""
    extra = family.features[1:]
    if not extra:
        if arrays is not None:
            raise InvalidInputError("high_res_feats", f"none for a {family.label} embedding", "two arrays")
        return ()
    wanted = tuple(t.shape for t in extra)
    if arrays is None:
        if device_value is None:
            shapes = ", ".join(" x ".join(map(str, shape)) for shape in wanted)
            wanted_text = f"a {family.label} embedding's {len(extra)} high-res maps ({shapes})"
            raise InvalidInputError("high_res_feats", wanted_text, "none")
        return None
    arrays = tuple(arrays)
    shapes = tuple(getattr(a, "shape", None) for a in arrays)
    if shapes != wanted or any(a.dtype != np.float32 for a in arrays):
        got = ", ".join(f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}" for a in arrays)
        raise InvalidInputError("high_res_feats", f"float32 of shapes {wanted}", got)
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


def feature_paths(npy: Path, family: Family) -> tuple[Path, ...]:
    """The files of an embedding's features in the family's order: ``NAME.npy`` (the embedding),
    then ``NAME.<feature>.npy`` for each further feature (SAM 2's high-res maps)."""
    base = npy.with_suffix("")
    return (npy, *(base.with_name(f"{base.name}.{t.name}.npy") for t in family.features[1:]))


def embedding_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``NAME.npy`` and ``NAME.json`` for ``path`` given as ``NAME`` or ``NAME.npy``."""
    path = Path(path)
    base = path.with_suffix("") if path.suffix == ".npy" else path
    return base.with_name(base.name + ".npy"), base.with_name(base.name + ".json")
