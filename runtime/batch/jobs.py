"""One image in, its files out: the per-image step of ``sam-onnx embed`` and ``sam-onnx amg``.

The local loop (``sam_onnx.runtime.cli``) and the Ray workers (``sam_onnx.runtime.batch.distributed``)
call the same :meth:`AmgJob.run` / :meth:`EmbedJob.run` on an image's encoded bytes, so both
engines decode, segment and write identically. A :class:`JobSpec` says what to do (command,
model, outputs) and pickles, so a worker on another machine rebuilds the same job from it.

Outputs are written through a temporary name and a rename (:mod:`.outputs`); a job's outputs
exist whole or not at all, which is what lets a re-run skip finished images (``is_done``).
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from sam_onnx.errors import InvalidInputError, SamOnnxError
from sam_onnx.images import DEFAULT_MAX_PIXELS, read_image_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
COMMANDS = ("amg", "embed")
AMG_FORMATS = ("json", "png")


@dataclass(frozen=True)
class ImageItem:
    """One input image of a job.

    Attributes:
      path: a file path, or a URI (``s3://…``) for the Ray engine.
      name: base name of its outputs: the file's stem, or its whole name where stems collide.
      image_id: its position in the job's sorted input list (the SA-1B ``image_id``).
    """

    path: str
    name: str
    image_id: int

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.path).name


def plan_items(paths: Sequence[str | os.PathLike[str]]) -> list[ImageItem]:
    """Items for ``paths`` in the given order, named and numbered as the local CLI always has."""
    paths = [os.fspath(p) for p in paths]
    stems = [PurePosixPath(p).stem for p in paths]
    return [
        ImageItem(p, stem if stems.count(stem) == 1 else PurePosixPath(p).name, i)
        for i, (p, stem) in enumerate(zip(paths, stems, strict=True))
    ]


def find_images(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand folders into their image files (sorted, not recursive) and globs (``photos/*.jpg``,
    sorted) into the files they match; files are kept as given."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.exists():
            found.append(path)
        elif glob.has_magic(str(path)):
            found += sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
        else:
            raise InvalidInputError(
                f"image {str(path)!r}", "an image file, a folder or a glob", "nothing there"
            )
    if not found:
        raise InvalidInputError(
            "images", f"files ending in {', '.join(IMAGE_SUFFIXES)}", f"none in {', '.join(map(str, paths))}"
        )
    return found


@dataclass(frozen=True)
class JobSpec:
    """What a batch job does; plain values only, so that it pickles to a remote worker.

    Arguments:
      command: ``amg`` or ``embed``.
      model_dir: the ``sam-export`` directory (every worker must see it at this path).
      output: the output folder (or, for ``embed`` of one image, ``NAME.npy``).
      precision, providers, strict, threads, openvino_precision, max_pixels: how the predictor
        opens (``threads``: onnxruntime intra-op threads, 0 for one per core; see
        :class:`~sam_onnx.runtime.core.session.SessionConfig`).
      fast_decoder: decode through the export's fast decoder pair when it has one (False: the
        official-contract decoders only).
      output_format: ``amg``: ``json`` (SA-1B) or ``png`` (official ``amg.py`` folders).
      overwrite: redo images whose outputs exist (otherwise they are skipped).
      single_file: ``embed`` of one image into ``output`` = ``NAME.npy`` rather than a folder.
      amg_options: :class:`~sam_onnx.runtime.amg.AmgOptions` fields that differ from the defaults.
    """

    command: str
    model_dir: str
    output: str
    precision: str = "fp32"
    providers: tuple[str, ...] = ("auto",)
    strict: bool = False
    threads: int = 0
    openvino_precision: str = "auto"
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    fast_decoder: bool = True
    output_format: str = "json"
    overwrite: bool = False
    single_file: bool = False
    amg_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.command not in COMMANDS:
            raise InvalidInputError("command", f"one of {COMMANDS}", repr(self.command))
        if self.command == "amg" and self.output_format not in AMG_FORMATS:
            raise InvalidInputError("amg output format", f"one of {AMG_FORMATS}", repr(self.output_format))

    def targets(self, item: ImageItem) -> list[Path]:
        """The files whose presence means ``item`` is finished."""
        out = Path(self.output)
        if self.command == "embed":
            base = out.with_suffix("") if self.single_file else out / item.name
            return [base.with_name(base.name + ".npy"), base.with_name(base.name + ".json")]
        if self.output_format == "json":
            return [out / f"{item.name}.json", out / f"{item.name}_overlay.png"]
        return [out / item.name / "metadata.csv", out / f"{item.name}_overlay.png"]

    def is_done(self, item: ImageItem) -> bool:
        """True when ``item``'s outputs all exist and ``overwrite`` is off (a re-run skips it)."""
        return not self.overwrite and all(p.is_file() for p in self.targets(item))


class Written(NamedTuple):
    """What :meth:`run` wrote for one image: the number of masks (0 for embed) and a one-line summary."""

    masks: int
    summary: str


def open_job(spec: JobSpec) -> AmgJob | EmbedJob:
    """Open the predictor once and return the job that runs ``spec`` on one image at a time."""
    from ..core.predictor import SamPredictor
    from ..core.session import SessionConfig

    config = SessionConfig(
        providers=spec.providers,
        strict=spec.strict,
        intra_op_threads=spec.threads,
        openvino_precision=spec.openvino_precision,
    )
    predictor = SamPredictor.from_export(
        spec.model_dir,
        precision=spec.precision,
        config=config,
        max_pixels=spec.max_pixels,
        use_fast_decoder=spec.fast_decoder,
    )
    return (AmgJob if spec.command == "amg" else EmbedJob)(spec, predictor)


class EmbedJob:
    """``NAME.npy`` + ``NAME.json`` (an :class:`~sam_onnx.runtime.ImageEmbedding`) per image."""

    def __init__(self, spec: JobSpec, predictor) -> None:
        self.spec, self.predictor = spec, predictor

    def run(self, item: ImageItem, data: bytes) -> Written:
        """Decode ``data`` (the encoded file), embed it and save; raises typed errors."""
        rgb = decode(item, data, self.predictor.max_pixels)
        emb = self.predictor.embed(rgb)
        npy, _ = emb.save(self.spec.targets(item)[0], image=item.file_name)
        return Written(0, f"{emb.orig_hw[1]}x{emb.orig_hw[0]} (WxH) -> {npy}")


class AmgJob:
    """Automatic mask generation per image: ``NAME.json`` (SA-1B, COCO RLE) or ``NAME/`` (PNGs and
    ``metadata.csv``), and ``NAME_overlay.png``."""

    def __init__(self, spec: JobSpec, predictor) -> None:
        from ..amg.generator import AmgOptions, AutomaticMaskGenerator

        self.spec, self.predictor = spec, predictor
        options = AmgOptions(**spec.amg_options, output_mode="uncompressed_rle")
        self.generator = AutomaticMaskGenerator(predictor, options)

    def run(self, item: ImageItem, data: bytes) -> Written:
        """Decode ``data``, generate the masks and write them; raises typed errors."""
        from sam_onnx.progress import plural

        from ..amg.generator import describe_filters
        from .outputs import amg_overlay_image, save_amg_folder, save_amg_json, write_png

        image = decode(item, data, self.predictor.max_pixels)
        anns = self.generator.generate(image)
        result, overlay = self.spec.targets(item)
        if self.spec.output_format == "json":
            info = {"image_id": item.image_id, "width": image.shape[1], "height": image.shape[0]}
            model = {"family": self.predictor.family, "variant": self.predictor.variant}
            save_amg_json(result, anns, {**info, "file_name": item.file_name}, model)
        else:
            result = result.parent
            remove_previous_folder(result)
            save_amg_folder(result, anns)
        write_png(amg_overlay_image(image, [a["segmentation"] for a in anns]), overlay)
        summary = f"{plural(len(anns), 'mask')} -> {result}"
        if not anns:  # say which filters took them all, with their thresholds
            counts, options = self.generator.filter_counts, self.generator.options
            summary += f" (none kept: {describe_filters(counts, options)})"
        return Written(len(anns), summary)


def decode(item: ImageItem, data: bytes, max_pixels: int | None):
    """``data`` (an encoded image file) -> ``H x W x 3`` uint8 RGB, EXIF orientation applied."""
    return read_image_bytes(data, f"image file {item.path!r}", max_pixels=max_pixels)


def remove_previous_folder(folder: Path) -> None:
    """Clear an earlier ``amg --format png`` result (only its own N.png and metadata.csv)."""
    if not folder.exists():
        return
    ours = {"metadata.csv"} | {f"{i}.png" for i in range(len(list(folder.iterdir())))}
    foreign = [p.name for p in folder.iterdir() if p.name not in ours]
    if foreign:
        raise InvalidInputError(
            f"output folder {str(folder)!r}",
            "an earlier amg result (N.png and metadata.csv)",
            f"also {foreign[:3]}",
        )
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()


@dataclass(frozen=True)
class ImageRecord:
    """How one image of a job ended: ``status`` ``done``, ``skipped`` or ``failed``; ``error`` is
    the typed error (class and message) of a failure, ``seconds`` the time spent on it."""

    path: str
    name: str
    status: str
    masks: int = 0
    seconds: float = 0.0
    error: str = ""


def process_image(job: AmgJob | EmbedJob, item: ImageItem, data: bytes) -> ImageRecord:
    """:meth:`run` on one image, as a record: an image that cannot be decoded or processed
    (a typed error, or an I/O error writing its outputs) is a ``failed`` record, not an exception."""
    start = time.perf_counter()
    try:
        written = job.run(item, data)
    except (SamOnnxError, OSError) as exc:
        seconds = time.perf_counter() - start
        return ImageRecord(item.path, item.name, "failed", 0, seconds, f"{type(exc).__name__}: {exc}")
    return ImageRecord(item.path, item.name, "done", written.masks, time.perf_counter() - start)
