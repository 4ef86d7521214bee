"""``sam-onnx track``: the command line over :func:`.track.track_video` (parser and runner).

    sam-onnx track VIDEO -m MODEL_DIR -o OUT_DIR [--point F:OBJ:X,Y[,LABEL]]... [--box F:OBJ:X0,Y0,X1,Y1]...
        [--mask F:OBJ:MASK.png]... [--prompts PROMPTS.json] [--direction forward|backward|both]
        [--start-frame F] [--max-frames N] [--format png|coco] [--overlay OUT.mp4] [--overwrite] [-q]

    sam-onnx track VIDEOS -m MODEL_DIR -o OUT_DIR --prompts PROMPTS_DIR|'PATTERN{name}.json'
        [--engine local|ray] [--address ADDR] [--workers N] [--threads-per-worker T] [options above]

``VIDEO``: a folder of ``<index>.jpg`` frames (read as the official loader reads them) or a video
file OpenCV opens. Coordinates are the video's pixels (x, y).

A folder of videos: ``--prompts`` names a folder (video ``NAME``'s prompts are ``NAME.json`` in it)
or a pattern with ``{name}``; ``VIDEOS`` is a folder whose video files and sub-folders of frames
are the videos (or a glob). Each video is tracked into ``OUT_DIR/NAME/`` as one video is, as a
batch job (:mod:`sam_onnx.runtime.batch`): here one after another, or on Ray Data with
``--engine ray``; finished videos are skipped, failures reported with the video and the error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from sam_onnx.errors import InvalidInputError, SamOnnxError

from .track import (
    DIRECTIONS,
    OUTPUT_FORMATS,
    FramePrompt,
    TrackOptions,
    is_prompt_folder,
    load_prompt_file,
    track_video,
)

ENGINE_FLAGS = ("engine", "address", "workers", "threads_per_worker")


def add_track_command(
    commands,
    model_options: Callable[[argparse.ArgumentParser], None],
    engine_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    track = commands.add_parser("track", help="SAM 2: track objects through a video: a mask per frame")
    track.add_argument(
        "video",
        metavar="VIDEO",
        help="a folder of <index>.jpg frames or a video file; with --prompts DIR: a folder of videos",
    )
    model_options(track)
    track.add_argument("-o", "--output", type=Path, required=True, help="output folder (one file per frame)")
    track.add_argument(
        "--point",
        type=_point,
        action="append",
        default=[],
        metavar="F:OBJ:X,Y[,LABEL]",
        help="a click on frame F for object OBJ (an integer >= 1); LABEL 1 positive (default) or 0",
    )
    track.add_argument(
        "--box", type=_box, action="append", default=[], metavar="F:OBJ:X0,Y0,X1,Y1", help="a box"
    )
    track.add_argument(
        "--mask",
        type=_mask,
        action="append",
        default=[],
        metavar="F:OBJ:MASK.png",
        help="a mask (nonzero = object)",
    )
    track.add_argument(
        "--prompts",
        type=Path,
        metavar="PROMPTS.json",
        help="prompts in a JSON file (docs/VIDEO.md); a folder of NAME.json (or a pattern with {name}) "
        "tracks each video of the folder VIDEO",
    )
    track.add_argument(
        "--direction", choices=DIRECTIONS, default="forward", help="from the start frame (default forward)"
    )
    track.add_argument("--start-frame", type=int, help="default: the earliest prompted frame")
    track.add_argument("--max-frames", type=int, help="frames to track past the start (default: to the end)")
    track.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default="png",
        help="png: indexed PNGs, pixel = object id (DAVIS, default); coco: a JSON of COCO RLEs per frame",
    )
    track.add_argument(
        "--overlay",
        type=Path,
        metavar="OUT.mp4",
        help="also write the frames with the masks tinted in (a folder of videos: a file name, "
        "written in each video's folder)",
    )
    track.add_argument(
        "--no-fill-holes", action="store_true", help="skip hole filling (official fill_hole_area=8)"
    )
    track.add_argument(
        "--non-overlap", action="store_true", help="one object per pixel (official non_overlap_masks)"
    )
    track.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output folder (a folder of videos: redo the videos done before)",
    )
    engine_options(track)


def run_track(args, log: Callable[[str], None], progress: bool | None) -> int:
    from ..core.graphs import model_dir_of
    from ..core.session import SessionConfig
    from .predictor import VideoPredictor

    if args.prompts is not None and is_prompt_folder(args.prompts):
        return run_track_folder(args, log, progress)
    given = [flag for flag in ENGINE_FLAGS if getattr(args, flag) not in (None, "local")]
    if given:
        args.command_parser.error(
            f"--{given[0].replace('_', '-')} needs a folder of videos (--prompts PROMPTS_DIR)"
        )
    try:
        prompts = [*args.point, *args.box, *args.mask]
        if args.prompts is not None:
            prompts += load_prompt_file(args.prompts)
        if not prompts:
            raise InvalidInputError("prompts", "at least one --point, --box, --mask or --prompts", "none")
        config = SessionConfig(
            providers=tuple(p.strip() for p in args.providers.split(",") if p.strip()),
            strict=args.strict,
            intra_op_threads=args.threads,
            openvino_precision=args.openvino_precision,
        )
        predictor = VideoPredictor.from_export(
            model_dir_of(args.model),
            session_config=config,
            precision=args.precision,
            fill_hole_area=0 if args.no_fill_holes else 8,
            non_overlap_masks=args.non_overlap,
        )
        summary = track_video(
            predictor,
            args.video,
            prompts,
            args.output,
            output_format=args.format,
            direction=args.direction,
            start_frame=args.start_frame,
            max_frames=args.max_frames,
            overlay=args.overlay,
            overwrite=args.overwrite,
            progress=progress,
            log=log,
        )
    except SamOnnxError as exc:
        print(f"sam-onnx: error: {exc}", file=sys.stderr)
        return 2
    log(
        f"{len(summary.frames)} frames, objects {summary.obj_ids}, {summary.seconds:.1f} s "
        f"({summary.frames_per_second:.2f} frames/s) -> {args.output}"
        + (f", {args.overlay}" if args.overlay else "")
    )
    return 0


def run_track_folder(args, log: Callable[[str], None], progress: bool | None) -> int:
    """Each video of the folder ``args.video`` with its own prompt file, on the engine asked."""
    from ..batch.jobs import JobSpec, find_videos

    inline = [flag for flag in ("point", "box", "mask") if getattr(args, flag)]
    if inline:
        args.command_parser.error(
            f"--{inline[0]} goes with one video; a folder's prompts come from --prompts"
        )
    if args.engine == "local" and any(getattr(args, f) is not None for f in ENGINE_FLAGS[1:]):
        args.command_parser.error("--address, --workers and --threads-per-worker need --engine ray")
    try:
        options = TrackOptions(
            str(args.prompts),
            output_format=args.format,
            direction=args.direction,
            start_frame=args.start_frame,
            max_frames=args.max_frames,
            overlay=None if args.overlay is None else str(args.overlay),
            fill_hole_area=0 if args.no_fill_holes else 8,
            non_overlap_masks=args.non_overlap,
        )
        spec = JobSpec.from_args(args, track=options)
        output = args.output.resolve()
        videos = [str(v) for v in find_videos([args.video]) if v != output]  # not the output itself
        summary = _run_engine(args, spec, videos, log, progress)
    except SamOnnxError as exc:
        print(f"sam-onnx: error: {exc}", file=sys.stderr)
        return 2
    return summary.report(log)


def _run_engine(args, spec, videos: list[str], log, progress):
    if args.engine == "ray":
        from ..batch.distributed import RayOptions, run_job

        options = RayOptions(args.address, args.workers, args.threads_per_worker)
        return run_job(spec, videos, options, log=log)
    from ..batch.local import run_local

    return run_local(spec, videos, log=log, progress=progress)


def _split(text: str, what: str) -> tuple[int, int, str]:
    parts = text.split(":", 2)
    try:
        frame, obj = int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(
            f"expected F:OBJ:{what} (frame and object as integers), got {text!r}"
        ) from None
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected F:OBJ:{what}, got {text!r}")
    return frame, obj, parts[2]


def _numbers(text: str, counts: tuple[int, ...], what: str, whole: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in counts:
        raise argparse.ArgumentTypeError(f"expected {what}, got {whole!r}")
    return values


def _prompt(make: Callable[[], FramePrompt]) -> FramePrompt:
    try:
        return make()
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _point(text: str) -> FramePrompt:
    frame, obj, rest = _split(text, "X,Y[,LABEL]")
    values = _numbers(rest, (2, 3), "F:OBJ:X,Y or F:OBJ:X,Y,LABEL", text)
    label = values[2] if len(values) == 3 else 1
    if label not in (0, 1):
        raise argparse.ArgumentTypeError(f"LABEL must be 1 (positive) or 0 (negative), got {text!r}")
    return _prompt(lambda: FramePrompt(frame, obj, ((values[0], values[1]),), (int(label),)))


def _box(text: str) -> FramePrompt:
    frame, obj, rest = _split(text, "X0,Y0,X1,Y1")
    x0, y0, x1, y1 = _numbers(rest, (4,), "F:OBJ:X0,Y0,X1,Y1", text)
    return _prompt(lambda: FramePrompt(frame, obj, box=(x0, y0, x1, y1)))


def _mask(text: str) -> FramePrompt:
    frame, obj, rest = _split(text, "MASK.png")
    return _prompt(lambda: FramePrompt(frame, obj, mask=Path(rest)))
