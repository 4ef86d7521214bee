"""One item in, its files out: the per-item step of ``sam-onnx embed`` and ``sam-onnx amg`` (an
item is an image) and of ``sam-onnx track`` over a folder of videos (an item is a video).

The local loops (``sam_onnx.runtime.cli``, :mod:`.local`) and the Ray workers
(:mod:`.distributed`) call the same :meth:`AmgJob.run` / :meth:`EmbedJob.run` / :meth:`TrackJob.run`,
so both engines decode, segment and write identically. A :class:`JobSpec` says what to do
(command, model, outputs) and pickles, so a worker on another machine rebuilds the same job from
it. What an item is, and whether a job takes its encoded bytes or opens its path itself, is data:
one :class:`BatchCommand` per command in :data:`BATCH_COMMANDS`.

Outputs are written through a temporary name and a rename (:mod:`.outputs`), or a video's folder
built aside and swapped in whole (:mod:`sam_onnx.atomic`); a job's outputs exist whole or not at
all, which is what lets a re-run skip finished items (``is_done``).
"""

from __future__ import annotations

import glob
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from sam_onnx.errors import InvalidInputError, SamOnnxError
from sam_onnx.images import DEFAULT_MAX_PIXELS, read_image_bytes

from ..video.track import SUMMARY_FILE, TrackOptions

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# video files a folder of videos is searched for (besides folders of frames); OpenCV decodes them
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
AMG_FORMATS = ("json", "png")


@dataclass(frozen=True)
class BatchCommand:
    """What the items of one batch command are.

    Attributes:
      unit: what one item is, in messages (``image``, ``video``).
      reads_bytes: the job takes the item's encoded file (the Ray engine reads it in a stage of
        its own, from a path or a URI); otherwise the job opens ``item.path`` itself (a video: a
        file OpenCV seeks in, or a folder of frames, on a file system every worker sees).
    """

    unit: str
    reads_bytes: bool


BATCH_COMMANDS = {
    "amg": BatchCommand("image", reads_bytes=True),
    "embed": BatchCommand("image", reads_bytes=True),
    "track": BatchCommand("video", reads_bytes=False),
}
COMMANDS = tuple(BATCH_COMMANDS)


@dataclass(frozen=True)
class Item:
    """One input of a job: an image, or a video (a file or a folder of frames).

    Attributes:
      path: a file or folder path, or a URI (``s3://…``) for the Ray engine.
      name: base name of its outputs: the file's stem (a folder's whole name), or its whole name
        where stems collide.
      index: its position in the job's sorted input list (amg: the SA-1B ``image_id``).
    """

    path: str
    name: str
    index: int

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.path).name


def plan_items(paths: Sequence[str | os.PathLike[str]]) -> list[Item]:
    """Items for ``paths`` in the given order, named and numbered as the local CLI always has."""
    paths = [os.fspath(p) for p in paths]
    stems = [_stem(p) for p in paths]
    return [
        Item(p, stem if stems.count(stem) == 1 else PurePosixPath(p).name, i)
        for i, (p, stem) in enumerate(zip(paths, stems, strict=True))
    ]


def _stem(path: str) -> str:
    """A file's name without its suffix; a local folder's (a video's frames) whole name."""
    pure = PurePosixPath(path)
    return pure.name if "://" not in path and os.path.isdir(path) else pure.stem


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


def find_videos(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The videos of a batch, absolute: a folder's video files (:data:`VIDEO_SUFFIXES`) and
    sub-folders (each a video's frames), sorted, hidden entries left out; a glob's matches of the
    same kinds; a file or folder given by name as it is (a folder given is a folder of videos)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if _is_video(p) and not p.name.startswith("."))
        elif path.exists():
            found.append(path)
        elif glob.has_magic(str(path)):
            found += sorted(Path(p) for p in glob.glob(str(path)) if _is_video(Path(p)))
        else:
            raise InvalidInputError(
                f"videos {str(path)!r}", "a folder of videos, a video file or a glob", "nothing there"
            )
    if not found:
        raise InvalidInputError(
            "videos",
            f"folders of frames or files ending in {', '.join(VIDEO_SUFFIXES)}",
            f"none in {', '.join(map(str, paths))}",
        )
    return [p.resolve() for p in found]


def _is_video(path: Path) -> bool:
    return path.is_dir() or (path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES)


@dataclass(frozen=True)
class JobSpec:
    """What a batch job does; plain values only, so that it pickles to a remote worker.

    Arguments:
      command: ``amg``, ``embed`` or ``track`` (:data:`BATCH_COMMANDS`).
      model_dir: the ``sam-export`` directory (every worker must see it at this path).
      output: the output folder (or, for ``embed`` of one image, ``NAME.npy``); ``track``: one
        folder ``NAME/`` in it per video.
      precision, providers, strict, threads, openvino_precision, max_pixels: how the predictor
        opens (``threads``: onnxruntime intra-op threads, 0 for one per core; see
        :class:`~sam_onnx.runtime.core.session.SessionConfig`).
      fast_decoder: decode through the export's fast decoder pair when it has one (False: the
        official-contract decoders only).
      output_format: ``amg``: ``json`` (SA-1B) or ``png`` (official ``amg.py`` folders).
      overwrite: redo images whose outputs exist (otherwise they are skipped).
      single_file: ``embed`` of one image into ``output`` = ``NAME.npy`` rather than a folder.
      amg_options: :class:`~sam_onnx.runtime.amg.AmgOptions` fields that differ from the defaults.
      track: ``track``'s :class:`~sam_onnx.runtime.video.track.TrackOptions` (where each video's
        prompt file is, and how it is tracked and written).
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
    track: TrackOptions | None = None

    def __post_init__(self) -> None:
        if self.command not in COMMANDS:
            raise InvalidInputError("command", f"one of {COMMANDS}", repr(self.command))
        if self.command == "amg" and self.output_format not in AMG_FORMATS:
            raise InvalidInputError("amg output format", f"one of {AMG_FORMATS}", repr(self.output_format))
        if (self.command == "track") != isinstance(self.track, TrackOptions):
            raise InvalidInputError(
                "track",
                "TrackOptions for the track command, and only for it",
                f"{self.command}, {self.track!r}",
            )

    @classmethod
    def from_args(cls, args, **fields) -> JobSpec:
        """The spec of a command line: its command, the export (``-m`` or ``$SAM_ONNX_MODEL``),
        ``-o`` and the engine flags every batch command has, plus the command's own ``fields``."""
        from ..core.graphs import model_dir_of

        return cls(
            args.command,
            str(model_dir_of(args.model)),
            str(args.output),
            precision=args.precision,
            providers=tuple(p.strip() for p in args.providers.split(",") if p.strip()),
            strict=args.strict,
            threads=args.threads,
            openvino_precision=args.openvino_precision,
            overwrite=args.overwrite,
            **fields,
        )

    @property
    def kind(self) -> BatchCommand:
        return BATCH_COMMANDS[self.command]

    def check_model(self) -> None:
        """Raise :class:`~sam_onnx.errors.ModelLoadError` when the export lacks a graph the job
        opens (in the driver, before any worker starts)."""
        if self.command == "track":
            from ..video.graphs import video_graph_paths

            video_graph_paths(self.model_dir, self.precision)
        else:
            from ..core.graphs import export_graph_paths

            export_graph_paths(self.model_dir, self.precision)

    def read(self, item: Item) -> bytes | None:
        """What the job's :meth:`run` takes for a local ``item``: its bytes, or None (it opens the path)."""
        return Path(item.path).read_bytes() if self.kind.reads_bytes else None

    def targets(self, item: Item) -> list[Path]:
        """The files whose presence means ``item`` is finished."""
        out = Path(self.output)
        if self.command == "track":  # the folder is swapped in whole, the overlay inside it
            files = [SUMMARY_FILE] + ([self.track.overlay] if self.track.overlay else [])
            return [out / item.name / file for file in files]
        if self.command == "embed":
            base = out.with_suffix("") if self.single_file else out / item.name
            return [base.with_name(base.name + ".npy"), base.with_name(base.name + ".json")]
        if self.output_format == "json":
            return [out / f"{item.name}.json", out / f"{item.name}_overlay.png"]
        return [out / item.name / "metadata.csv", out / f"{item.name}_overlay.png"]

    def is_done(self, item: Item) -> bool:
        """True when ``item``'s outputs all exist and ``overwrite`` is off (a re-run skips it)."""
        return not self.overwrite and all(p.is_file() for p in self.targets(item))


class Written(NamedTuple):
    """What :meth:`run` wrote for one item: the number of masks (0 for embed; track: one per object
    and written frame) and a one-line summary."""

    masks: int
    summary: str


def open_job(spec: JobSpec) -> AmgJob | EmbedJob | TrackJob:
    """Open the predictor once and return the job that runs ``spec`` on one item at a time."""
    from ..core.predictor import SamPredictor
    from ..core.session import SessionConfig

    config = SessionConfig(
        providers=spec.providers,
        strict=spec.strict,
        intra_op_threads=spec.threads,
        openvino_precision=spec.openvino_precision,
    )
    if spec.command == "track":
        return TrackJob.open(spec, config)
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

    def run(self, item: Item, data: bytes) -> Written:
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

    def run(self, item: Item, data: bytes) -> Written:
        """Decode ``data``, generate the masks and write them; raises typed errors."""
        from sam_onnx.progress import plural

        from ..amg.generator import describe_filters
        from .outputs import amg_overlay_image, save_amg_folder, save_amg_json, write_png

        image = decode(item, data, self.predictor.max_pixels)
        anns = self.generator.generate(image)
        result, overlay = self.spec.targets(item)
        if self.spec.output_format == "json":
            info = {"image_id": item.index, "width": image.shape[1], "height": image.shape[0]}
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


class TrackJob:
    """``sam-onnx track`` of one video of a folder: its prompt file (``spec.track.prompt_file``)
    tracked by :func:`~sam_onnx.runtime.video.track.track_video` into ``OUT/NAME/`` (the frames,
    ``track.json`` and the overlay when asked), built aside and swapped in whole."""

    def __init__(self, spec: JobSpec, predictor) -> None:
        self.spec, self.predictor = spec, predictor

    @classmethod
    def open(cls, spec: JobSpec, config) -> TrackJob:
        from ..video.predictor import VideoPredictor

        predictor = VideoPredictor.from_export(
            spec.model_dir,
            session_config=config,
            precision=spec.precision,
            fill_hole_area=spec.track.fill_hole_area,
            non_overlap_masks=spec.track.non_overlap_masks,
        )
        return cls(spec, predictor)

    def run(self, item: Item, data: bytes | None = None) -> Written:
        """Track the video at ``item.path`` (``data`` is not read); raises typed errors."""
        from sam_onnx.progress import plural

        from ..video.track import load_prompt_file, track_video

        options = self.spec.track
        prompts = load_prompt_file(options.prompt_file(item.name))
        folder = self.spec.targets(item)[0].parent
        if folder.exists() and not (folder / SUMMARY_FILE).is_file():  # replace only our own
            raise InvalidInputError(
                f"output folder {str(folder)!r}",
                f"an earlier track result (with {SUMMARY_FILE})",
                "other files",
            )
        summary = track_video(
            self.predictor,
            item.path,
            prompts,
            folder,
            overwrite=True,
            folder_overlay=options.overlay,
            **options.tracking(),
        )
        frames = plural(len(summary.frames), "frame")
        return Written(
            len(summary.frames) * len(summary.obj_ids), f"{frames}, objects {summary.obj_ids} -> {folder}"
        )


def decode(item: Item, data: bytes, max_pixels: int | None):
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
class Record:
    """How one item of a job ended: ``status`` ``done``, ``skipped`` or ``failed``; ``error`` is
    the typed error (class and message) of a failure, ``seconds`` the time spent on it."""

    path: str
    name: str
    status: str
    masks: int = 0
    seconds: float = 0.0
    error: str = ""


def process_item(job: AmgJob | EmbedJob | TrackJob, item: Item, data: bytes | None) -> Record:
    """:meth:`run` on one item, as a record: an item that cannot be decoded or processed (a typed
    error, or an I/O error writing its outputs) is a ``failed`` record, not an exception."""
    start = time.perf_counter()
    try:
        written = job.run(item, data)
    except (SamOnnxError, OSError) as exc:
        seconds = time.perf_counter() - start
        return Record(item.path, item.name, "failed", 0, seconds, f"{type(exc).__name__}: {exc}")
    return Record(item.path, item.name, "done", written.masks, time.perf_counter() - start)


@dataclass
class JobSummary:
    """Counts of a finished job, on either engine; ``failures`` holds the failed items' records."""

    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    masks: int = 0
    seconds: float = 0.0
    workers: int = 0
    threads_per_worker: int = 0
    unit: str = "image"
    failures: list[Record] = field(default_factory=list)

    @property
    def per_minute(self) -> float:
        return 60.0 * self.done / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.total} {self.unit}(s): {self.done} done, {self.failed} failed, {self.skipped} skipped, "
            f"{self.masks} masks; {self.seconds:.1f} s, {self.per_minute:.1f} {self.unit}s/min "
            f"({self.workers} worker(s) x {self.threads_per_worker} thread(s))"
        )

    def count(self, record: Record) -> None:
        if record.status == "done":
            self.done += 1
            self.masks += int(record.masks)
        else:
            self.failed += 1
            self.failures.append(record)

    def report(self, log) -> int:
        """Print each failure (stderr) and, through ``log``, the summary line; the exit status
        (0, or 1 when an item failed)."""
        for record in self.failures:
            print(f"sam-onnx: error: {record.path}: {record.error}", file=sys.stderr)
        log(self.line())
        if self.failed:
            print(f"sam-onnx: {self.failed} of {self.total} {self.unit}(s) failed", file=sys.stderr)
        return 1 if self.failed else 0
