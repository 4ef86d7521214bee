"""Property-based tests (hypothesis): for any input, prompt validation, coordinate transforms, RLE
and image decoding give a valid result or a typed error — never another exception, never a hang.

Every test body runs under :func:`no_hang` (a SIGALRM deadline), so a hang fails the test instead of
stalling the suite.
"""

from __future__ import annotations

import contextlib
import io
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from sam_onnx.errors import EmbeddingFileError, InvalidImageError, InvalidInputError
from sam_onnx.images import read_image_bytes
from sam_onnx.preprocess import resized_hw, scale_boxes_xyxy, scale_coords_xy
from sam_onnx.runtime.amg.rle import coco_decode, coco_encode, masks_to_rle, rle_area, rle_to_mask
from sam_onnx.runtime.core.embedding import ImageEmbedding
from sam_onnx.runtime.core.prompts import check_box, check_mask_input, check_points

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HANG_S = 20


@contextlib.contextmanager
def no_hang(seconds: int = HANG_S):
    """Fail (TimeoutError) if the block runs longer than ``seconds``."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


sizes = st.tuples(st.integers(1, 5000), st.integers(1, 5000))
any_dtype = st.sampled_from(
    [np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8, np.bool_, np.complex64]
)
any_floats = st.floats(allow_nan=True, allow_infinity=True, width=32)


def arrays_of_any_shape(max_dims: int = 3):
    return any_dtype.flatmap(
        lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=5))
    )


# --- prompts -------------------------------------------------------------------------------------
@SETTINGS
@given(coords=arrays_of_any_shape(), labels=arrays_of_any_shape(2), hw=sizes)
def test_any_points_give_valid_prompts_or_typed_errors(coords, labels, hw):
    with no_hang():
        try:
            xy, lab = check_points(coords, labels, hw)
        except InvalidInputError as exc:
            assert exc.args and str(exc)
            return
    assert np.asarray(coords).dtype.kind != "c" and np.asarray(labels).dtype.kind != "c"
    assert xy.shape == (len(lab), 2) and np.isfinite(xy).all()
    assert set(np.unique(lab).tolist()) <= {-1, 0, 1, 2, 3}
    h, w = hw
    assert ((xy[:, 0] >= -w) & (xy[:, 0] <= 2 * w) & (xy[:, 1] >= -h) & (xy[:, 1] <= 2 * h)).all()


@SETTINGS
@given(box=st.one_of(arrays_of_any_shape(2), st.lists(any_floats, max_size=6), st.text(max_size=5)), hw=sizes)
def test_any_box_gives_a_valid_box_or_a_typed_error(box, hw):
    with no_hang():
        try:
            out = check_box(box, hw)
        except InvalidInputError:
            return
    assert out.shape[-1] == 4 and np.isfinite(out).all()
    assert (out[..., 2] >= out[..., 0]).all() and (out[..., 3] >= out[..., 1]).all()


@SETTINGS
@given(mask=arrays_of_any_shape(4))
def test_any_mask_input_is_refused_unless_it_is_low_res_logits(mask):
    with no_hang():
        try:
            out = check_mask_input(mask)
        except InvalidInputError:
            return
    assert out.shape == (1, 1, 256, 256)  # only a 256 x 256 float array gets here


@SETTINGS
@given(value=st.floats(-1e6, 1e6, allow_nan=False) | st.just(np.nan) | st.just(np.inf), hw=sizes)
def test_mask_input_of_the_right_shape_with_any_values(value, hw):
    mask = np.full((1, 256, 256), value, np.float32)
    try:
        out = check_mask_input(mask)
    except InvalidInputError as exc:
        assert not np.isfinite(value) and "finite" in str(exc)
        return
    assert np.array_equal(out[0], mask)


# --- coordinate transforms -------------------------------------------------------------------------
@SETTINGS
@given(hw=st.tuples(st.integers(1, 200_000), st.integers(1, 200_000)))
def test_resized_size_has_long_side_1024_and_keeps_the_aspect(hw):
    h, w = hw
    nh, nw = resized_hw(hw)
    assert max(nh, nw) == 1024 and min(nh, nw) >= 1
    short, new_short = min(h, w), min(nh, nw)
    exact = short * 1024 / max(h, w)
    assert abs(new_short - max(exact, 1)) <= 0.5 + 1e-9  # rounded, never below one pixel


@SETTINGS
@given(hw=sizes, frac=st.tuples(st.floats(-1, 2), st.floats(-1, 2)))
def test_coordinates_scale_with_the_image(hw, frac):
    h, w = hw
    nh, nw = resized_hw(hw)
    point = np.array([[frac[0] * w, frac[1] * h]])
    out = scale_coords_xy(point, hw)
    np.testing.assert_allclose(out[0], [frac[0] * nw, frac[1] * nh], rtol=1e-5, atol=1e-2)
    corners = scale_coords_xy(np.array([[0, 0], [w, h]]), hw)
    np.testing.assert_allclose(corners, [[0, 0], [nw, nh]], atol=1e-3)
    box = scale_boxes_xyxy(np.array([0, 0, w, h]), hw)
    np.testing.assert_allclose(box, [0, 0, nw, nh], atol=1e-3)


# --- RLE -----------------------------------------------------------------------------------------
masks = hnp.arrays(np.bool_, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=24))


@SETTINGS
@given(masks=masks)
def test_rle_round_trips(masks):
    with no_hang():
        rles = masks_to_rle(masks)
        for mask, rle in zip(masks, rles, strict=True):
            assert np.array_equal(rle_to_mask(rle), mask)
            assert rle_area(rle) == int(mask.sum())
            coco = coco_encode(rle)
            assert coco_decode(coco) == {"size": rle["size"], "counts": [int(c) for c in rle["counts"]]}


@SETTINGS
@given(counts=st.lists(st.integers(-5, 50), max_size=12), h=st.integers(0, 8), w=st.integers(0, 8))
def test_any_rle_counts_decode_or_are_refused(counts, h, w):
    with no_hang():
        try:
            mask = rle_to_mask({"size": [h, w], "counts": counts})
        except InvalidInputError:
            assert sum(counts) != h * w or min(counts, default=0) < 0
            return
    assert mask.shape == (h, w) and int(mask.sum()) == sum(counts[1::2])


@SETTINGS
@given(
    text=st.one_of(st.text(max_size=40), st.binary(max_size=40)),
    hw=st.tuples(st.integers(0, 9), st.integers(0, 9)),
)
def test_any_coco_string_decodes_or_is_refused(text, hw):
    with no_hang():
        try:
            rle = coco_decode({"size": list(hw), "counts": text})
        except InvalidInputError:
            return
    assert all(isinstance(c, int) for c in rle["counts"])


# --- image decoding ------------------------------------------------------------------------------
def _encoded(fmt: str, seed: int) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    return buf.getvalue()


VALID = {fmt: _encoded(fmt, i) for i, fmt in enumerate(("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"))}


def _decode_or_refuse(data: bytes) -> None:
    with no_hang():
        try:
            image = read_image_bytes(data, "fuzzed", max_pixels=4_000_000)
        except InvalidImageError as exc:
            assert "fuzzed" in str(exc)
            return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.flags.c_contiguous


@SETTINGS
@given(data=st.binary(max_size=4096))
def test_random_bytes_decode_or_are_refused(data):
    _decode_or_refuse(data)


@SETTINGS
@given(
    fmt=st.sampled_from(sorted(VALID)),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.integers(0, 10_000) | st.none(),
)
def test_damaged_image_files_decode_or_are_refused(fmt, flips, cut):
    data = bytearray(VALID[fmt])
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data)]
    _decode_or_refuse(bytes(data))


# --- saved embeddings ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_embedding(tmp_path_factory):
    emb = ImageEmbedding(
        np.zeros((1, 256, 64, 64), np.float32), (30, 40), variant="tiny", checkpoint_sha256="ab"
    )
    npy, sidecar = emb.save(tmp_path_factory.mktemp("emb") / "e.npy")
    return npy.read_bytes(), sidecar.read_text()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["npy", "json"]), data=st.binary(max_size=300), keep=st.integers(0, 400))
def test_damaged_embedding_files_are_refused(saved_embedding, tmp_path, which, data, keep):
    npy, sidecar = saved_embedding
    target = tmp_path / "e.npy"
    target.write_bytes(npy)
    (tmp_path / "e.json").write_text(sidecar)
    damaged = (npy if which == "npy" else sidecar.encode())[:keep] + data
    assume(damaged != (npy if which == "npy" else sidecar.encode()))
    (target if which == "npy" else tmp_path / "e.json").write_bytes(damaged)
    with no_hang():
        try:
            emb = ImageEmbedding.load(target)
        except EmbeddingFileError as exc:
            assert "e.npy" in str(exc) or "e.json" in str(exc)
            return
    # a sidecar edit that still says the same thing (e.g. extra whitespace) may load: it is valid
    assert emb.orig_hw == (30, 40) and emb.embedding.shape == (1, 256, 64, 64)


@pytest.mark.parametrize(
    "tail",
    [b"\x00" * 16 + b"{", b"{'descr': '<f4', 'fortran_order': False, 'shape': (1,"],
    ids=["null-bytes-in-header", "unterminated-header"],
)
def test_npy_headers_numpy_cannot_parse_are_refused(saved_embedding, tmp_path, tail):
    """Found by the property above: numpy raises SyntaxError / TokenError on such headers."""
    npy, sidecar = saved_embedding
    (tmp_path / "e.npy").write_bytes(npy[:111] + tail)
    (tmp_path / "e.json").write_text(sidecar)
    with pytest.raises(EmbeddingFileError, match=r"e\.npy"):
        ImageEmbedding.load(tmp_path / "e.npy")
