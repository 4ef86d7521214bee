"""``sam-onnx track``'s work, as library functions: prompts on frames in, per-frame masks out.

A :class:`FramePrompt` is what one ``add_new_points_or_box`` / ``add_new_mask`` call of
:class:`~.predictor.VideoPredictor` takes: a frame, an object id, clicks (x, y) in original
pixels with labels (1 positive, 0 negative) and/or a box (x0, y0, x1, y1), or a mask PNG.
:func:`track_video` gives them to the predictor in order, propagates (forward, backward or both
ways from the start frame) and writes every yielded frame:

- ``png``: ``OUT/<frame:05d>.png``, DAVIS style: an indexed (palette) PNG of the video's size whose
  pixel values are the object ids (0 background); where objects overlap, the highest logit wins;
- ``coco``: ``OUT/<frame:05d>.json``: ``{"frame", "objects": [{"obj_id", "segmentation"
  (COCO RLE), "area", "bbox" (x, y, w, h)}]}``;

and ``OUT/track.json`` (the video, the frames written, the object ids, the prompts, timings). The
folder is built beside ``OUT`` and swapped in whole at the end (:mod:`sam_onnx.atomic`): a run
that fails or is stopped leaves no partial ``OUT``. ``overlay``: an MP4 of the frames with the
masks tinted in, written the same way (a temporary name, then a rename).

A folder of videos, one prompt file each (``sam-onnx track VIDEOS/ --prompts PROMPTS/``), runs as a
batch job (:mod:`sam_onnx.runtime.batch`, local or on Ray): :class:`TrackOptions` says where each
video's prompt file is and how every video is tracked; each video gets ``OUT/NAME/``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from sam_onnx.atomic import make_staging, swap_in, sweep_stale
from sam_onnx.errors import InvalidInputError
from sam_onnx.progress import bar as progress_bar

from ..amg.masks import masks_to_boxes
from ..amg.rle import coco_encode, masks_to_rle, rle_area

OUTPUT_FORMATS = ("png", "coco")
DIRECTIONS = ("forward", "backward", "both")
STAGING_MARK = ".track-"
SUMMARY_FILE = "track.json"
OVERLAY_ALPHA = 0.5


@dataclass(frozen=True)
class FramePrompt:
    """One prompt of one object on one frame (original-image pixels).

    Attributes:
      frame: frame index (0-based). obj_id: a positive int (``png`` output: at most 255).
      points: ``N x 2`` (x, y) clicks, or empty. labels: ``N`` (1 positive, 0 negative).
      box: (x0, y0, x1, y1), or None. mask: a PNG (nonzero = object) of the video's size, or None;
        a mask excludes points and box.
    """

    frame: int
    obj_id: int
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None
    mask: Path | None = None

    def __post_init__(self) -> None:
        where = f"prompt on frame {self.frame} for object {self.obj_id}"
        if isinstance(self.frame, bool) or not isinstance(self.frame, int) or self.frame < 0:
            raise InvalidInputError(f"{where}: frame", "an index >= 0", repr(self.frame))
        if isinstance(self.obj_id, bool) or not isinstance(self.obj_id, int) or self.obj_id < 1:
            raise InvalidInputError(f"{where}: obj_id", "an integer >= 1", repr(self.obj_id))
        if len(self.points) != len(self.labels):
            raise InvalidInputError(
                f"{where}: labels", f"one per point ({len(self.points)})", f"{len(self.labels)} labels"
            )
        if self.mask is not None and (self.points or self.box is not None):
            raise InvalidInputError(where, "a mask, or points and/or a box", "a mask with points or a box")
        if self.mask is None and not self.points and self.box is None:
            raise InvalidInputError(where, "points, a box or a mask", "none of them")


def merge_prompts(prompts: Iterable[FramePrompt]) -> list[FramePrompt]:
    """Prompts of the same frame and object joined into one call (points in the order given, one
    box at most), in the order each (frame, object) first appears."""
    merged: dict[tuple[int, int], FramePrompt] = {}
    for p in prompts:
        key = (p.frame, p.obj_id)
        old = merged.get(key)
        if old is None:
            merged[key] = p
            continue
        if p.mask is not None or old.mask is not None:
            raise InvalidInputError(
                f"prompts on frame {p.frame} for object {p.obj_id}",
                "one mask, or points and a box",
                "a mask and more",
            )
        if p.box is not None and old.box is not None:
            raise InvalidInputError(
                f"prompts on frame {p.frame} for object {p.obj_id}", "one box at most", "two boxes"
            )
        merged[key] = FramePrompt(
            p.frame,
            p.obj_id,
            old.points + p.points,
            old.labels + p.labels,
            old.box if p.box is None else p.box,
        )
    return list(merged.values())


def load_prompt_file(path: str | os.PathLike[str]) -> list[FramePrompt]:
    """Prompts from a JSON file: a list of ``{"frame": F, "obj_id": ID, "points": [[x, y], ...],
    "labels": [1, ...], "box": [x0, y0, x1, y1], "mask": "file.png"}`` (each key but frame and
    obj_id optional; a mask path is taken relative to the file)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"prompt file {str(path)!r}", "a readable JSON file", str(exc)) from None
    if not isinstance(data, list) or not data:
        raise InvalidInputError(
            f"prompt file {str(path)!r}", "a non-empty JSON list of prompts", type(data).__name__
        )
    out = []
    for i, item in enumerate(data):
        where = f"prompt file {str(path)!r}, item {i}"
        if not isinstance(item, dict) or not {"frame", "obj_id"} <= item.keys():
            raise InvalidInputError(where, 'an object with "frame" and "obj_id"', repr(item)[:80])
        unknown = set(item) - {"frame", "obj_id", "points", "labels", "box", "mask"}
        if unknown:
            raise InvalidInputError(
                where, "keys frame, obj_id, points, labels, box, mask", f"{sorted(unknown)}"
            )
        try:
            points = tuple((float(x), float(y)) for x, y in item.get("points", []))
            labels = tuple(int(v) for v in item.get("labels", [1] * len(points)))
            box = item.get("box")
            box = None if box is None else tuple(float(v) for v in box)
        except (TypeError, ValueError):
            raise InvalidInputError(
                where, "points [[x, y], ...], labels [0|1, ...], box [x0, y0, x1, y1]", repr(item)[:80]
            ) from None
        if box is not None and len(box) != 4:
            raise InvalidInputError(f"{where}: box", "four numbers x0, y0, x1, y1", f"{len(box)} numbers")
        mask = item.get("mask")
        out.append(
            FramePrompt(
                item["frame"],
                item["obj_id"],
                points,
                labels,
                box,
                None if mask is None else path.parent / mask,
            )
        )
    return out


@dataclass(frozen=True)
class TrackOptions:
    """How each video of a folder is tracked (plain values: it pickles to a Ray worker).

    Attributes:
      prompts: where video ``NAME``'s prompt file (:func:`load_prompt_file`) is: a folder holding
        ``NAME.json``, or a pattern in which ``{name}`` stands for the name (``clips/{name}.json``).
      output_format, direction, start_frame, max_frames: as :func:`track_video` takes them.
      overlay: a file name (``overlay.mp4``) for an overlay video inside each video's folder, or None.
      fill_hole_area, non_overlap_masks: the predictor's (:class:`~.predictor.VideoPredictor`).
    """

    prompts: str
    output_format: str = "png"
    direction: str = "forward"
    start_frame: int | None = None
    max_frames: int | None = None
    overlay: str | None = None
    fill_hole_area: int = 8
    non_overlap_masks: bool = False

    def __post_init__(self) -> None:
        _check_choices(self.output_format, self.direction)
        if not (is_prompt_folder(self.prompts) or PROMPT_NAME in self.prompts):
            raise InvalidInputError(
                f"prompts {self.prompts!r}",
                f"a folder of NAME.json prompt files, or a pattern with {PROMPT_NAME} (p/{PROMPT_NAME}.json)",
                "neither",
            )
        if self.overlay is not None and (
            Path(self.overlay).name != self.overlay or not _is_mp4(self.overlay)
        ):
            raise InvalidInputError(
                f"overlay {self.overlay!r}",
                "a file name ending in .mp4 (written in each video's folder)",
                "a path",
            )

    def prompt_file(self, name: str) -> Path:
        """Video ``name``'s prompt file."""
        if PROMPT_NAME in self.prompts:
            return Path(self.prompts.replace(PROMPT_NAME, name))
        return Path(self.prompts) / f"{name}.json"

    def tracking(self) -> dict:
        """:func:`track_video`'s keyword arguments for how to track and write."""
        keys = ("output_format", "direction", "start_frame", "max_frames")
        return {key: getattr(self, key) for key in keys}


PROMPT_NAME = "{name}"


def is_prompt_folder(prompts: str | os.PathLike[str]) -> bool:
    """Whether ``prompts`` names prompt files per video (a folder, or a ``{name}`` pattern)
    rather than one prompt file."""
    return Path(prompts).is_dir() or PROMPT_NAME in os.fspath(prompts)


def _check_choices(output_format: str, direction: str) -> None:
    if output_format not in OUTPUT_FORMATS:
        raise InvalidInputError("output format", " or ".join(OUTPUT_FORMATS), repr(output_format))
    if direction not in DIRECTIONS:
        raise InvalidInputError("direction", ", ".join(DIRECTIONS), repr(direction))


def _is_mp4(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() == ".mp4"


@dataclass
class TrackSummary:
    """What :func:`track_video` did: frames written (in the order yielded), object ids, seconds."""

    frames: list[int] = field(default_factory=list)
    obj_ids: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def frames_per_second(self) -> float:
        return len(self.frames) / self.seconds if self.seconds > 0 else 0.0


def track_video(
    predictor,
    video,
    prompts: Sequence[FramePrompt],
    output: str | os.PathLike[str],
    *,
    output_format: str = "png",
    direction: str = "forward",
    start_frame: int | None = None,
    max_frames: int | None = None,
    overlay: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    folder_overlay: str | None = None,
    progress: bool | None = False,
    log: Callable[[str], None] = lambda msg: None,
) -> TrackSummary:
    """Track ``prompts`` through ``video`` (what :meth:`VideoPredictor.init_state` takes) and
    write the frames to the folder ``output`` (see the module's docstring).

    ``direction``: ``forward`` (the official default), ``backward`` (``reverse=True``) or
    ``both`` (forward, then backward, from the start frame). ``start_frame``: default the earliest
    prompted frame. ``max_frames``: frames to track past the start (default: to the clip's end).
    ``output`` must not exist unless ``overwrite``; it is replaced whole at the end.
    ``folder_overlay``: a file name; the overlay is written inside ``output`` before it is swapped
    in (a folder of videos: each video's folder whole, overlay included).
    """
    _check_choices(output_format, direction)
    prompts = merge_prompts(prompts)
    if not prompts:
        raise InvalidInputError("prompts", "at least one point, box or mask", "none")
    if output_format == "png":
        too_big = [p.obj_id for p in prompts if p.obj_id > 255]
        if too_big:
            raise InvalidInputError(
                "obj_id", "at most 255 for indexed PNGs (or --format coco)", str(too_big[0])
            )
    out = Path(output)
    if out.exists() and not overwrite:
        raise InvalidInputError(
            f"output {str(out)!r}", "a path that does not exist yet (or --overwrite)", "it exists"
        )
    if overlay is not None and not _is_mp4(overlay):
        raise InvalidInputError(
            f"overlay {str(overlay)!r}", "a file name ending in .mp4", Path(overlay).suffix or "no suffix"
        )
    masks = [(p, _read_mask(p.mask)) for p in prompts if p.mask is not None]
    start = time.perf_counter()
    state = predictor.init_state(video)
    for p in prompts:
        if p.mask is not None:
            mask = next(m for q, m in masks if q is p)
            predictor.add_new_mask(state, p.frame, p.obj_id, mask)
        else:
            predictor.add_new_points_or_box(
                state,
                p.frame,
                p.obj_id,
                points=np.asarray(p.points, np.float32).reshape(-1, 2) if p.points else None,
                labels=np.asarray(p.labels, np.int32) if p.points else None,
                box=None if p.box is None else np.asarray(p.box, np.float32),
            )
    size = f"{state.video_width} x {state.video_height}"
    log(f"{state.num_frames} frames of {size}, objects {list(state.obj_ids)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(out, STAGING_MARK)
    staging = make_staging(out, STAGING_MARK)
    summary = TrackSummary(obj_ids=list(state.obj_ids))
    try:
        passes = _passes(predictor, state, direction, start_frame, max_frames)
        total = _expected_frames(state.num_frames, prompts, direction, start_frame, max_frames)
        with progress_bar(total=total, desc="frames", unit="frame", progress=progress) as bar:
            for frame_idx, obj_ids, logits in passes:
                _write_frame(staging, output_format, frame_idx, obj_ids, logits)
                if frame_idx not in summary.frames:
                    summary.frames.append(frame_idx)
                bar.update()
        summary.seconds = time.perf_counter() - start
        if folder_overlay is not None:
            write_overlay(video, staging, staging / folder_overlay, summary, output_format)
        _write_summary(staging / SUMMARY_FILE, video, prompts, summary, output_format, direction)
        swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # on success the old OUT, if any, is here now
        state.frames.close()
    if overlay is not None:
        write_overlay(video, out, overlay, summary, output_format)
    return summary


def _passes(predictor, state, direction, start_frame, max_frames) -> Iterator:
    kwargs = {"start_frame_idx": start_frame, "max_frame_num_to_track": max_frames}
    if direction in ("forward", "both"):
        yield from predictor.propagate_in_video(state, **kwargs)
    if direction in ("backward", "both"):
        yield from predictor.propagate_in_video(state, reverse=True, **kwargs)


def _expected_frames(num_frames, prompts, direction, start_frame, max_frames) -> int:
    start = min(p.frame for p in prompts) if start_frame is None else start_frame
    span = num_frames if max_frames is None else max_frames
    forward = min(start + span, num_frames - 1) - start + 1
    backward = start - max(start - span, 0) + 1 if start > 0 else 0
    return {"forward": forward, "backward": backward, "both": forward + backward}[direction]


def label_map(obj_ids: Sequence[int], logits: np.ndarray) -> np.ndarray:
    """``objects x 1 x H x W`` logits -> ``H x W`` uint8 object ids (0: no object above 0; where
    several are, the highest logit's)."""
    best = np.argmax(logits[:, 0], axis=0)
    present = np.take_along_axis(logits[:, 0], best[None], axis=0)[0] > 0
    ids = np.asarray(obj_ids, np.uint8)[best]
    return np.where(present, ids, 0).astype(np.uint8)


def palette() -> list[int]:
    """The DAVIS / PASCAL VOC palette: 256 RGB colours, index 0 black, 1 red, 2 green, ..."""
    colours = []
    for i in range(256):
        r = g = b = 0
        c = i
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        colours += [r, g, b]
    return colours


def _write_frame(folder: Path, output_format: str, frame_idx: int, obj_ids, logits: np.ndarray) -> None:
    if output_format == "png":
        image = Image.fromarray(label_map(obj_ids, logits), mode="P")
        image.putpalette(palette())
        image.save(folder / f"{frame_idx:05d}.png")
        return
    masks = logits[:, 0] > 0
    objects = []
    for obj_id, rle, mask in zip(obj_ids, masks_to_rle(masks), masks, strict=True):
        x0, y0, x1, y1 = (int(v) for v in masks_to_boxes(mask[None])[0]) if mask.any() else (0, 0, -1, -1)
        bbox = [x0, y0, x1 - x0 + 1, y1 - y0 + 1]
        objects.append(
            {"obj_id": obj_id, "segmentation": coco_encode(rle), "area": rle_area(rle), "bbox": bbox}
        )
    (folder / f"{frame_idx:05d}.json").write_text(json.dumps({"frame": frame_idx, "objects": objects}) + "\n")


def _write_summary(path: Path, video, prompts, summary: TrackSummary, output_format, direction) -> None:
    data = {
        "video": os.fspath(video) if isinstance(video, (str, os.PathLike)) else "arrays",
        "format": output_format,
        "direction": direction,
        "obj_ids": summary.obj_ids,
        "frames": summary.frames,
        "seconds": round(summary.seconds, 3),
        "frames_per_second": round(summary.frames_per_second, 3),
        "prompts": [
            {
                "frame": p.frame,
                "obj_id": p.obj_id,
                "points": [list(v) for v in p.points],
                "labels": list(p.labels),
                "box": None if p.box is None else list(p.box),
                "mask": None if p.mask is None else str(p.mask),
            }
            for p in prompts
        ],
    }
    path.write_text(json.dumps(data, indent=1) + "\n")


def _read_mask(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L")) > 0
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"mask {str(path)!r}", "a readable image (nonzero = object)", str(exc)
        ) from None


def read_frame_labels(
    folder: Path, frame_idx: int, output_format: str, obj_ids: Sequence[int], hw
) -> np.ndarray:
    """The ``H x W`` object ids written for ``frame_idx`` (zeros when the frame was not written)."""
    if output_format == "png":
        path = folder / f"{frame_idx:05d}.png"
        return np.asarray(Image.open(path)) if path.exists() else np.zeros(hw, np.uint8)
    from ..amg.rle import coco_decode, rle_to_mask

    path = folder / f"{frame_idx:05d}.json"
    labels = np.zeros(hw, np.int64)
    if path.exists():
        for obj in json.loads(path.read_text())["objects"]:
            labels[rle_to_mask(coco_decode(obj["segmentation"]))] = obj["obj_id"]
    return labels


def write_overlay(
    video, folder: Path, overlay, summary: TrackSummary, output_format: str, fps: float = 10.0
) -> Path:
    """An MP4 (OpenCV's ``mp4v``) of every frame of ``video`` with the written masks tinted in
    (the palette's colour per object), from the files in ``folder``; written to a temporary name
    beside ``overlay`` and renamed when complete. Returns its path."""
    import cv2

    from .frames import open_video

    overlay = Path(overlay)
    overlay.parent.mkdir(parents=True, exist_ok=True)
    tmp = overlay.with_name(f".{overlay.stem}.{os.getpid()}.partial.mp4")
    colours = np.asarray(palette(), np.float32).reshape(256, 3)
    frames = open_video(video)
    writer = None
    try:
        for i in range(frames.num_frames):
            rgb = frames.rgb(i)
            h, w = rgb.shape[:2]
            if writer is None:
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                if not writer.isOpened():
                    raise InvalidInputError(
                        f"overlay {str(overlay)!r}", "a file OpenCV can write as MP4", "refused"
                    )
            labels = read_frame_labels(folder, i, output_format, summary.obj_ids, (h, w))
            tinted = rgb.astype(np.float32)
            on = labels > 0
            tinted[on] = (1 - OVERLAY_ALPHA) * tinted[on] + OVERLAY_ALPHA * colours[
                labels[on].astype(np.int64) % 256
            ]
            writer.write(cv2.cvtColor(tinted.round().astype(np.uint8), cv2.COLOR_RGB2BGR))
        writer.release()
        writer = None
        os.replace(tmp, overlay)
    finally:
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)
        frames.close()
    return overlay
