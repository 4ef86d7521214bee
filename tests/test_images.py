"""Image reading for the runtime: layouts, 16-bit, EXIF, and refusals with typed errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sam_onnx.errors import ImageTooLargeError, InvalidImageError
from sam_onnx.images import load_image, read_image_file
from tests.conftest import IMAGES


@pytest.mark.parametrize("image", IMAGES)
def test_golden_png_reads_as_golden_array(reference_dir, golden, image):
    (path,) = (reference_dir / "images").glob(f"{image}_*.png")
    got = load_image(path)
    np.testing.assert_array_equal(got, golden[f"{image}/image"])


def test_grayscale_alpha_and_bgr():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    gray = rgb[..., 0]
    np.testing.assert_array_equal(load_image(gray), np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_array_equal(load_image(gray[..., None]), load_image(gray))
    rgba = np.concatenate([rgb, np.full((5, 7, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(load_image(rgba), rgb)
    np.testing.assert_array_equal(load_image(rgb[..., ::-1], bgr=True), rgb)
    np.testing.assert_array_equal(load_image(Image.fromarray(rgba)), rgb)
    assert load_image(rgb[..., ::-1], bgr=True).flags.c_contiguous


def test_sixteen_bit_scaled_by_257():
    arr = np.array([[0, 128, 257, 65535], [32896, 1000, 65278, 65407]], np.uint16)
    got = load_image(arr)[..., 0]
    np.testing.assert_array_equal(got, np.round(arr / 257).astype(np.uint8))
    assert got[0, 3] == 255 and got[0, 2] == 1


def test_sixteen_bit_png_file(tmp_path):
    arr = (np.arange(12, dtype=np.uint16) * 5000).reshape(3, 4)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(read_image_file(tmp_path / "deep.png")[..., 0], np.round(arr / 257))


def test_exif_orientation_applied(tmp_path):
    img = Image.fromarray(np.zeros((2, 5, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "rotated.jpg", exif=exif)
    assert read_image_file(tmp_path / "rotated.jpg").shape == (5, 2, 3)


def test_tiny_and_thin_images_accepted():
    assert load_image(np.zeros((1, 1, 3), np.uint8)).shape == (1, 1, 3)
    assert load_image(np.zeros((1, 5000), np.uint8)).shape == (1, 5000, 3)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((0, 4, 3), np.uint8), "at least 1 x 1"),
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.zeros((4,), np.uint8), "shape"),
        (np.zeros((4, 4, 3), np.float32), "dtype uint8 or uint16"),
    ],
)
def test_bad_arrays(array, message):
    with pytest.raises(InvalidImageError, match=message):
        load_image(array)


def test_not_an_image_source():
    with pytest.raises(InvalidImageError, match="numpy array, a PIL image or a file path"):
        load_image(42)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "unrecognised content"), (b"hello, I am text", "unrecognised content")],
)
def test_files_that_are_not_images(tmp_path, content, message):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(InvalidImageError, match=message) as info:
        read_image_file(path)
    assert "x.png" in str(info.value)


def test_truncated_file(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InvalidImageError, match="complete, readable image"):
        read_image_file(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InvalidImageError, match="no such file"):
        read_image_file(tmp_path / "gone.png")
    with pytest.raises(InvalidImageError, match="a directory"):
        read_image_file(tmp_path)


@pytest.mark.parametrize(("side", "max_pixels"), [(20000, None), (3000, 1_000_000)])
def test_decompression_bomb_refused_from_header(tmp_path, monkeypatch, side, max_pixels):
    """A huge PNG that is tiny on disk is refused from its header; no pixel is decoded.

    20000 x 20000 passes Pillow's own hard limit even with ``max_pixels=None``; 3000 x 3000 passes
    a configured limit of 1 MP."""
    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path)
    assert path.stat().st_size < 200_000

    def no_decode(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", no_decode)
    with pytest.raises(ImageTooLargeError, match="bomb" if max_pixels is None else "max_pixels"):
        read_image_file(path, max_pixels=max_pixels)
