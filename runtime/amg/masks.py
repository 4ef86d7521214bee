"""Mask post-processing of the automatic generator: stability, boxes, NMS, crops, small regions.

numpy (and OpenCV for connected components); each function states the official rule it follows.
Boxes are (x0, y0, x1, y1) with x1, y1 the last pixel inside (inclusive), as the official
``batched_mask_to_box`` returns them; an empty mask has the box (0, 0, 0, 0).
"""

from __future__ import annotations

import numpy as np


def stability_score(logits: np.ndarray, threshold: float, offset: float) -> np.ndarray:
    """IoU of the masks at ``threshold + offset`` and ``threshold - offset``: ``... x H x W``
    float logits -> ``...`` float32 (0/0 gives NaN, as officially)."""
    inter = np.count_nonzero(logits > threshold + offset, axis=(-2, -1))
    union = np.count_nonzero(logits > threshold - offset, axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (inter / union).astype(np.float32)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """``B x H x W`` bool -> ``B x 4`` int64 inclusive (x0, y0, x1, y1); zeros for empty masks."""
    b = masks.shape[0]
    boxes = np.zeros((b, 4), np.int64)
    rows, cols = masks.any(axis=2), masks.any(axis=1)  # B x H, B x W
    filled = rows.any(axis=1)
    if filled.any():
        r, c = rows[filled], cols[filled]
        h, w = r.shape[1], c.shape[1]
        boxes[filled, 0] = c.argmax(axis=1)
        boxes[filled, 1] = r.argmax(axis=1)
        boxes[filled, 2] = w - 1 - c[:, ::-1].argmax(axis=1)
        boxes[filled, 3] = h - 1 - r[:, ::-1].argmax(axis=1)
    return boxes


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with ``B x 4`` boxes, areas as (x1 - x0) * (y1 - y0)."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area + areas - inter)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression, as torchvision's ``nms``: visit boxes by decreasing score
    (ties in index order), drop every later box whose IoU with a kept one exceeds the threshold.
    Returns the kept indices, by decreasing score."""
    boxes = np.asarray(boxes, np.float32)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    suppressed = np.zeros(len(order), bool)
    keep = []
    for rank, i in enumerate(order):
        if suppressed[rank]:
            continue
        keep.append(i)
        rest = order[rank + 1 :]
        # float32 IoU against the threshold in float64, as torchvision's kernel compares them
        suppressed[rank + 1 :] |= box_iou(boxes[i], boxes[rest]).astype(np.float64) > iou_threshold
    return np.asarray(keep, np.int64)


def is_box_near_crop_edge(
    boxes: np.ndarray, crop_box: list[int], orig_box: list[int], atol: float = 20.0
) -> np.ndarray:
    """``B x 4`` boxes in crop coordinates -> ``B`` bool: a side lies within ``atol`` pixels of
    the crop's edge without lying at the image's edge (such masks are cut by the crop)."""
    boxes = uncrop_boxes(boxes, crop_box).astype(np.float32)
    near_crop = np.abs(boxes - np.asarray(crop_box, np.float32)) <= atol
    near_image = np.abs(boxes - np.asarray(orig_box, np.float32)) <= atol
    return (near_crop & ~near_image).any(axis=1)


def uncrop_boxes(boxes: np.ndarray, crop_box: list[int]) -> np.ndarray:
    x0, y0 = crop_box[:2]
    return boxes + np.array([x0, y0, x0, y0], boxes.dtype)


def uncrop_points(points: np.ndarray, crop_box: list[int]) -> np.ndarray:
    return points + np.array(crop_box[:2], points.dtype)


def uncrop_masks(masks: np.ndarray, crop_box: list[int], orig_hw: tuple[int, int]) -> np.ndarray:
    """``B x h x w`` masks of a crop -> ``B x H x W`` masks of the image (zeros outside the crop)."""
    x0, y0, x1, y1 = crop_box
    h, w = orig_hw
    if (x0, y0, x1, y1) == (0, 0, w, h):
        return masks
    out = np.zeros((masks.shape[0], h, w), masks.dtype)
    out[:, y0:y1, x0:x1] = masks
    return out


def remove_small_regions(mask: np.ndarray, min_area: int, mode: str) -> tuple[np.ndarray, bool]:
    """Fill holes (``mode="holes"``) or drop islands (``"islands"``) under ``min_area`` pixels,
    8-connected. If every island is small, the largest one is kept. Returns (mask, changed)."""
    import cv2

    holes = mode == "holes"
    work = (mask ^ holes).astype(np.uint8)  # the regions to look at are 1
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(work, connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]
    small = np.flatnonzero(sizes < min_area) + 1
    if small.size == 0:
        return mask, False
    if holes:
        keep_labels = np.concatenate([[0], small])  # background plus the small holes become mask
    else:
        keep_labels = np.setdiff1d(np.arange(1, n_labels), small)
        if keep_labels.size == 0:
            keep_labels = np.array([int(np.argmax(sizes)) + 1])
    return np.isin(labels, keep_labels), True
