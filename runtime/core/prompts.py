"""Prompt checking and the decoder feeds of the ONNX contract (numpy only).

Prompts come in original-image pixels, (x, y) order. They become the contract's inputs exactly
as the official ``SamPredictor`` + ``SamOnnxModel`` pair does:

* points are scaled into the frame of the image resized to long side 1024;
* a box (x0, y0, x1, y1) becomes two more points after the clicks, labelled 2 and 3;
* without a box, one padding point (0, 0) labelled -1 is appended;
* ``mask_input`` (low-res logits of an earlier prediction) sets ``has_mask_input`` to 1.

SAM 2 (``family="sam2"``) differs: coordinates go to the square 1024 frame (``x * 1024 / W``,
``y * 1024 / H``), a box's corners come before the clicks, and no padding point is added (its
decoder graph appends one itself).

Policy for coordinates outside the image: like the official predictor, they are used as given
(SAM's positional encoding is defined beyond the image); but a coordinate more than one image
size beyond an edge (x outside [-W, 2W] or y outside [-H, 2H]) is refused as a likely unit or
axis-order mistake. NaN and infinity are refused.
"""

from __future__ import annotations

import numpy as np

from sam_onnx.contract import PROMPT_INPUTS
from sam_onnx.errors import InvalidInputError
from sam_onnx.families import family_of
from sam_onnx.preprocess import sam2_coords_1024, scale_coords_xy
from sam_onnx.variants import LOW_RES_MASK_SIZE

MAX_POINTS = 1024  # default bound: decoder memory grows with tokens x 4096 image positions
VALID_LABELS = (-1, 0, 1, 2, 3)  # padding, negative, positive, box top-left, box bottom-right
PAD_LABEL = -1
BOX_LABELS = (2, 3)
MASK_INPUT_SHAPE = (1, 1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE)
# The mask_input of every prompt without one: shared, read-only (a grid of 1024 prompts would
# otherwise hold 1024 separate 256 KiB zero arrays before they are batched).
NO_MASK_INPUT = np.zeros(MASK_INPUT_SHAPE, np.float32)
NO_MASK_INPUT.flags.writeable = False


def check_prompt(
    point_coords: object,
    point_labels: object,
    box: object,
    mask_input: object,
    orig_hw: tuple[int, int] | None,
    *,
    max_points: int = MAX_POINTS,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """All checks of one prompt, before any graph runs; returns (points, labels, box, mask_input)
    as the ``check_*`` functions do (``None`` where not given).

    ``orig_hw`` ``None``: the checks that need no image (values, shapes, labels, corner order),
    e.g. once before a folder of images is encoded; the image-size range check then waits.
    """
    points = labels = None
    if point_coords is not None or point_labels is not None:
        points, labels = check_points(point_coords, point_labels, orig_hw, max_points=max_points)
    box_xyxy = None if box is None else check_box(box, orig_hw)
    refine = None if mask_input is None else check_mask_input(mask_input)
    if points is None and box_xyxy is None:
        raise InvalidInputError(
            "prompt", "at least one point or a box (mask_input alone is not a prompt)", "neither"
        )
    return points, labels, box_xyxy, refine


def check_points(
    point_coords: object,
    point_labels: object,
    orig_hw: tuple[int, int] | None,
    *,
    max_points: int = MAX_POINTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate clicks. Returns ``N x 2`` float64 (x, y) and ``N`` int64 labels.

    ``point_coords``: ``N x 2`` (x, y) in original pixels; ``point_labels``: ``N`` values of
    :data:`VALID_LABELS`; 1 <= N <= ``max_points``.
    """
    if point_coords is None or point_labels is None:
        raise InvalidInputError(
            "point_labels" if point_labels is None else "point_coords",
            "point_coords and point_labels given together",
            "only one of the two",
        )
    coords = _numeric("point_coords", point_coords)
    labels = _numeric("point_labels", point_labels)
    if coords.ndim != 2 or coords.shape[1] != 2 or coords.shape[0] == 0:
        raise InvalidInputError(
            "point_coords", "an N x 2 array of (x, y) with N >= 1", f"shape {coords.shape}"
        )
    if labels.shape != (coords.shape[0],):
        raise InvalidInputError(
            "point_labels", f"shape ({coords.shape[0]},), one per point", f"shape {labels.shape}"
        )
    if coords.shape[0] > max_points:
        raise InvalidInputError(
            "point_coords", f"at most {max_points} points (max_points)", f"{coords.shape[0]}"
        )
    check_coords_xy("point_coords", coords, orig_hw)
    return coords, check_labels(labels)


def check_labels(labels: np.ndarray) -> np.ndarray:
    bad = ~np.isin(labels, VALID_LABELS)
    if bad.any():
        raise InvalidInputError(
            "point_labels",
            f"values in {set(VALID_LABELS)} (1 positive, 0 negative, 2/3 box corners, -1 padding)",
            f"{labels[bad][0].item()!r}",
        )
    return labels.astype(np.int64)


def check_box(box: object, orig_hw: tuple[int, int] | None) -> np.ndarray:
    """Validate one box: 4 values (x0, y0, x1, y1), x0 <= x1 and y0 <= y1. Returns ``4`` float64."""
    arr = _numeric("box", box)
    if arr.shape not in ((4,), (1, 4)):
        raise InvalidInputError("box", "4 values (x0, y0, x1, y1)", f"shape {arr.shape}")
    return check_boxes(arr.reshape(1, 4), orig_hw, name="box")[0]


def check_boxes(boxes: object, orig_hw: tuple[int, int] | None, *, name: str = "boxes") -> np.ndarray:
    """Validate ``B x 4`` boxes (x0, y0, x1, y1) in original pixels. Returns float64."""
    arr = _numeric(name, boxes)
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] == 0:
        raise InvalidInputError(name, "a B x 4 array of (x0, y0, x1, y1) with B >= 1", f"shape {arr.shape}")
    check_coords_xy(name, arr.reshape(-1, 2), orig_hw)
    flipped = (arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])
    if flipped.any():
        i = int(np.argmax(flipped))
        raise InvalidInputError(
            name, "x0 <= x1 and y0 <= y1 (x0, y0, x1, y1 order)", f"{arr[i].tolist()} (box {i})"
        )
    return arr


def check_coords_xy(name: str, coords: np.ndarray, orig_hw: tuple[int, int] | None) -> None:
    """Refuse non-finite values and points more than one image size beyond an edge (that
    check waits for the image when ``orig_hw`` is ``None``)."""
    if not np.isfinite(coords).all():
        raise InvalidInputError(name, "finite coordinates", "NaN or infinity")
    if orig_hw is None:
        return
    h, w = orig_hw
    x, y = coords[..., 0], coords[..., 1]
    far = (x < -w) | (x > 2 * w) | (y < -h) | (y > 2 * h)
    if far.any():
        point = coords.reshape(-1, 2)[int(np.argmax(far.reshape(-1)))].tolist()
        raise InvalidInputError(
            name,
            f"(x, y) pixels within one image size of the {w} x {h} (W x H) image: x in [{-w}, {2 * w}], "
            f"y in [{-h}, {2 * h}]",
            f"{point}",
        )


def check_mask_input(mask_input: object) -> np.ndarray:
    """Validate low-res logits to refine from: ``256 x 256``, ``1 x 256 x 256`` (the official
    shape) or ``1 x 1 x 256 x 256``, float. Returns ``1 x 1 x 256 x 256`` float32."""
    arr = np.asarray(mask_input)
    if arr.dtype.kind != "f":
        raise InvalidInputError(
            "mask_input", "float low-res logits (e.g. a prediction's low_res_logits)", f"dtype {arr.dtype}"
        )
    side = LOW_RES_MASK_SIZE
    if arr.shape not in ((side, side), (1, side, side), MASK_INPUT_SHAPE):
        raise InvalidInputError("mask_input", f"shape (1, {side}, {side})", f"shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidInputError("mask_input", "finite logits", "NaN or infinity")
    return arr.reshape(MASK_INPUT_SHAPE).astype(np.float32)


def decoder_feeds(
    orig_hw: tuple[int, int],
    coords_xy: np.ndarray | None,
    labels: np.ndarray | None,
    box: np.ndarray | None,
    mask_input: np.ndarray | None,
    *,
    family: str = "sam",
    normalized: bool = False,
) -> dict[str, np.ndarray]:
    """The contract inputs (all but the image's features) for one checked prompt.

    Arguments are the outputs of the ``check_*`` functions. Returns ``point_coords`` ``1 x N x 2``
    (x, y in the 1024 frame), ``point_labels`` ``1 x N``, ``mask_input`` ``1 x 1 x 256 x 256``,
    ``has_mask_input`` ``1``, ``orig_im_size`` ``2`` (H, W), all float32.
    ``family="sam2"``: SAM 2's contract (:func:`sam2_prompt`); ``normalized``: the coordinates are
    already divided by (W, H) (the official ``normalize_coords=False``; SAM 2 only).
    """
    if coords_xy is None and box is None:
        raise InvalidInputError(
            "prompt", "at least one point or a box (mask_input alone is not a prompt)", "neither"
        )
    if family_of(family).box_first:  # SAM 2's contract: the square frame, box first, no padding
        point_coords, point_labels = sam2_prompt(orig_hw, coords_xy, labels, box, normalized=normalized)
        return _feeds(point_coords, point_labels, mask_input, orig_hw)
    coords = np.zeros((0, 2)) if coords_xy is None else coords_xy
    point_labels = np.zeros(0) if labels is None else labels
    if box is None:
        coords = np.concatenate([coords, np.zeros((1, 2))])
        point_labels = np.concatenate([point_labels, [PAD_LABEL]])
    else:
        coords = np.concatenate([coords, box.reshape(2, 2)])
        point_labels = np.concatenate([point_labels, BOX_LABELS])
    # the padding point is (0, 0) in the 1024 frame; scaling leaves it there
    return _feeds(scale_coords_xy(coords, orig_hw), point_labels, mask_input, orig_hw)


def sam2_prompt(
    orig_hw: tuple[int, int],
    coords_xy: np.ndarray | None,
    labels: np.ndarray | None,
    box: np.ndarray | None,
    *,
    normalized: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """SAM 2's prompt: ``N x 2`` float32 (x, y) in the square 1024 frame and ``N`` labels.

    As the official ``SAM2ImagePredictor``: a box's two corners (labels 2, 3) come *before* the
    points; no padding point (the SAM 2 decoder graph appends it); coordinates to float32, divided
    by (W, H) unless ``normalized``, times 1024 (:func:`~sam_onnx.preprocess.sam2_coords_1024`).
    """
    coords = [] if box is None else [np.asarray(box, np.float64).reshape(2, 2)]
    point_labels = [] if box is None else [np.asarray(BOX_LABELS, np.float64)]
    if coords_xy is not None:
        coords.append(np.asarray(coords_xy, np.float64).reshape(-1, 2))
        point_labels.append(np.asarray(labels, np.float64))
    xy = sam2_coords_1024(np.concatenate(coords), orig_hw, normalized=normalized)
    return xy, np.concatenate(point_labels)


def _feeds(coords_1024, labels, mask_input, orig_hw) -> dict[str, np.ndarray]:
    return {
        "point_coords": np.asarray(coords_1024, np.float32)[None],
        "point_labels": np.asarray(labels).astype(np.float32)[None],
        "mask_input": NO_MASK_INPUT if mask_input is None else mask_input,
        "has_mask_input": np.array([0.0 if mask_input is None else 1.0], np.float32),
        "orig_im_size": np.array(orig_hw, np.float32),
    }


def stack_feeds(feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join single-prompt feeds with the same N into one batched-decoder feed (B = len(feeds))."""
    batched = {name: np.concatenate([f[name] for f in feeds]) for name in PROMPT_INPUTS}
    return {**batched, "orig_im_size": feeds[0]["orig_im_size"]}


def _numeric(name: str, value: object) -> np.ndarray:
    if np.asarray(value).dtype.kind == "c":  # a cast to float would drop the imaginary part silently
        raise InvalidInputError(name, "real numbers", "complex numbers")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(name, "numbers", f"{type(value).__name__} ({exc})") from None
    return arr
