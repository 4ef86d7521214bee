"""Image preprocessing and prompt-coordinate transforms of SAM, in numpy and Pillow (torch-free).

The official pipeline: resize so the long side is 1024 (sizes rounded with ``int(x + 0.5)``,
Pillow bilinear), normalise with the ImageNet mean/std on the 0..255 scale, pad bottom and right
with zeros to 1024x1024. Prompt coordinates follow the image: x scales by new_w / old_w and y by
new_h / old_h. Both the PyTorch reference path and the onnxruntime runtime call these functions,
so they cannot drift apart.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import InvalidInputError
from .variants import IMAGE_SIZE, PIXEL_MEAN, PIXEL_STD


def resized_hw(orig_hw: tuple[int, int], long_side: int = IMAGE_SIZE) -> tuple[int, int]:
    """Size (H, W) of an image of size ``orig_hw`` (H, W) resized to long side ``long_side``.

    Sides are rounded with ``int(x + 0.5)`` as officially, and never below 1 pixel.
    """
    h, w = orig_hw
    if h <= 0 or w <= 0:
        raise InvalidInputError("image size", "positive (H, W)", f"({h}, {w})")
    scale = long_side / max(h, w)
    # Past about 2048:1 the short side rounds to 0 and the official code crashes; we keep 1 pixel
    # (the decoder graph clamps the same way), which changes no size the official code can handle.
    return max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate an RGB image: ``H x W x 3`` uint8 with H, W >= 1. Returns it unchanged."""
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(name, "a numpy array H x W x 3 uint8", type(image).__name__)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise InvalidInputError(name, "shape H x W x 3 with H, W >= 1", f"shape {image.shape}")
    if image.dtype != np.uint8:
        raise InvalidInputError(name, "dtype uint8", f"dtype {image.dtype}")
    return image


def resize_longest_side(image: np.ndarray, long_side: int = IMAGE_SIZE) -> np.ndarray:
    """Resize an ``H x W x 3`` uint8 RGB image so its long side is ``long_side`` pixels.

    Reproduces the official ``ResizeLongestSide.apply_image`` bit for bit: Pillow's bilinear
    filter to the size given by :func:`resized_hw`. Returns ``h x w x 3`` uint8.
    """
    check_image(image)
    h, w = resized_hw(image.shape[:2], long_side)
    return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))


def normalize_and_pad(resized: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Normalise a resized ``h x w x 3`` uint8 image and pad it to the encoder input.

    Returns ``1 x 3 x size x size`` float32: ``(pixel - mean) / std`` per RGB channel, zeros
    below and to the right of the image (padding happens after normalising, as officially).
    """
    check_image(resized, "resized image")
    h, w = resized.shape[:2]
    if max(h, w) > size:
        raise InvalidInputError("resized image", f"sides <= {size}", f"{h} x {w}")
    mean = np.asarray(PIXEL_MEAN, np.float32)
    std = np.asarray(PIXEL_STD, np.float32)
    out = np.zeros((1, 3, size, size), np.float32)
    out[0, :, :h, :w] = ((resized.astype(np.float32) - mean) / std).transpose(2, 0, 1)
    return out


def scale_coords_xy(
    coords_xy: np.ndarray, orig_hw: tuple[int, int], long_side: int = IMAGE_SIZE
) -> np.ndarray:
    """Map (x, y) pixel coordinates of the original image into the resized image's frame.

    ``coords_xy`` is ``... x 2`` in (x, y) order; ``orig_hw`` is (H, W). Returns float32 of the
    same shape (boxes as ``... x 4`` go through :func:`scale_boxes_xyxy`).
    """
    coords = np.asarray(coords_xy, dtype=np.float64)  # scale in float64 as officially, then cast
    if coords.ndim < 1 or coords.shape[-1] != 2:
        raise InvalidInputError("point coordinates", "an array ... x 2 of (x, y)", f"shape {coords.shape}")
    new_h, new_w = resized_hw(orig_hw, long_side)
    old_h, old_w = orig_hw
    out = coords.copy()
    out[..., 0] *= new_w / old_w
    out[..., 1] *= new_h / old_h
    return out.astype(np.float32)


def scale_boxes_xyxy(
    boxes_xyxy: np.ndarray, orig_hw: tuple[int, int], long_side: int = IMAGE_SIZE
) -> np.ndarray:
    """Map ``... x 4`` boxes (x0, y0, x1, y1) of the original image into the resized frame."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise InvalidInputError("box", "an array ... x 4 of (x0, y0, x1, y1)", f"shape {boxes.shape}")
    corners = scale_coords_xy(boxes.reshape(-1, 2, 2), orig_hw, long_side)
    return corners.reshape(boxes.shape)
