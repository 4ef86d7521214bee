"""Image preprocessing and prompt-coordinate transforms of SAM, in numpy and Pillow (torch-free).

The official pipeline: resize so the long side is 1024 (sizes rounded with ``int(x + 0.5)``,
Pillow bilinear), normalise with the ImageNet mean/std on the 0..255 scale, pad bottom and right
with zeros to 1024x1024. Prompt coordinates follow the image: x scales by new_w / old_w and y by
new_h / old_h. Both the PyTorch reference path and the onnxruntime runtime call these functions,
so they cannot drift apart.

SAM 2 (functions named ``sam2_*``) differs: the image is scaled to 0..1, resized to 1024x1024
without keeping its aspect (bilinear with antialiasing, as ``torch.nn.functional.interpolate(...,
antialias=True)``), normalised with the ImageNet mean/std on the 0..1 scale, and not padded;
prompt coordinates are divided by (W, H) and multiplied by 1024, in float32; masks are resized
straight from 256x256 to (H, W) (:func:`resize_bilinear`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import InvalidInputError
from .variants import IMAGE_SIZE, PIXEL_MEAN, PIXEL_STD, SAM2_PIXEL_MEAN, SAM2_PIXEL_STD


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


def sam2_preprocess(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """The official SAM 2 encoder input of an ``H x W x 3`` uint8 RGB image.

    ``/ 255`` in float32, resized to ``size x size`` (aspect not kept; skipped when already that
    size) by :func:`resize_bilinear_antialias`, then ``(x - mean) / std`` with
    :data:`~sam_onnx.variants.SAM2_PIXEL_MEAN` / ``SAM2_PIXEL_STD``. Returns ``1 x 3 x size x size``
    float32.
    """
    check_image(image)
    chw = image.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    if chw.shape[1:] != (size, size):
        chw = resize_bilinear_antialias(chw, (size, size))
    mean = np.asarray(SAM2_PIXEL_MEAN, np.float32)[:, None, None]
    std = np.asarray(SAM2_PIXEL_STD, np.float32)[:, None, None]
    return ((chw - mean) / std)[None]


def resize_bilinear_antialias(x: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """``torch.nn.functional.interpolate(x, out_hw, mode="bilinear", align_corners=False,
    antialias=True)`` of a ``... x H x W`` float32 array, to float rounding.

    Separable, as torch computes it: the width first, then the height; an axis whose size does not
    change is left alone. Each output sample is a normalised triangle-filter sum over the input
    samples within ``max(1, in / out)`` of its centre (:func:`_antialias_taps`); when enlarging
    this is plain bilinear interpolation. Returns ``... x out_h x out_w`` float32.
    """
    out_h, out_w = out_hw
    x = np.asarray(x, np.float32)
    if x.shape[-1] != out_w:
        x = _apply_taps(x, *_antialias_taps(x.shape[-1], out_w), axis=-1)
    if x.shape[-2] != out_h:
        x = _apply_taps(x, *_antialias_taps(x.shape[-2], out_h), axis=-2)
    return x


def _antialias_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Input indexes and weights (both ``out_size x K``) of torch's antialiased linear resize.

    Mirrors torch's float32 arithmetic (``_compute_indices_min_size_weights_aa``): the filter's
    support is the scale when shrinking, 1 when enlarging; taps beyond a sample's window get
    weight 0 (and a valid index).
    """
    scale = np.float32(in_size) / np.float32(out_size)
    shrinking = scale >= 1
    support = scale if shrinking else np.float32(1.0)
    invscale = np.float32(1.0 / np.float64(scale)) if shrinking else np.float32(1.0)
    taps = int(np.ceil(support)) * 2 + 1
    center = (np.float64(scale) * (np.arange(out_size) + 0.5)).astype(np.float32)
    # C++ casts to int64 truncate toward zero; the sums mix float32 and double as torch does.
    xmin = np.maximum(np.trunc((center - support).astype(np.float64) + 0.5).astype(np.int64), 0)
    xmax = np.trunc((center + support).astype(np.float64) + 0.5).astype(np.int64)
    xsize = np.clip(np.minimum(xmax, in_size) - xmin, 0, taps)
    j = np.arange(taps)
    offset = (j[None, :] + xmin[:, None]).astype(np.float32) - center[:, None]
    arg = ((offset.astype(np.float64) + 0.5) * np.float64(invscale)).astype(np.float32)
    weights = np.where(np.abs(arg) < 1, (1.0 - np.abs(arg).astype(np.float64)).astype(np.float32), 0)
    weights = np.where(j[None, :] < xsize[:, None], weights, 0).astype(np.float32)
    total = np.zeros(out_size, np.float32)
    for k in range(taps):  # summed in order, in float32, as torch does
        total = total + weights[:, k]
    weights = np.where(total[:, None] != 0, weights / np.where(total == 0, 1, total)[:, None], weights)
    index = np.minimum(j[None, :] + xmin[:, None], in_size - 1)
    return index, weights.astype(np.float32)


def _apply_taps(x: np.ndarray, index: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """``out[..., i] = sum_k x[..., index[i, k]] * weights[i, k]`` along ``axis`` (-1 or -2),
    accumulated tap by tap into float32 with one rounding per tap (a fused multiply-add, as
    torch's compiled loop does: bit for bit when enlarging, within an ulp when shrinking)."""
    shape = (-1, 1) if axis == -2 else (-1,)
    out = np.take(x, index[:, 0], axis=axis) * weights[:, 0].reshape(shape)
    for k in range(1, index.shape[1]):
        # float32 x float32 is exact in float64, so the sum is rounded (to float32) once.
        product = np.take(x, index[:, k], axis=axis).astype(np.float64) * weights[:, k].reshape(shape)
        out = (product + out).astype(np.float32)
    return out


def resize_bilinear(x: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """``torch.nn.functional.interpolate(x, out_hw, mode="bilinear", align_corners=False)`` (no
    antialiasing) of a ``... x h x w`` float32 array, to float rounding: SAM 2's mask upscaling
    (``M x 256 x 256`` low-res logits to the original ``M x H x W``, also when shrinking).
    """
    x = np.asarray(x, np.float32)
    y0, y1, wy0, wy1 = linear_taps(x.shape[-2], out_hw[0])
    x0, x1, wx0, wx1 = linear_taps(x.shape[-1], out_hw[1])
    top = x[..., y0, :]
    bottom = x[..., y1, :]
    top = top[..., x0] * wx0 + top[..., x1] * wx1
    bottom = bottom[..., x0] * wx0 + bottom[..., x1] * wx1
    return top * wy0[:, None] + bottom * wy1[:, None]


def linear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both input indexes and weights of each output sample of torch's linear resize with
    ``align_corners=False`` (source ``scale * (i + 0.5) - 0.5`` in float32, clamped at 0).
    Returns ``i0, i1`` (int64) and their weights ``w0, w1`` (float32). The source is rounded to
    float32 once, as torch's fused multiply-add does: exact arithmetic moves a source near 256 by
    about 3e-5, and a steep logit (SAM 2's reach 30 per low-res pixel) by 1e-3."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = (np.float64(scale) * (np.arange(out_size) + 0.5) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    w1 = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    i1 = i0 + (i0 < in_size - 1)
    return i0, i1, (np.float32(1) - w1).astype(np.float32), w1


def sam2_coords_1024(
    coords_xy: np.ndarray, orig_hw: tuple[int, int], *, normalized: bool = False
) -> np.ndarray:
    """SAM 2 prompt coordinates ``... x 2`` (x, y) -> the 1024 x 1024 frame, float32.

    ``normalized=False`` (the official ``normalize_coords=True``): pixels of the original image
    of size ``orig_hw`` (H, W), divided by (W, H) then multiplied by 1024. ``normalized=True``:
    already in 0..1, only multiplied. Boxes (x0, y0, x1, y1) go through as ``... x 2 x 2``.
    """
    coords = np.array(coords_xy, dtype=np.float32)  # float32 first, as officially
    if coords.ndim < 1 or coords.shape[-1] != 2:
        raise InvalidInputError("point coordinates", "an array ... x 2 of (x, y)", f"shape {coords.shape}")
    if not normalized:
        h, w = orig_hw
        if h <= 0 or w <= 0:
            raise InvalidInputError("image size", "positive (H, W)", f"({h}, {w})")
        coords[..., 0] = coords[..., 0] / np.float32(w)
        coords[..., 1] = coords[..., 1] / np.float32(h)
    return coords * np.float32(IMAGE_SIZE)


# -- the two resize rules, applied here only (a family names its rule: Family.resize) -------------


def encoder_input_hw(orig_hw: tuple[int, int], resize: str) -> tuple[int, int]:
    """(h, w) of the image the encoder sees, before padding: the long side to 1024 (``long_side``)
    or the 1024 square (``square``)."""
    return (IMAGE_SIZE, IMAGE_SIZE) if resize == "square" else resized_hw(orig_hw)


def encoder_input(rgb: np.ndarray, resize: str, *, uint8_input: bool = False) -> np.ndarray:
    """The encoder graph's input for an ``H x W x 3`` uint8 RGB image: normalised ``1 x 3 x 1024 x
    1024`` float32 (``long_side``: resized and zero-padded; ``square``: :func:`sam2_preprocess`), or
    for a ``--encoder-input uint8`` graph the resized image (``long_side``) or the image itself
    (``square``, resized inside the graph)."""
    if resize == "square":
        return rgb if uint8_input else sam2_preprocess(rgb)
    resized = resize_longest_side(rgb)
    return resized if uint8_input else normalize_and_pad(resized)


def frame_coords_xy(coords_xy: np.ndarray, orig_hw: tuple[int, int], resize: str) -> np.ndarray:
    """Original-image pixel coordinates ``... x 2`` (x, y) -> the encoder input's frame, float32:
    :func:`scale_coords_xy` (``long_side``, scaled in float64) or :func:`sam2_coords_1024`
    (``square``, float32 throughout), each as its family's official predictor computes it."""
    if resize == "square":
        return sam2_coords_1024(coords_xy, orig_hw)
    return scale_coords_xy(coords_xy, orig_hw)
