"""Hole filling of low-res mask logits, the official video predictor's post-processing.

sam2 1.1.0 ``fill_holes_in_mask_scores`` with ``fill_hole_area=8``: the 8-connected components
of the background (``logits <= 0``) of a ``256 x 256`` logit map whose area is at most
``max_area`` pixels become ``0.1`` (foreground). The official code computes the components with a
CUDA kernel and skips the step on a CPU-only install; here OpenCV's
``connectedComponentsWithStats`` (8-connectivity) computes the same components on any machine
(OpenCV is a runtime dependency already).
"""

from __future__ import annotations

import numpy as np

HOLE_LOGIT = np.float32(0.1)  # official: a small positive score turns a hole into foreground


def fill_holes(low_res_logits: np.ndarray, max_area: int) -> np.ndarray:
    """``... x 256 x 256`` float32 logits -> a copy with the small background components set to
    0.1 (each leading index's map on its own). ``max_area`` <= 0 returns the logits unchanged."""
    import cv2

    logits = np.asarray(low_res_logits, np.float32)
    if max_area <= 0:
        return logits
    maps = logits.reshape(-1, *logits.shape[-2:])
    filled = maps.copy()
    for index, logit_map in enumerate(maps):
        background = (logit_map <= 0).astype(np.uint8)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=8)
        small = stats[:, cv2.CC_STAT_AREA] <= max_area
        small[0] = False  # label 0: the foreground pixels, not a background component
        filled[index][small[labels]] = HOLE_LOGIT
    return filled.reshape(logits.shape)
