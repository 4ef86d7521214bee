"""Crop layers with objects the test controls: duplicates across crops are suppressed, masks cut
by a crop edge are dropped, and every mask lies in its crop box.

Random-weight SAM masks are textures that touch every crop edge, so this test drives the
generator with a stand-in for the predictor's two calls (``embed``, ``decode_points``) that
"segments" three rectangles of a 480 x 640 image: a click inside a rectangle gets that rectangle
(confident), any other click an empty mask (not confident). Each pixel's colour encodes its (x, y),
so the stand-in knows where each crop lies from the crop's pixels alone, as a real encoder would.
"""

from __future__ import annotations

import numpy as np
import pytest

from sam_onnx.runtime.amg import AutomaticMaskGenerator
from sam_onnx.runtime.amg.crops import crop_boxes

H, W = 480, 640
OBJECTS = {  # (x0, y0, x1, y1), end exclusive, image pixels
    "inside the top-left crop": (60, 60, 160, 140),
    "inside the bottom-right crop": (470, 360, 560, 440),
    "across every crop edge": (230, 150, 420, 330),
}


def coded_image() -> np.ndarray:
    """R, G: x and y mod 256; B: x // 256 + 16 * (y // 256)."""
    y, x = np.mgrid[:H, :W]
    return np.dstack([x % 256, y % 256, x // 256 + 16 * (y // 256)]).astype(np.uint8)


def crop_origin(crop: np.ndarray) -> tuple[int, int]:
    r, g, b = (int(v) for v in crop[0, 0])
    return r + 256 * (b % 16), g + 256 * (b // 16)


class RectanglePredictor:
    """Stand-in for SamPredictor's two calls the generator uses."""

    max_pixels = None
    progress = False
    family = "sam"

    def __init__(self) -> None:
        self.embedded: list[tuple[int, int, int, int]] = []

    def embed(self, crop: np.ndarray):
        x0, y0 = crop_origin(crop)
        h, w = crop.shape[:2]
        self.embedded.append((x0, y0, x0 + w, y0 + h))
        return self.embedded[-1]

    def decode_points(self, points_xy, crop, *, batch, multimask_output=True):
        x0, y0, x1, y1 = crop
        yy, xx = np.mgrid[y0:y1, x0:x1]
        for start in range(0, len(points_xy), batch):
            chunk = points_xy[start : start + batch] + np.array([x0, y0])  # to image pixels
            logits = np.full((len(chunk), 3, y1 - y0, x1 - x0), -8.0, np.float32)
            iou = np.full((len(chunk), 3), 0.5, np.float32)
            for i, (px, py) in enumerate(chunk):
                for ox0, oy0, ox1, oy1 in OBJECTS.values():
                    if ox0 <= px < ox1 and oy0 <= py < oy1:
                        inside = (xx >= ox0) & (xx < ox1) & (yy >= oy0) & (yy < oy1)
                        logits[i, :, inside] = 8.0
                        iou[i] = (0.95, 0.97, 0.96)
            yield logits, iou, None  # no low-res logits: SAM v1's generator does not refine


def rectangle_mask(box) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def generate(**options) -> tuple[list[dict], RectanglePredictor]:
    fake = RectanglePredictor()
    generator = AutomaticMaskGenerator(fake, output_mode="binary_mask", points_per_side=16, **options)
    return generator.generate(coded_image()), fake


def test_stand_in_reads_crop_positions():
    image = coded_image()
    assert crop_origin(image[159:, 239:]) == (239, 159)


def test_one_mask_per_object_without_crops():
    anns, fake = generate()
    assert fake.embedded == [(0, 0, W, H)]
    assert sorted(a["bbox"] for a in anns) == sorted(
        [x0, y0, x1 - 1 - x0, y1 - 1 - y0] for x0, y0, x1, y1 in OBJECTS.values()
    )


def test_crop_layer_duplicates_are_suppressed_and_the_smaller_crop_wins():
    boxes, _ = crop_boxes((H, W), 1, 512 / 1500)
    anns, fake = generate(crop_n_layers=1)
    assert fake.embedded == [tuple(b) for b in boxes]  # each crop embedded once
    assert len(anns) == len(OBJECTS)  # no duplicates left
    by_mask = {}
    for ann in anns:
        x, y, w, h = ann["crop_box"]
        outside = ann["segmentation"].copy()
        outside[y : y + h, x : x + w] = False
        assert not outside.any(), "a mask reaches outside its crop box"
        name = next(
            n for n, box in OBJECTS.items() if np.array_equal(ann["segmentation"], rectangle_mask(box))
        )
        by_mask[name] = ann["crop_box"]
    # Objects inside a sub-crop keep that crop's mask (score 1 / crop area beats the whole image's);
    # the one crossing every sub-crop edge survives only from the whole-image crop.
    assert by_mask["inside the top-left crop"] == [0, 0, 402, 322]
    assert by_mask["inside the bottom-right crop"] == [239, 159, 401, 321]
    assert by_mask["across every crop edge"] == [0, 0, W, H]


def test_without_cross_crop_nms_the_duplicates_are_there():
    anns, _ = generate(crop_n_layers=1, crop_nms_thresh=1.0)
    masks = [a["segmentation"] for a in anns]
    copies = {
        name: sum(np.array_equal(m, rectangle_mask(box)) for m in masks) for name, box in OBJECTS.items()
    }
    # whole image + the sub-crop(s) holding the object away from their edges
    assert copies["inside the top-left crop"] >= 2 and copies["inside the bottom-right crop"] >= 2
    assert copies["across every crop edge"] == 1


@pytest.mark.parametrize("min_area", [0, 500])
def test_small_region_removal_keeps_whole_rectangles(min_area):
    anns, _ = generate(min_mask_region_area=min_area)
    assert len(anns) == len(OBJECTS)
    assert all(a["area"] == int(a["segmentation"].sum()) for a in anns)
