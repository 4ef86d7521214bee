"""Building blocks of the automatic mask generator against independent references.

Each block is compared with a brute-force version written here from the official rule
(segment-anything ``utils/amg.py``, torchvision ``nms``, pycocotools), not with itself: RLE by
``itertools.groupby`` over the column-major pixels, COCO RLE by pycocotools when installed (and a
hand-encoded string when not), boxes by ``np.nonzero``, NMS by a plain greedy loop with exact
fractions, small regions by a breadth-first 8-connected labelling, crops by the official formula.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sam_onnx.errors import InvalidInputError
from sam_onnx.runtime.amg.crops import crop_boxes, layer_point_grids, point_grid
from sam_onnx.runtime.amg.masks import (
    is_box_near_crop_edge,
    masks_to_boxes,
    nms,
    remove_small_regions,
    stability_score,
    uncrop_boxes,
    uncrop_masks,
    uncrop_points,
)
from sam_onnx.runtime.amg.rle import coco_decode, coco_encode, masks_to_rle, rle_area, rle_to_mask

# pycocotools' decode warns under numpy 2 (its __array__ lacks ``copy``): not ours to fix here.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# Mask strategies and references
# ---------------------------------------------------------------------------------------------


@st.composite
def toggled_masks(draw, max_h: int = 300, max_w: int = 400) -> np.ndarray:
    """A mask built from a few value changes along the column-major pixels: long runs, so large
    counts and runs shorter than the one two before (negative COCO differences)."""
    h = draw(st.integers(1, max_h))
    w = draw(st.integers(1, max_w))
    toggles = draw(st.sets(st.integers(0, h * w - 1), max_size=12))
    flat = np.zeros(h * w, np.int64)
    flat[sorted(toggles)] = 1
    return (np.cumsum(flat) % 2 == 1).reshape(w, h).T


random_bit_masks = hnp.arrays(
    np.bool_, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=24), elements=st.booleans()
)
any_masks = st.one_of(random_bit_masks, toggled_masks())


def reference_rle_counts(mask: np.ndarray) -> list[int]:
    """Run lengths over the Fortran-order pixels, starting with a (possibly empty) run of zeros."""
    runs = [(bool(value), len(list(group))) for value, group in itertools.groupby(mask.flatten(order="F"))]
    counts = [n for _, n in runs]
    return [0, *counts] if runs[0][0] else counts


def edge_masks() -> list[np.ndarray]:
    first_only = np.zeros((3, 4), bool)
    first_only[0, 0] = True
    last_only = np.zeros((3, 4), bool)
    last_only[-1, -1] = True
    checker = (np.indices((5, 7)).sum(axis=0) % 2).astype(bool)
    return [
        np.zeros((1, 1), bool),
        np.ones((1, 1), bool),
        np.array([[True, False, True, True, False]]),  # 1 x N
        np.array([[False], [True], [True], [False], [True]]),  # N x 1
        np.zeros((6, 9), bool),
        np.ones((6, 9), bool),
        first_only,
        last_only,
        checker,
        ~checker,
    ]


# ---------------------------------------------------------------------------------------------
# Uncompressed RLE
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", edge_masks(), ids=lambda m: f"{m.shape[0]}x{m.shape[1]}")
def test_rle_edge_masks_match_brute_force(mask):
    (rle,) = masks_to_rle(mask[None])
    assert rle["size"] == list(mask.shape)
    assert rle["counts"] == reference_rle_counts(mask)
    assert (rle["counts"][0] == 0) == bool(mask.flat[0])
    np.testing.assert_array_equal(rle_to_mask(rle), mask)
    assert rle_area(rle) == int(mask.sum())


def test_rle_is_column_major():
    mask = np.array([[True, False, False], [True, True, False]])  # F order: 1 1 0 1 0 0
    (rle,) = masks_to_rle(mask[None])
    assert rle == {"size": [2, 3], "counts": [0, 2, 1, 1, 2]}


@FAST
@given(any_masks)
def test_rle_round_trip_and_area(mask):
    (rle,) = masks_to_rle(mask[None])
    assert rle["size"] == list(mask.shape)
    assert rle["counts"] == reference_rle_counts(mask)
    assert all(isinstance(c, int) for c in rle["counts"])
    decoded = rle_to_mask(rle)
    assert decoded.dtype == np.bool_
    np.testing.assert_array_equal(decoded, mask)
    assert rle_area(rle) == int(mask.sum())


@FAST
@given(hnp.arrays(np.bool_, st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9))))
def test_rle_batch_encodes_each_mask(masks):
    rles = masks_to_rle(masks)
    assert len(rles) == len(masks)
    for rle, mask in zip(rles, masks, strict=True):
        assert rle["counts"] == reference_rle_counts(mask)
        np.testing.assert_array_equal(rle_to_mask(rle), mask)


def test_rle_accepts_uint8_masks():
    mask = np.array([[0, 255], [255, 0]], np.uint8)
    (rle,) = masks_to_rle(mask[None])
    assert rle["counts"] == reference_rle_counts(mask.astype(bool))


@pytest.mark.parametrize(
    "counts",
    [[5, 6], [5, 4], [], [13, -1], [5, -1, 7], [12, 0, -1]],
    ids=["sum-too-large", "sum-too-small", "empty", "negative-last", "negative-middle", "negative-zero"],
)
def test_rle_to_mask_refuses_bad_counts(counts):
    with pytest.raises(InvalidInputError, match="rle"):
        rle_to_mask({"size": [3, 4], "counts": counts})


def test_masks_to_rle_refuses_2d():
    with pytest.raises(InvalidInputError, match="masks"):
        masks_to_rle(np.zeros((4, 4), bool))


# ---------------------------------------------------------------------------------------------
# COCO RLE
# ---------------------------------------------------------------------------------------------


def big_block_mask() -> np.ndarray:
    """300 x 400 with one block: the zero runs before and after it exceed 2^15."""
    mask = np.zeros((300, 400), bool)
    mask[40:260, 150:330] = True
    return mask


def test_coco_hand_encoded_string():
    # counts 5, 3, 100, 1: "5", "3", 100 = 4 + 3 * 32 -> "T" (4 | 0x20) "3", then 1 - 3 = -2 -> 30 -> "N"
    rle = {"size": [1, 109], "counts": [5, 3, 100, 1]}
    assert coco_encode(rle) == {"size": [1, 109], "counts": "53T3N"}
    assert coco_decode({"size": [1, 109], "counts": "53T3N"}) == rle
    assert coco_decode({"size": [1, 109], "counts": b"53T3N"}) == rle


@pytest.mark.parametrize(
    "mask", [*edge_masks(), big_block_mask(), np.zeros((300, 400), bool), np.ones((300, 400), bool)]
)
def test_coco_round_trip_edge_masks(mask):
    (rle,) = masks_to_rle(mask[None])
    coco = coco_encode(rle)
    assert isinstance(coco["counts"], str)
    assert coco["size"] == list(mask.shape)
    assert coco_decode(coco) == rle


def test_coco_big_counts_round_trip():
    (rle,) = masks_to_rle(big_block_mask()[None])
    assert max(rle["counts"]) > 2**15
    assert coco_decode(coco_encode(rle)) == rle


@FAST
@given(any_masks)
def test_coco_round_trip(mask):
    (rle,) = masks_to_rle(mask[None])
    coco = coco_encode(rle)
    assert coco_decode(coco) == rle
    assert coco_decode({"size": coco["size"], "counts": coco["counts"].encode()}) == rle
    np.testing.assert_array_equal(rle_to_mask(coco_decode(coco)), mask)


def check_against_pycocotools(mask: np.ndarray) -> None:
    mask_utils = pytest.importorskip("pycocotools.mask")
    (rle,) = masks_to_rle(mask[None])
    ours = coco_encode(rle)
    official = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert ours["counts"] == official["counts"].decode()
    assert ours["size"] == list(official["size"])
    # The official coco_encode_rle goes through frPyObjects on the uncompressed RLE.
    h, w = rle["size"]
    assert ours["counts"] == mask_utils.frPyObjects(rle, h, w)["counts"].decode()
    decoded = mask_utils.decode({"size": ours["size"], "counts": ours["counts"].encode()})
    np.testing.assert_array_equal(decoded.astype(bool), mask)
    assert int(mask_utils.area({"size": ours["size"], "counts": ours["counts"].encode()})) == rle_area(rle)


def has_negative_difference(counts: list[int]) -> bool:
    return any(counts[i] < counts[i - 2] for i in range(3, len(counts)))


def test_coco_matches_pycocotools_big_counts():
    mask = big_block_mask()
    (rle,) = masks_to_rle(mask[None])
    assert max(rle["counts"]) > 2**15
    check_against_pycocotools(mask)


def test_coco_matches_pycocotools_negative_differences():
    mask = np.zeros((50, 60), bool)
    mask[5:45, 3:20] = True  # long runs ...
    mask[10:12, 30:40] = True  # ... then short ones: differences go negative
    mask[0, 50] = True
    (rle,) = masks_to_rle(mask[None])
    assert has_negative_difference(rle["counts"])
    check_against_pycocotools(mask)


@pytest.mark.parametrize("mask", edge_masks(), ids=lambda m: f"{m.shape[0]}x{m.shape[1]}")
def test_coco_matches_pycocotools_edge_masks(mask):
    check_against_pycocotools(mask)


@FAST
@given(any_masks)
def test_coco_matches_pycocotools(mask):
    check_against_pycocotools(mask)


def test_coco_truncated_inside_a_number_is_refused():
    (rle,) = masks_to_rle(big_block_mask()[None])
    text = coco_encode(rle)["counts"]
    continued = [i for i, c in enumerate(text) if (ord(c) - 48) & 0x20]  # a group with more to come
    assert continued
    for cut in (continued[0] + 1, continued[-1] + 1):
        with pytest.raises(InvalidInputError, match="COCO RLE"):
            coco_decode({"size": [300, 400], "counts": text[:cut]})
    with pytest.raises(InvalidInputError, match="COCO RLE"):
        coco_decode({"size": [1, 1], "counts": "P"})  # 0x20 set on the only character
    with pytest.raises(InvalidInputError, match="COCO RLE"):
        coco_decode({"size": [1, 1], "counts": b"P"})


def test_coco_truncated_between_numbers_is_refused_when_decoded_to_a_mask():
    (rle,) = masks_to_rle(big_block_mask()[None])
    text = coco_encode(rle)["counts"]
    last_start = max(i for i, c in enumerate(text[:-1]) if not (ord(c) - 48) & 0x20) + 1
    short = coco_decode({"size": [300, 400], "counts": text[:last_start]})  # the last number dropped
    assert short["counts"] == rle["counts"][:-1]
    with pytest.raises(InvalidInputError):
        rle_to_mask(short)


# ---------------------------------------------------------------------------------------------
# Stability score
# ---------------------------------------------------------------------------------------------


def reference_stability(logits: np.ndarray, threshold: float, offset: float) -> np.ndarray:
    flat = logits.reshape(-1, *logits.shape[-2:])
    out = []
    for m in flat:
        inter = sum(1 for v in m.ravel() if v > threshold + offset)
        union = sum(1 for v in m.ravel() if v > threshold - offset)
        out.append(inter / union if union else math.nan)
    return np.array(out).reshape(logits.shape[:-2])


@pytest.mark.parametrize("seed", range(4))
def test_stability_score_random_logits(seed):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((2, 3, 17, 23)) * 4).astype(np.float32)
    logits[0, 0] = -10  # nothing above either threshold: 0/0
    threshold, offset = float(rng.uniform(-1, 1)), 1.0
    got = stability_score(logits, threshold, offset)
    want = reference_stability(logits, threshold, offset)
    assert got.shape == (2, 3)
    assert got.dtype == np.float32
    assert np.isnan(got[0, 0])
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
    assert np.isnan(got).sum() == 1


def test_stability_score_thresholds_are_strict():
    # values on the thresholds themselves are outside: > 1 keeps only 2, > -1 keeps 0, 1, 2
    logits = np.array([[-2.0, -1.0, 0.0], [1.0, 2.0, 2.0]], np.float32)
    assert stability_score(logits, 0.0, 1.0) == pytest.approx(2 / 4)
    assert stability_score(logits, 0.0, 0.0) == pytest.approx(1.0)
    assert np.isnan(stability_score(np.full((3, 3), -5.0, np.float32), 0.0, 1.0))


# ---------------------------------------------------------------------------------------------
# Boxes from masks
# ---------------------------------------------------------------------------------------------


def reference_boxes(masks: np.ndarray) -> np.ndarray:
    out = np.zeros((len(masks), 4), np.int64)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if len(xs):
            out[i] = [xs.min(), ys.min(), xs.max(), ys.max()]
    return out


@pytest.mark.parametrize("shape", [(6, 1, 1), (6, 1, 13), (6, 11, 1), (12, 31, 47), (9, 64, 20)])
def test_masks_to_boxes_random_sparse(shape):
    rng = np.random.default_rng(sum(shape))
    density = rng.choice([0.0, 0.002, 0.01, 0.1, 0.6], size=(shape[0], 1, 1))
    masks = rng.random(shape) < density
    masks[0] = False
    got = masks_to_boxes(masks)
    assert got.shape == (shape[0], 4)
    np.testing.assert_array_equal(got, reference_boxes(masks))
    np.testing.assert_array_equal(got[0], [0, 0, 0, 0])


def test_masks_to_boxes_inclusive_corners():
    masks = np.zeros((3, 5, 8), bool)
    masks[0, 4, 7] = True  # bottom-right pixel: its own box
    masks[1, 1, 2] = masks[1, 3, 6] = True
    got = masks_to_boxes(masks)
    np.testing.assert_array_equal(got, [[7, 4, 7, 4], [2, 1, 6, 3], [0, 0, 0, 0]])
    assert masks_to_boxes(np.zeros((0, 5, 8), bool)).shape == (0, 4)


@FAST
@given(hnp.arrays(np.bool_, st.tuples(st.integers(1, 5), st.integers(1, 20), st.integers(1, 20))))
def test_masks_to_boxes_property(masks):
    np.testing.assert_array_equal(masks_to_boxes(masks), reference_boxes(masks))


# ---------------------------------------------------------------------------------------------
# NMS
# ---------------------------------------------------------------------------------------------


def reference_iou(a, b) -> Fraction | None:
    """Exact IoU with areas (x1 - x0) * (y1 - y0); None for 0/0 (NaN, never above a threshold)."""
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    inter = Fraction(iw) * Fraction(ih)
    union = Fraction(a[2] - a[0]) * Fraction(a[3] - a[1]) + Fraction(b[2] - b[0]) * Fraction(b[3] - b[1])
    union -= inter
    return None if union == 0 else inter / union


def reference_nms(boxes, scores, threshold: float) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # sorted() is stable: ties by index
    thr = Fraction(threshold)
    suppressed: set[int] = set()
    keep = []
    for pos, i in enumerate(order):
        if i in suppressed:
            continue
        keep.append(i)
        for j in order[pos + 1 :]:
            iou = reference_iou(boxes[i], boxes[j])
            if iou is not None and iou > thr:
                suppressed.add(j)
    return keep


@st.composite
def boxes_and_scores(draw):
    n = draw(st.integers(0, 25))
    coord = st.integers(0, 30)
    boxes = []
    for _ in range(n):
        if boxes and draw(st.booleans()) and draw(st.booleans()):
            boxes.append(list(draw(st.sampled_from(boxes))))  # a duplicate
            continue
        x0, y0 = draw(coord), draw(coord)
        w = draw(st.integers(0, 20))  # 0: zero-area boxes
        h = draw(st.integers(0, 20))
        boxes.append([x0, y0, x0 + w, y0 + h])
    scores = draw(st.lists(st.sampled_from([0.1, 0.25, 0.5, 0.9, 0.95]), min_size=n, max_size=n))
    return boxes, scores


@FAST
@given(boxes_and_scores(), st.sampled_from([0.0, 0.3, 0.5, 0.7, 0.88, 1.0]))
def test_nms_matches_greedy_reference(data, threshold):
    boxes, scores = data
    got = nms(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores), threshold)
    assert got.dtype == np.int64
    assert got.tolist() == reference_nms(boxes, scores, threshold)


@pytest.mark.parametrize("seed", range(3))
def test_nms_random_float_boxes(seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (200, 2))
    wh = rng.uniform(0, 40, (200, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.random(200)
    reference_boxes_exact = [[Fraction(float(v)) for v in b] for b in boxes]  # the float32 values
    got = nms(boxes, scores, 0.5)
    assert got.tolist() == reference_nms(reference_boxes_exact, scores.tolist(), 0.5)
    assert 0 < len(got) < 200


def test_nms_threshold_one_keeps_everything_in_score_order():
    rng = np.random.default_rng(3)
    boxes = np.tile(np.array([[0, 0, 10, 10]], np.float32), (6, 1))  # all identical: IoU 1
    scores = rng.choice([0.2, 0.5, 0.8], size=6)
    got = nms(boxes, scores, 1.0)
    assert got.tolist() == sorted(range(6), key=lambda i: -scores[i])


def test_nms_ties_keep_index_order():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    assert nms(boxes, np.array([0.5, 0.9, 0.9]), 0.5).tolist() == [1]
    assert nms(boxes, np.array([0.5, 0.5, 0.5]), 0.5).tolist() == [0]


def test_nms_threshold_zero():
    boxes = np.array(
        [
            [0, 0, 10, 10],  # kept (top score)
            [9, 9, 20, 20],  # overlaps box 0 by one pixel: suppressed
            [10, 0, 20, 10],  # touches box 0 along an edge: IoU 0, kept
            [30, 30, 30, 40],  # zero area: IoU 0 with everything, kept
            [30, 30, 30, 40],  # its duplicate: 0/0, kept
            [50, 50, 60, 60],  # disjoint: kept
        ],
        np.float32,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    assert nms(boxes, scores, 0.0).tolist() == [0, 2, 3, 4, 5]


def test_nms_empty():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0), 0.7).tolist() == []


# ---------------------------------------------------------------------------------------------
# Crops: edges and uncropping
# ---------------------------------------------------------------------------------------------


def test_is_box_near_crop_edge_hand_made():
    orig = [0, 0, 640, 480]
    top_left = [0, 0, 320, 240]
    boxes = np.array(
        [
            [100, 100, 310, 200],  # right side 10 px from the crop's inner edge: cut by the crop
            [0, 0, 100, 100],  # on the crop's left/top edges, which are the image's: not cut
            [100, 100, 200, 200],  # well inside
            [100, 100, 300, 200],  # exactly atol (20 px) from the inner edge: near
            [100, 100, 299, 200],  # 21 px: not near
            [30, 225, 90, 235],  # bottom 5 px from the crop's bottom edge (inner): cut
        ]
    )
    got = is_box_near_crop_edge(boxes, top_left, orig)
    assert got.tolist() == [True, False, False, True, False, True]

    bottom_right = [300, 200, 640, 480]  # its right/bottom edges are the image's
    boxes = np.array(
        [
            [5, 50, 100, 100],  # x0 = 305 in the image: 5 px from the crop's left edge
            [100, 100, 330, 270],  # reaches x1 = 630, y1 = 470: near the image's edge only
            [100, 100, 200, 200],  # well inside
        ]
    )
    assert is_box_near_crop_edge(boxes, bottom_right, orig).tolist() == [True, False, False]
    # the full-image crop: every crop edge is an image edge
    assert not is_box_near_crop_edge(np.array([[0, 0, 639, 479]]), orig, orig).any()


def reference_uncrop_masks(masks: np.ndarray, crop_box, orig_hw) -> np.ndarray:
    """The official padding: left x0, right W - x1, top y0, bottom H - y1."""
    x0, y0, x1, y1 = crop_box
    h, w = orig_hw
    return np.pad(masks, ((0, 0), (y0, h - y1), (x0, w - x1)))


@pytest.mark.parametrize(
    "crop_box", [[0, 0, 402, 322], [239, 159, 640, 480], [0, 159, 402, 480], [239, 0, 640, 322]]
)
def test_uncrop_masks_places_the_crop(crop_box):
    rng = np.random.default_rng(0)
    x0, y0, x1, y1 = crop_box
    masks = rng.random((2, y1 - y0, x1 - x0)) < 0.3
    got = uncrop_masks(masks, crop_box, (480, 640))
    assert got.shape == (2, 480, 640)
    assert got.dtype == masks.dtype
    np.testing.assert_array_equal(got, reference_uncrop_masks(masks, crop_box, (480, 640)))
    np.testing.assert_array_equal(got[:, y0:y1, x0:x1], masks)
    assert got.sum() == masks.sum()


def test_uncrop_masks_full_image_is_unchanged():
    masks = np.random.default_rng(1).random((3, 48, 64)) < 0.5
    assert uncrop_masks(masks, [0, 0, 64, 48], (48, 64)) is masks


def test_uncrop_boxes_and_points_add_the_offset():
    boxes = np.array([[0, 0, 10, 20], [5, 6, 7, 8]], np.int64)
    got = uncrop_boxes(boxes, [239, 159, 640, 480])
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [[239, 159, 249, 179], [244, 165, 246, 167]])
    points = np.array([[0.5, 1.5], [10.0, 20.0]], np.float32)
    got = uncrop_points(points, [239, 159, 640, 480])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [[239.5, 160.5], [249.0, 179.0]])


# ---------------------------------------------------------------------------------------------
# Small regions
# ---------------------------------------------------------------------------------------------


def test_small_hole_is_filled():
    mask = np.ones((10, 10), bool)
    mask[4:6, 4:6] = False
    got, changed = remove_small_regions(mask, 5, "holes")
    assert changed
    assert got.all()


def test_big_hole_is_kept_small_one_filled():
    mask = np.ones((20, 20), bool)
    mask[3:9, 3:9] = False  # 36 px
    got, changed = remove_small_regions(mask, 10, "holes")
    assert not changed
    np.testing.assert_array_equal(got, mask)
    mask[14, 14] = False  # plus a 1 px hole
    got, changed = remove_small_regions(mask, 10, "holes")
    assert changed
    want = mask.copy()
    want[14, 14] = True
    np.testing.assert_array_equal(got, want)


def test_small_island_is_removed():
    mask = np.zeros((20, 20), bool)
    mask[2:12, 2:12] = True  # 100 px
    mask[16:18, 16:18] = True  # 4 px
    got, changed = remove_small_regions(mask, 10, "islands")
    assert changed
    want = np.zeros_like(mask)
    want[2:12, 2:12] = True
    np.testing.assert_array_equal(got, want)


def test_all_islands_small_keeps_the_largest():
    mask = np.zeros((12, 12), bool)
    mask[1, 1:4] = True  # 3 px
    mask[6:8, 6:9] = True  # 6 px
    mask[10, 10] = True  # 1 px
    got, changed = remove_small_regions(mask, 100, "islands")
    assert changed
    want = np.zeros_like(mask)
    want[6:8, 6:9] = True
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", ["holes", "islands"])
def test_nothing_to_change(mode):
    mask = np.zeros((16, 16), bool)
    mask[2:14, 2:14] = True
    mask[6:10, 6:10] = False  # 16 px hole; the island is 128 px, the outside 112 px
    got, changed = remove_small_regions(mask, 10, mode)
    assert not changed
    np.testing.assert_array_equal(got, mask)


def test_diagonal_pixels_are_one_region():
    mask = np.zeros((10, 10), bool)
    for i in range(6):
        mask[i, i] = True  # 6 px touching only at corners
    mask[8, 1] = mask[8, 2] = True  # a 2 px island
    got, changed = remove_small_regions(mask, 4, "islands")
    assert changed
    want = mask.copy()
    want[8, 1:3] = False
    np.testing.assert_array_equal(got, want)

    holes = ~mask  # the same shapes as holes: the diagonal hole is 6 px, the other one 2 px
    got, changed = remove_small_regions(holes, 4, "holes")
    assert changed
    want = holes.copy()
    want[8, 1:3] = True
    np.testing.assert_array_equal(got, want)


def reference_components(work: np.ndarray) -> list[set[tuple[int, int]]]:
    """8-connected components of the True pixels, by breadth-first search."""
    seen = np.zeros_like(work)
    comps = []
    for start in zip(*np.nonzero(work), strict=True):
        if seen[start]:
            continue
        seen[start] = True
        comp, queue = set(), deque([start])
        while queue:
            y, x = queue.popleft()
            comp.add((y, x))
            for dy, dx in itertools.product((-1, 0, 1), repeat=2):
                ny, nx = y + dy, x + dx
                if 0 <= ny < work.shape[0] and 0 <= nx < work.shape[1] and work[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        comps.append(comp)
    return comps


def reference_remove_small_regions(mask: np.ndarray, min_area: int, mode: str) -> list[np.ndarray]:
    """The official rule; returns every acceptable result (ties for the largest island)."""
    holes = mode == "holes"
    comps = reference_components(mask ^ holes)
    small = [c for c in comps if len(c) < min_area]
    if not small:
        return [mask]

    def paint(base: np.ndarray, comps_, value: bool) -> np.ndarray:
        out = base.copy()
        for comp in comps_:
            for p in comp:
                out[p] = value
        return out

    if holes:
        return [paint(mask, small, True)]
    big = [c for c in comps if len(c) >= min_area]
    if big:
        return [paint(np.zeros_like(mask), big, True)]
    largest = max(len(c) for c in comps)
    return [paint(np.zeros_like(mask), [c], True) for c in comps if len(c) == largest]


@FAST
@given(
    hnp.arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12))),
    st.integers(1, 12),
    st.sampled_from(["holes", "islands"]),
)
def test_remove_small_regions_matches_bfs_reference(mask, min_area, mode):
    got, changed = remove_small_regions(mask, min_area, mode)
    options = reference_remove_small_regions(mask, min_area, mode)
    assert got.shape == mask.shape
    assert got.dtype == np.bool_
    assert any(np.array_equal(got, want) for want in options)
    assert changed == (not (len(options) == 1 and options[0] is mask))


# ---------------------------------------------------------------------------------------------
# Point grids and crop boxes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 4, 7, 32])
def test_point_grid_cell_centres_x_fastest(n):
    got = point_grid(n)
    assert got.shape == (n * n, 2)
    want = np.array([((i + 0.5) / n, (j + 0.5) / n) for j in range(n) for i in range(n)])
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(got[0], [1 / (2 * n), 1 / (2 * n)])


def test_point_grid_small_by_hand():
    np.testing.assert_allclose(point_grid(1), [[0.5, 0.5]])
    np.testing.assert_allclose(point_grid(2), [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])


def test_layer_point_grids():
    grids = layer_point_grids(32, 2, 2)
    assert [len(g) for g in grids] == [32 * 32, 16 * 16, 8 * 8]
    for grid, n in zip(grids, (32, 16, 8), strict=True):
        np.testing.assert_allclose(grid, point_grid(n))
    assert [len(g) for g in layer_point_grids(10, 2, 3)] == [100, 9, 1]  # int(10 / 3), int(10 / 9)
    assert len(layer_point_grids(16, 0, 2)) == 1


def test_crop_boxes_one_layer_by_hand():
    # (480, 640), ratio 512 / 1500, 2 crops per side:
    #   overlap = int(512 / 1500 * 480 * 2 / 2) = int(163.84) = 163
    #   crop_w = ceil((163 + 640) / 2) = 402, crop_h = ceil((163 + 480) / 2) = 322
    #   x0s = [0, 402 - 163] = [0, 239], y0s = [0, 322 - 163] = [0, 159]; x outer, y inner
    boxes, layers = crop_boxes((480, 640), 1, 512 / 1500)
    assert boxes == [
        [0, 0, 640, 480],
        [0, 0, 402, 322],
        [0, 159, 402, 480],  # 159 + 322 = 481, clipped to 480
        [239, 0, 640, 322],  # 239 + 402 = 641, clipped to 640
        [239, 159, 640, 480],
    ]
    assert layers == [0, 1, 1, 1, 1]


def official_crop_boxes(im_size, n_layers: int, overlap_ratio: float):
    """segment-anything's ``generate_crop_boxes``, written out again."""
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    boxes, layer_idxs = [[0, 0, im_w, im_h]], [0]
    for i_layer in range(n_layers):
        n = 2 ** (i_layer + 1)
        overlap = int(overlap_ratio * short_side * (2 / n))
        crop_w = math.ceil((overlap * (n - 1) + im_w) / n)
        crop_h = math.ceil((overlap * (n - 1) + im_h) / n)
        x0s = [int((crop_w - overlap) * i) for i in range(n)]
        y0s = [int((crop_h - overlap) * i) for i in range(n)]
        for x0, y0 in itertools.product(x0s, y0s):
            boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layer_idxs.append(i_layer + 1)
    return boxes, layer_idxs


@pytest.mark.parametrize("hw", [(480, 640), (700, 525), (123, 77), (1, 1), (1500, 2250)])
@pytest.mark.parametrize("n_layers", [0, 1, 2, 3])
def test_crop_boxes_match_official_formula_and_cover(hw, n_layers):
    boxes, layers = crop_boxes(hw, n_layers, 512 / 1500)
    want_boxes, want_layers = official_crop_boxes(hw, n_layers, 512 / 1500)
    assert boxes == want_boxes
    assert layers == want_layers
    assert len(boxes) == sum(4**i for i in range(n_layers + 1))
    h, w = hw
    for layer in range(1, n_layers + 1):
        if min(hw) < 50:
            continue  # tiny images get empty crops, officially too
        cover = np.zeros(hw, np.int64)
        for (x0, y0, x1, y1), lay in zip(boxes, layers, strict=True):
            if lay == layer:
                assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
                cover[y0:y1, x0:x1] += 1
        assert cover.min() >= 1  # every pixel is in some crop
        assert cover.max() >= 2  # neighbouring crops overlap


def test_crop_boxes_two_layers():
    boxes, layers = crop_boxes((480, 640), 2, 512 / 1500)
    assert len(boxes) == 1 + 4 + 16
    assert layers == [0] + [1] * 4 + [2] * 16
    # layer 2: overlap = int(163.84 / 2) = 81, crop_w = ceil((3 * 81 + 640) / 4) = 221,
    # crop_h = ceil((3 * 81 + 480) / 4) = 181; x0 step 140, y0 step 100
    assert boxes[5] == [0, 0, 221, 181]
    assert boxes[6] == [0, 100, 221, 281]  # y varies fastest
    assert boxes[9] == [140, 0, 361, 181]
    assert boxes[-1] == [420, 300, 640, 480]  # 420 + 221 and 300 + 181 clipped
