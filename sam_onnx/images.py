"""Reading images into the ``H x W x 3`` uint8 RGB arrays SAM expects (numpy + Pillow, torch-free).

Accepted: a numpy array (``H x W``, ``H x W x 1/3/4``; uint8 or uint16), a PIL image, or a path.
Rules:

* grayscale becomes RGB by repeating the channel; an alpha channel is dropped (not composited);
* 16-bit images are scaled to 8 bits by ``round(v / 257)``, which maps 0..65535 onto 0..255 exactly;
* arrays are RGB unless ``bgr=True`` (OpenCV order), which reverses the channels;
* files: the EXIF orientation is applied, so the array is the image as a viewer shows it;
* files over ``max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`) are refused from their header, before
  any pixel is decoded; ``max_pixels=None`` lifts our limit, but files stay bound by Pillow's own
  hard limit (:data:`DEFAULT_MAX_PIXELS`), which we do not raise because it is process-wide state.

Every failure is an :class:`~sam_onnx.errors.InvalidImageError` naming the input.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageTooLargeError, InvalidImageError

DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own hard limit (2 x its warning threshold)
ImageSource = np.ndarray | Image.Image | str | os.PathLike


def load_image(
    source: ImageSource, *, bgr: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Return ``source`` as a C-contiguous ``H x W x 3`` uint8 RGB array (see the module rules)."""
    if isinstance(source, np.ndarray):
        return _from_array(source, "image", bgr=bgr, max_pixels=max_pixels)
    if isinstance(source, Image.Image):
        return _from_pil(source, "image", max_pixels)
    if isinstance(source, (str, os.PathLike)):
        return read_image_file(source, max_pixels=max_pixels)
    raise InvalidImageError("image", "a numpy array, a PIL image or a file path", type(source).__name__)


def read_image_file(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file (EXIF orientation applied) into ``H x W x 3`` uint8 RGB."""
    path = Path(path)
    name = f"image file {str(path)!r}"
    if not path.is_file():
        raise InvalidImageError(name, "an existing file", "a directory" if path.is_dir() else "no such file")
    return _decode(path, name, max_pixels)


def read_image_bytes(
    data: bytes, name: str = "image", *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode an encoded image held in memory (an upload) like :func:`read_image_file`."""
    if not data:
        raise InvalidImageError(name, "an encoded image", "0 bytes")
    return _decode(io.BytesIO(data), name, max_pixels)


def _decode(source: Path | io.BytesIO, name: str, max_pixels: int | None) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # our own max_pixels check replaces Pillow's warning; its hard limit still applies
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                _check_pixels(img.size[1], img.size[0], name, max_pixels)
                img.load()
                img = ImageOps.exif_transpose(img)
                return _from_pil(img, name, max_pixels)
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow refuses while opening, before our check
        limit = DEFAULT_MAX_PIXELS if max_pixels is None else min(max_pixels, DEFAULT_MAX_PIXELS)
        raise ImageTooLargeError(
            name, f"at most {limit} pixels (max_pixels, and Pillow's limit)", str(exc)
        ) from None
    except UnidentifiedImageError:
        raise InvalidImageError(name, "an image file Pillow can decode", "unrecognised content") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or corrupt data
        raise InvalidImageError(
            name, "a complete, readable image file", f"{type(exc).__name__}: {exc}"
        ) from None


def _check_pixels(h: int, w: int, name: str, max_pixels: int | None) -> None:
    if h < 1 or w < 1:
        raise InvalidImageError(name, "at least 1 x 1 pixels", f"{h} x {w}")
    if max_pixels is not None and h * w > max_pixels:
        raise ImageTooLargeError(name, f"at most {max_pixels} pixels (max_pixels)", f"{h} x {w} = {h * w}")


def _from_pil(img: Image.Image, name: str, max_pixels: int | None) -> np.ndarray:
    _check_pixels(img.size[1], img.size[0], name, max_pixels)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return _from_array(np.asarray(img).astype(np.uint16), name, bgr=False, max_pixels=max_pixels)
    if img.mode == "I":  # 16-bit PNG greyscale is often opened as 32-bit integers
        arr = np.asarray(img)
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
            raise InvalidImageError(name, "integer pixels in 0..65535", f"range {arr.min()}..{arr.max()}")
        return _from_array(arr.astype(np.uint16), name, bgr=False, max_pixels=max_pixels)
    if img.mode == "F":
        raise InvalidImageError(name, "8- or 16-bit integer pixels", "32-bit float pixels (mode F)")
    return np.ascontiguousarray(np.asarray(img.convert("RGB")))


def _from_array(arr: np.ndarray, name: str, *, bgr: bool, max_pixels: int | None) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise InvalidImageError(name, "shape H x W, H x W x 1, H x W x 3 or H x W x 4", f"shape {arr.shape}")
    _check_pixels(arr.shape[0], arr.shape[1], name, max_pixels)
    if arr.dtype == np.uint16:
        arr = np.round(arr / 257.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise InvalidImageError(name, "dtype uint8 or uint16", f"dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    arr = arr[..., :3]
    if bgr:
        arr = arr[..., ::-1]
    return np.ascontiguousarray(arr)
