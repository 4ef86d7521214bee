"""A clip's frames, decoded one at a time, as the official SAM 2 video loader reads them.

Three sources: a folder of ``<index>.jpg`` frames (the official layout: ``.jpg``/``.jpeg`` in
either case, sorted by the integer of the name), a video file (OpenCV), or a sequence of
``H x W x 3`` uint8 RGB arrays. Nothing is decoded ahead: :meth:`VideoFrames.model_input` decodes
one frame when it is asked for, so a clip costs its file handles, not 12 MB per frame as the
official loader's ``N x 3 x 1024 x 1024`` float32 tensor does.

The model input is the official loader's (sam2 1.1.0 ``_load_img_as_tensor``): Pillow
``.convert("RGB").resize((1024, 1024))`` (bicubic, Pillow's default; the aspect ratio is not kept),
``/ 255`` in float64 stored as float32, then ``(x - mean) / std`` in float32. This is not the image
predictor's preprocessing (an antialiased bilinear resize). Video files and arrays go through the
same Pillow resize of their RGB pixels (the official predictor decodes files with decord, which
resizes inside the decoder; here every source is resized as its JPEG frames are).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from sam_onnx.errors import InvalidVideoError
from sam_onnx.variants import IMAGE_SIZE, SAM2_PIXEL_MEAN, SAM2_PIXEL_STD

# the official loader's frame extensions (load_video_frames_from_jpg_images)
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".JPG", ".JPEG")


def model_input(rgb: Image.Image | np.ndarray) -> np.ndarray:
    """One frame (Pillow image or ``H x W x 3`` uint8 RGB) -> ``1 x 3 x 1024 x 1024`` float32, as
    the official video loader computes it."""
    image = rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb)
    resized = np.asarray(image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE)))
    scaled = (resized / 255.0).astype(np.float32).transpose(2, 0, 1)  # float64 division, as officially
    mean = np.asarray(SAM2_PIXEL_MEAN, np.float32)[:, None, None]
    std = np.asarray(SAM2_PIXEL_STD, np.float32)[:, None, None]
    return ((scaled - mean) / std)[None]


class VideoFrames:
    """A clip: ``num_frames``, ``video_hw`` (H, W) of every frame, and each frame on demand."""

    num_frames: int
    video_hw: tuple[int, int]

    def rgb(self, frame_idx: int) -> np.ndarray:
        """Frame ``frame_idx`` as ``H x W x 3`` uint8 RGB."""
        raise NotImplementedError

    def model_input(self, frame_idx: int) -> np.ndarray:
        """Frame ``frame_idx`` as the encoder's ``1 x 3 x 1024 x 1024`` float32 input."""
        return model_input(self.rgb(frame_idx))

    def close(self) -> None:
        """Release any open file (a video file's decoder)."""


class JpegFolder(VideoFrames):
    """A folder of ``<index>.jpg`` frames. Every frame's header is read at once (sizes checked,
    unreadable files named); pixels are decoded when a frame is asked for."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.paths = _frame_paths(self.folder)
        sizes = {path: _header_size(path) for path in self.paths}
        distinct = sorted(set(sizes.values()))
        if len(distinct) > 1:
            odd = next(p for p, s in sizes.items() if s != sizes[self.paths[0]])
            raise InvalidVideoError(
                str(self.folder),
                f"frames of one size (the first, {self.paths[0].name}, is {_wh(sizes[self.paths[0]])})",
                f"{odd.name} of {_wh(sizes[odd])} ({len(distinct)} sizes in all)",
            )
        self.num_frames = len(self.paths)
        self.video_hw = distinct[0]

    def _image(self, frame_idx: int) -> Image.Image:
        path = self.paths[frame_idx]
        try:
            with Image.open(path) as image:
                image.load()
                return image.convert("RGB")
        except (OSError, ValueError) as exc:
            raise InvalidVideoError(
                str(path), "a frame Pillow can decode", f"{type(exc).__name__}: {exc}"
            ) from exc

    def rgb(self, frame_idx: int) -> np.ndarray:
        return np.asarray(self._image(frame_idx))

    def model_input(self, frame_idx: int) -> np.ndarray:
        return model_input(self._image(frame_idx))


def _frame_paths(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InvalidVideoError(str(folder), "a folder of <index>.jpg frames", "no such folder")
    paths = [p for p in folder.iterdir() if p.suffix in FRAME_EXTENSIONS]
    if not paths:
        raise InvalidVideoError(str(folder), "a folder of <index>.jpg frames", "no .jpg or .jpeg file in it")
    bad = [p.name for p in paths if not p.stem.isdigit()]
    if bad:
        raise InvalidVideoError(
            str(folder), "frames named by their index (00000.jpg, 00001.jpg, ...)", f"{bad[0]!r}"
        )
    return sorted(paths, key=lambda p: int(p.stem))


def _header_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            w, h = image.size
    except (OSError, ValueError) as exc:
        raise InvalidVideoError(str(path), "a JPEG frame", f"{type(exc).__name__}: {exc}") from exc
    return h, w


def _wh(hw: tuple[int, int]) -> str:
    return f"{hw[1]}x{hw[0]} (WxH)"


class ArrayFrames(VideoFrames):
    """A sequence of ``H x W x 3`` uint8 RGB arrays, all of one size (kept by reference)."""

    def __init__(self, frames: Sequence[np.ndarray]) -> None:
        if len(frames) == 0:
            raise InvalidVideoError("video", "at least one frame", "an empty sequence")
        first = np.asarray(frames[0])
        for index, frame in enumerate(frames):
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise InvalidVideoError(
                    f"video frame {index}", "an H x W x 3 uint8 RGB array", f"{frame.dtype} {frame.shape}"
                )
            if frame.shape != first.shape:
                raise InvalidVideoError(
                    f"video frame {index}", f"the size of frame 0, {first.shape}", f"{frame.shape}"
                )
        self.frames = frames
        self.num_frames = len(frames)
        self.video_hw = (int(first.shape[0]), int(first.shape[1]))

    def rgb(self, frame_idx: int) -> np.ndarray:
        return np.asarray(self.frames[frame_idx])


class VideoFile(VideoFrames):
    """A video file through OpenCV. The file is decoded once at opening to count its frames (the
    container's frame count is not trusted); afterwards frames are read in order, and a jump
    (tracking backwards, a prompt elsewhere) seeks."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import cv2

        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise InvalidVideoError(
                self.path, "a folder of <index>.jpg frames or a video file", "no such file or folder"
            )
        self._capture = cv2.VideoCapture(self.path)
        if not self._capture.isOpened():
            raise InvalidVideoError(self.path, "a video file OpenCV can open", "it could not be opened")
        count, shape = 0, None
        while True:
            ok, frame = self._capture.read()
            if not ok:
                break
            if shape is not None and frame.shape != shape:
                raise InvalidVideoError(
                    self.path, f"frames of one size {shape}", f"{frame.shape} at frame {count}"
                )
            shape = frame.shape
            count += 1
        if count == 0:
            self._capture.release()
            raise InvalidVideoError(self.path, "a video of at least one frame", "no frame decoded")
        self.num_frames = count
        self.video_hw = (int(shape[0]), int(shape[1]))
        self._next = count  # the frame the decoder reads next
        self._last: tuple[int, np.ndarray] | None = None

    def rgb(self, frame_idx: int) -> np.ndarray:
        import cv2

        if self._last is not None and self._last[0] == frame_idx:
            return self._last[1]
        if frame_idx != self._next:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, frame_idx)
        ok, frame = self._capture.read()
        if not ok:
            raise InvalidVideoError(self.path, f"frame {frame_idx} of {self.num_frames}", "it did not decode")
        self._next = frame_idx + 1
        rgb = np.ascontiguousarray(frame[..., ::-1])
        self._last = (frame_idx, rgb)
        return rgb

    def close(self) -> None:
        self._capture.release()


def open_video(video: str | os.PathLike[str] | Sequence[np.ndarray]) -> VideoFrames:
    """A folder of ``<index>.jpg`` frames, a video file, or a sequence of ``H x W x 3`` uint8 RGB
    arrays -> :class:`VideoFrames`. Raises :class:`~sam_onnx.errors.InvalidVideoError` (an empty
    folder, mixed frame sizes, an unreadable frame named, a file OpenCV cannot open, no frame)."""
    if isinstance(video, (str, os.PathLike)):
        return JpegFolder(video) if Path(video).is_dir() else VideoFile(video)
    if (isinstance(video, np.ndarray) and video.ndim == 4) or isinstance(video, Sequence):
        return ArrayFrames(video)
    raise InvalidVideoError(
        "video",
        "a folder of frames, a video file or a sequence of H x W x 3 uint8 arrays",
        type(video).__name__,
    )
