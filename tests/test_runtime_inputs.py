"""Bad inputs to the runtime predictor: each is refused with its typed error naming the input.

Images (files that are not images, bombs refused from the header), prompts (NaN, far outside
the image, bad labels, flipped boxes, too many points), mask inputs, embeddings of another
checkpoint, graphs that do not belong together, saved embeddings; and the inputs that must work:
1 x 1 and 1 x 5000 images, points just outside the image (checked against the PyTorch path).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam_onnx.errors import (
    EmbeddingFileError,
    ImageTooLargeError,
    InvalidImageError,
    InvalidInputError,
    ModelLoadError,
    ModelMismatchError,
    NoImageError,
)
from sam_onnx.runtime import ImageEmbedding, SamPredictor

H, W = 72, 96  # the embedded test image
PARITY_ATOL = 1e-4  # ONNX vs PyTorch on IoU and low-res logits of the tiny model


@contextlib.contextmanager
def raises_exactly(error: type[Exception], match: str):
    """``pytest.raises`` that also refuses subclasses (an InvalidImageError is an InvalidInputError)."""
    with pytest.raises(error, match=match) as info:
        yield info
    assert type(info.value) is error, f"{type(info.value).__name__} raised, {error.__name__} expected"


@pytest.fixture(scope="module")
def predictor(tiny_export) -> SamPredictor:
    return SamPredictor.from_export(tiny_export.output_dir)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def emb(predictor, image) -> ImageEmbedding:
    return predictor.embed(image)


@pytest.fixture(scope="module")
def reference(tiny_model):
    from sam_onnx.modeling.reference import SamReference

    return SamReference(tiny_model)


@pytest.fixture(scope="module")
def reference_emb(reference, image):
    return reference.embed(image)


@pytest.fixture(scope="module")
def other_export(tmp_path_factory):
    """An export of another checkpoint (seed 1) of the same variant. Unvalidated (4 s instead of
    27 s): only its metadata and its embeddings' identity are used."""
    import torch

    from sam_onnx.export import ExportOptions, export_sam
    from sam_onnx.modeling.random_weights import random_sam

    root = tmp_path_factory.mktemp("other_export")
    torch.save(random_sam("tiny", seed=1).state_dict(), root / "sam_tiny_seed1.pth")
    options = ExportOptions(int8=False, fp16=False, validate=False)
    return export_sam(root / "sam_tiny_seed1.pth", root / "onnx", options)


def link_export(src: Path, dst: Path, *, without: tuple[str, ...] = ()) -> Path:
    """A copy of export directory ``src`` made of symlinks, minus the files ``without``."""
    dst.mkdir()
    for file in src.iterdir():
        if file.name not in without:
            (dst / file.name).symlink_to(file)
    return dst


def assert_parity(onnx_pred, torch_pred) -> None:
    np.testing.assert_allclose(
        onnx_pred.iou_predictions, torch_pred.iou_predictions, rtol=0, atol=PARITY_ATOL
    )
    np.testing.assert_allclose(onnx_pred.low_res_logits, torch_pred.low_res_logits, rtol=0, atol=PARITY_ATOL)


def assert_same_prediction(a, b) -> None:
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.iou_predictions, b.iou_predictions)
    np.testing.assert_array_equal(a.low_res_logits, b.low_res_logits)


# -- images ------------------------------------------------------------------------------------


def truncated_png() -> bytes:
    """The first half of a real 64 x 64 PNG: a valid header, then the data stops."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"hello, I am a text file\n", "unrecognised content"),
        (b"", "unrecognised content"),
        (truncated_png(), "complete, readable image file"),
    ],
    ids=["text", "empty", "truncated-png"],
)
def test_set_image_refuses_unreadable_files(predictor, tmp_path, content, problem):
    path = tmp_path / "photo.png"
    path.write_bytes(content)
    with raises_exactly(InvalidImageError, match=f"image file '{re.escape(str(path))}'.*{problem}"):
        predictor.set_image(path)


def test_set_image_refuses_empty_array(predictor):
    with raises_exactly(InvalidImageError, match=r"invalid image: expected at least 1 x 1 pixels, got 0 x 5"):
        predictor.set_image(np.zeros((0, 5, 3), np.uint8))


def test_one_pixel_image(predictor, reference):
    pixel = np.array([[[200, 30, 90]]], np.uint8)
    emb = predictor.embed(pixel)
    assert (emb.orig_hw, emb.input_hw) == ((1, 1), (1024, 1024))
    pred = predictor.predict(point_coords=[[0, 0]], point_labels=[1], embedding=emb)
    assert pred.masks.shape == (3, 1, 1) and pred.masks.dtype == bool
    single = predictor.predict(point_coords=[[0, 0]], point_labels=[1], multimask_output=False, embedding=emb)
    assert single.masks.shape == (1, 1, 1)
    ref = reference.predict(reference.embed(pixel), point_coords=[[0, 0]], point_labels=[1])
    assert_parity(pred, ref)


@pytest.mark.parametrize(("hw", "input_hw"), [((1, 5000), (1, 1024)), ((5000, 1), (1024, 1))])
def test_extreme_aspect_keeps_one_pixel(predictor, reference, hw, input_hw):
    """Past 2048:1 the official code rounds the short side to 0 and crashes; we keep 1 pixel."""
    img = np.random.default_rng(3).integers(0, 256, (*hw, 3), dtype=np.uint8)
    emb = predictor.set_image(img)
    assert (emb.orig_hw, emb.input_hw) == (hw, input_hw)
    click = [[hw[1] // 3, hw[0] // 3]]
    pred = predictor.predict(point_coords=click, point_labels=[1])
    assert pred.masks.shape == (3, *hw)
    assert pred.low_res_logits.shape == (3, 256, 256)
    assert_parity(pred, reference.predict(reference.embed(img), point_coords=click, point_labels=[1]))


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[int, Path]:
    """Valid PNGs of 12000 and 20000 pixels square, of 20-50 kB; decoded as RGB they would take
    432 MB and 1.2 GB. 20000 x 20000 is past Pillow's own hard limit, 12000 x 12000 is not."""
    folder = tmp_path_factory.mktemp("bombs")
    paths = {}
    for side in (12000, 20000):
        paths[side] = folder / f"bomb{side}.png"
        Image.new("1", (side, side)).save(paths[side])
        assert paths[side].stat().st_size < 200_000
    return paths


BOMB_PROBE = """
import json, resource, sys, time
from sam_onnx.runtime import SamPredictor
model_dir, cases = sys.argv[1], json.loads(sys.argv[2])
results = []
for path, limit in cases:
    kwargs = {} if limit == "default" else {"max_pixels": limit}
    predictor = SamPredictor.from_export(model_dir, **kwargs)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        predictor.set_image(path)
        error = message = None
    except Exception as exc:
        error, message = type(exc).__name__, str(exc)
    seconds = time.perf_counter() - start
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    results.append({"error": error, "message": message, "seconds": seconds, "grown_kib": grown_kib})
print(json.dumps(results))
"""


def test_decompression_bomb_refused_before_decoding(tiny_export, bombs):
    """Run in a fresh torch-free process, whose peak memory is still low: each refusal must leave
    the peak resident memory far below the decoded size, and take well under a second."""
    own_limit = r"at most 10000000 pixels \(max_pixels\), got 12000 x 12000"
    pillow = r"at most {} pixels \(max_pixels, and Pillow's limit\), got Image size \(400000000 pixels\)"
    cases = [  # (file, max_pixels, message)
        (bombs[12000], 10_000_000, own_limit),
        (bombs[20000], 10_000_000, pillow.format(10_000_000)),  # Pillow refuses it in Image.open
        (bombs[20000], "default", pillow.format(178_956_970)),
        (bombs[20000], None, pillow.format(178_956_970)),  # None does not lift Pillow's hard limit
    ]
    argv = [str(tiny_export.output_dir), json.dumps([(str(path), limit) for path, limit, _ in cases])]
    proc = subprocess.run(
        [sys.executable, "-c", BOMB_PROBE, *argv], capture_output=True, text=True, check=True, timeout=120
    )
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for (path, _, pattern), got in zip(cases, results, strict=True):
        assert got["error"] == "ImageTooLargeError", got
        assert re.search(
            f"invalid image file '{re.escape(str(path))}': expected {pattern}", got["message"]
        ), got
        assert got["grown_kib"] < 50_000, f"peak memory grew by {got['grown_kib']} KiB: pixels were decoded"
        assert got["seconds"] < 1.0, got


def test_max_pixels_counts_arrays_too(tiny_export, image):
    small = SamPredictor.from_export(tiny_export.output_dir, max_pixels=H * W - 1)
    with raises_exactly(ImageTooLargeError, match=f"max_pixels.*got {H} x {W} = {H * W}"):
        small.set_image(image)


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda rgb: (rgb.astype(np.uint16) * 257, {}), id="16-bit"),
        pytest.param(lambda rgb: (np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)]), {}), id="rgba"),
        pytest.param(lambda rgb: (np.ascontiguousarray(rgb[..., ::-1]), {"bgr": True}), id="bgr"),
    ],
)
def test_other_layouts_embed_as_rgb(predictor, image, emb, convert):
    array, kwargs = convert(image)
    np.testing.assert_array_equal(predictor.embed(array, **kwargs).embedding, emb.embedding)


def test_grayscale_embeds_as_repeated_rgb(predictor, image):
    gray = image[..., 1]
    rgb = np.repeat(gray[..., None], 3, axis=2)
    np.testing.assert_array_equal(predictor.embed(gray).embedding, predictor.embed(rgb).embedding)


# -- prompts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"point_coords": [[np.nan, 5.0]], "point_labels": [1]}, "point_coords"),
        ({"point_coords": [[5.0, np.inf]], "point_labels": [1]}, "point_coords"),
        ({"point_coords": [[3.0, 4.0], [-np.inf, 5.0]], "point_labels": [1, 0]}, "point_coords"),
        ({"box": [10.0, 5.0, np.nan, 40.0]}, "box"),
    ],
    ids=["nan-point", "inf-point", "minus-inf-second-point", "nan-box"],
)
def test_non_finite_coordinates(predictor, emb, kwargs, name):
    with raises_exactly(
        InvalidInputError, match=f"invalid {name}: expected finite coordinates, got NaN or inf"
    ):
        predictor.predict(**kwargs, embedding=emb)


@pytest.mark.parametrize(
    "point", [(-10, H + 20), (-W, 2 * H), (2 * W, -H)], ids=["near", "corner", "corner2"]
)
def test_points_within_one_image_size_outside_are_used(predictor, emb, reference, reference_emb, point):
    """Documented policy: up to one image size beyond an edge (bounds included) is a valid prompt,
    giving what the official (PyTorch) predictor gives for it."""
    prompt = {"point_coords": [point, (W // 2, H // 2)], "point_labels": [1, 0]}
    pred = predictor.predict(**prompt, embedding=emb)
    assert_parity(pred, reference.predict(reference_emb, **prompt))


@pytest.mark.parametrize(
    ("kwargs", "name", "value"),
    [
        ({"point_coords": [[2 * W + 1, 5]], "point_labels": [1]}, "point_coords", f"[{2 * W + 1}.0, 5.0]"),
        (
            {"point_coords": [[5, 6], [5, -H - 0.5]], "point_labels": [1, 1]},
            "point_coords",
            f"[5.0, {-H - 0.5}]",
        ),
        ({"box": [0, 0, 10, 3 * H]}, "box", f"[10.0, {3 * H}.0]"),
    ],
    ids=["x-right", "y-above", "box-below"],
)
def test_points_far_outside_are_refused(predictor, emb, kwargs, name, value):
    pattern = rf"invalid {name}: expected .*within one image size of the {W} x {H} .*got {re.escape(value)}"
    with raises_exactly(InvalidInputError, match=pattern):
        predictor.predict(**kwargs, embedding=emb)


@pytest.mark.parametrize("label", [4, -2, 0.5, np.nan])
def test_bad_labels(predictor, emb, label):
    with raises_exactly(
        InvalidInputError, match=rf"invalid point_labels: expected values in .*got .*{label}"
    ):
        predictor.predict(point_coords=[[5, 5], [6, 6]], point_labels=[1, label], embedding=emb)


@pytest.mark.parametrize("box", [[50, 10, 20, 40], [10, 40, 50, 20]], ids=["x1-before-x0", "y1-before-y0"])
def test_flipped_box(predictor, emb, box):
    shown = re.escape(str([float(v) for v in box]))
    with raises_exactly(
        InvalidInputError, match=rf"invalid box: expected x0 <= x1 and y0 <= y1.*got {shown}"
    ):
        predictor.predict(box=box, embedding=emb)


def test_no_prompt(predictor, emb):
    with raises_exactly(InvalidInputError, match="invalid prompt: expected at least one point or a box"):
        predictor.predict(embedding=emb)
    mask = np.zeros((1, 256, 256), np.float32)
    with raises_exactly(InvalidInputError, match="invalid prompt: .*mask_input alone is not a prompt"):
        predictor.predict(mask_input=mask, embedding=emb)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"point_coords": [[5, 5]]},
            "invalid point_labels: expected point_coords and point_labels given together",
        ),
        (
            {"point_labels": [1]},
            "invalid point_coords: expected point_coords and point_labels given together",
        ),
        (
            {"point_coords": [[5, 5], [6, 6]], "point_labels": [1, 1, 0]},
            r"invalid point_labels: .*got shape \(3,\)",
        ),
        ({"point_coords": [[5, 5, 1]], "point_labels": [1]}, r"invalid point_coords: .*got shape \(1, 3\)"),
        (
            {"point_coords": np.zeros((0, 2)), "point_labels": []},
            r"invalid point_coords: .*got shape \(0, 2\)",
        ),
    ],
    ids=["coords-only", "labels-only", "lengths", "three-columns", "zero-points"],
)
def test_points_and_labels_must_match(predictor, emb, kwargs, pattern):
    with raises_exactly(InvalidInputError, match=pattern):
        predictor.predict(**kwargs, embedding=emb)


def test_too_many_points_refused_quickly(predictor, emb):
    coords = np.random.default_rng(0).uniform(0, H, (10_000, 2))
    start = time.perf_counter()
    with raises_exactly(
        InvalidInputError, match=r"invalid point_coords: expected at most 1024 points \(max_points\)"
    ):
        predictor.predict(point_coords=coords, point_labels=np.ones(10_000), embedding=emb)
    assert time.perf_counter() - start < 1.0


def test_max_points_is_a_setting(tiny_export, predictor, emb):
    """A predictor opened with max_points=10_000 takes more than the default 1024 points and refuses
    past its own bound. (Decoding all 10,000 points works but takes ~10 s on 2 cores.)"""
    decoder_only = SamPredictor(None, tiny_export.files["decoder_batched"][0], max_points=10_000)
    coords = np.random.default_rng(0).uniform(0, H, (1025, 2))
    labels = np.ones(1025)
    got = decoder_only.predict(coords, labels, embedding=emb)
    assert got.masks.shape == (3, H, W)
    with raises_exactly(InvalidInputError, match=r"at most 10000 points \(max_points\), got 10001"):
        decoder_only.predict(np.zeros((10_001, 2)), np.ones(10_001), embedding=emb)


@pytest.mark.parametrize(
    ("mask", "problem"),
    [
        (np.zeros((1, 128, 128), np.float32), r"expected shape \(1, 256, 256\), got shape \(1, 128, 128\)"),
        (np.zeros((2, 256, 256), np.float32), r"expected shape \(1, 256, 256\), got shape \(2, 256, 256\)"),
        (np.zeros((1, 256, 256), np.int64), "got dtype int64"),
        (np.zeros((1, 256, 256), bool), "got dtype bool"),
        (np.where(np.eye(256)[None], np.nan, 0).astype(np.float32), "expected finite logits, got NaN"),
    ],
    ids=["128", "two-masks", "int", "bool", "nan"],
)
def test_bad_mask_input(predictor, emb, mask, problem):
    with raises_exactly(InvalidInputError, match=f"invalid mask_input: .*{problem}"):
        predictor.predict(point_coords=[[5, 5]], point_labels=[1], mask_input=mask, embedding=emb)


def test_predict_before_set_image_in_a_fresh_thread(predictor, image):
    predictor.set_image(image)  # in this thread: the other thread must not see it
    caught: list[BaseException] = []

    def ask() -> None:
        try:
            predictor.predict(point_coords=[[5, 5]], point_labels=[1])
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=ask)
    thread.start()
    thread.join()
    assert len(caught) == 1 and type(caught[0]) is NoImageError, caught
    assert "set_image" in str(caught[0])


# -- graphs and embeddings that do not belong together ------------------------------------------


def test_encoder_and_decoder_of_other_checkpoints(tiny_export, other_export):
    encoder_a = tiny_export.files["encoder"][0]
    decoder_b = other_export.files["decoder_batched"][0]
    with raises_exactly(ModelMismatchError, match=f"{re.escape(str(decoder_b))}.*checkpoint_sha256"):
        SamPredictor(encoder_a, decoder_b)


def test_embedding_of_another_checkpoint(predictor, other_export, image):
    emb_b = SamPredictor.from_export(other_export.output_dir).embed(image)
    assert emb_b.checkpoint_sha256 != predictor.checkpoint_sha256
    pattern = (
        "invalid embedding: expected one from this model's checkpoint"
        f".*got one from tiny, sha256 {emb_b.checkpoint_sha256[:12]}"
    )
    with raises_exactly(InvalidInputError, match=pattern):
        predictor.predict(point_coords=[[5, 5]], point_labels=[1], embedding=emb_b)
    with raises_exactly(InvalidInputError, match=pattern):
        predictor.set_embedding(emb_b)


def test_embedding_claiming_another_variant_of_the_same_checkpoint(predictor, image, tmp_path):
    """A sidecar that says vit_b where the export (same checkpoint hash) is tiny was accepted
    silently: refused, naming both variants."""
    npy, sidecar = predictor.embed(image).save(tmp_path / "emb.npy")
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "variant": "vit_b"}))
    claimed = ImageEmbedding.load(npy)
    assert claimed.checkpoint_sha256 == predictor.checkpoint_sha256
    pattern = "invalid embedding: expected one of this model's variant 'tiny'.*claims variant 'vit_b'"
    with raises_exactly(InvalidInputError, match=pattern):
        predictor.predict(point_coords=[[5, 5]], point_labels=[1], embedding=claimed)
    with raises_exactly(InvalidInputError, match=pattern):
        predictor.set_embedding(claimed)


def test_single_mask_decoder_refused(tiny_export):
    decoder = tiny_export.files["decoder"][0]
    with raises_exactly(ModelMismatchError, match=f"{re.escape(str(decoder))}.*returns 1 mask"):
        SamPredictor(tiny_export.files["encoder"][0], decoder)


def test_roles_swapped(tiny_export):
    encoder, decoder = tiny_export.files["encoder"][0], tiny_export.files["decoder_batched"][0]
    with raises_exactly(
        ModelMismatchError, match=f"{re.escape(str(decoder))}.*given as the encoder but it is a decoder"
    ):
        SamPredictor(decoder, encoder)


def test_corrupt_graph_in_export_dir(tiny_export, tmp_path):
    model_dir = link_export(tiny_export.output_dir, tmp_path / "onnx", without=("decoder_batched.onnx",))
    (model_dir / "decoder_batched.onnx").write_bytes(b"\x08\x07not an onnx graph" * 50)
    with raises_exactly(ModelLoadError, match="decoder_batched.onnx.*not a loadable ONNX model"):
        SamPredictor.from_export(model_dir)


def test_export_dir_without_the_precision_asked(tiny_export, tmp_path):
    model_dir = link_export(tiny_export.output_dir, tmp_path / "onnx", without=("encoder.fp16.onnx",))
    with raises_exactly(ModelLoadError, match=f"{re.escape(str(model_dir))}.*has no encoder.fp16.onnx"):
        SamPredictor.from_export(model_dir, precision="fp16")
    assert SamPredictor.from_export(model_dir, precision="int8").encoder.path.name == "encoder.int8.onnx"


def test_unknown_precision(tiny_export):
    with raises_exactly(ModelLoadError, match=r"precision must be one of .*got 'fp8'"):
        SamPredictor.from_export(tiny_export.output_dir, precision="fp8")


# -- saved embeddings --------------------------------------------------------------------------


def test_embedding_save_load_round_trip(predictor, emb, tmp_path):
    npy, sidecar = emb.save(tmp_path / "photo", image="photo.png")
    assert (npy.name, sidecar.name) == ("photo.npy", "photo.json")
    loaded = ImageEmbedding.load(tmp_path / "photo.npy")
    np.testing.assert_array_equal(loaded.embedding, emb.embedding)
    assert loaded.embedding.dtype == np.float32
    assert (loaded.orig_hw, loaded.input_hw) == (emb.orig_hw, emb.input_hw) == ((H, W), (768, 1024))
    assert (loaded.variant, loaded.checkpoint_sha256) == ("tiny", predictor.checkpoint_sha256)
    prompt = {"point_coords": [[20, 30]], "point_labels": [1], "box": [5, 5, 60, 50]}
    assert_same_prediction(
        predictor.predict(**prompt, embedding=loaded), predictor.predict(**prompt, embedding=emb)
    )


@pytest.fixture
def saved(emb, tmp_path) -> tuple[Path, Path]:
    return emb.save(tmp_path / "emb")


@pytest.mark.parametrize("missing", ["npy", "json"])
def test_load_with_a_file_missing(saved, missing):
    npy, sidecar = saved
    gone = npy if missing == "npy" else sidecar
    gone.unlink()
    with raises_exactly(EmbeddingFileError, match=f"embedding '{re.escape(str(gone))}': no such file"):
        ImageEmbedding.load(npy)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"garbage, not numpy" * 10, id="garbage"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:40], id="header-cut"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_load_corrupt_npy(saved, damage):
    npy, _ = saved
    npy.write_bytes(damage(npy.read_bytes()))
    with raises_exactly(EmbeddingFileError, match=f"embedding '{re.escape(str(npy))}': not a readable .npy"):
        ImageEmbedding.load(npy)


@pytest.mark.parametrize(
    "text",
    [
        "not json at all",
        "[1, 2, 3]",
        json.dumps(
            {"format": "other-tool", "orig_hw": [72, 96], "variant": "tiny", "checkpoint_sha256": "x"}
        ),
        json.dumps(
            {"format": "sam-onnx-embedding", "orig_hw": [72], "variant": "tiny", "checkpoint_sha256": "x"}
        ),
        json.dumps({"format": "sam-onnx-embedding", "orig_hw": [72, 96]}),
        json.dumps(
            {"format": "sam-onnx-embedding", "orig_hw": ["h", "w"], "variant": "t", "checkpoint_sha256": "x"}
        ),
    ],
    ids=["text", "list", "other-format", "one-side", "no-identity", "non-numeric-size"],
)
def test_load_sidecar_not_ours(saved, text):
    npy, sidecar = saved
    sidecar.write_text(text)
    with raises_exactly(EmbeddingFileError, match=f"embedding '{re.escape(str(sidecar))}': not a sam-onnx"):
        ImageEmbedding.load(npy)


def test_load_sidecar_of_another_format_version(saved):
    npy, sidecar = saved
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "version": 2}))
    with raises_exactly(EmbeddingFileError, match=f"embedding '{re.escape(str(sidecar))}': .*version"):
        ImageEmbedding.load(npy)


@pytest.mark.parametrize(
    ("array", "problem"),
    [
        (
            np.zeros((1, 256, 32, 32), np.float32),
            r"float32 of shape \(1, 256, 64, 64\), got float32 of shape \(1, 256, 32, 32\)",
        ),
        (np.zeros((256, 64, 64), np.float32), r"got float32 of shape \(256, 64, 64\)"),
        (np.zeros((1, 256, 64, 64), np.float64), "got float64 of shape"),
        (np.full((1, 256, 64, 64), np.nan, np.float32), "expected finite values, got NaN"),
    ],
    ids=["small", "no-batch-axis", "float64", "nan"],
)
def test_load_wrong_array(saved, array, problem):
    npy, _ = saved
    np.save(npy, array)
    with raises_exactly(
        EmbeddingFileError, match=f"embedding '{re.escape(str(npy))}': invalid embedding: .*{problem}"
    ):
        ImageEmbedding.load(npy)


# -- batched boxes -----------------------------------------------------------------------------

BOXES = np.array([[5, 5, 40, 30], [0, 0, W - 1, H - 1], [20, 10, 60, 70], [-10, 50, 30, H + 10]], float)


@pytest.mark.parametrize("multimask", [False, True])
def test_predict_boxes_equals_single_calls(predictor, emb, multimask):
    batch = predictor.predict_boxes(BOXES, multimask_output=multimask, embedding=emb)
    logits = predictor.predict_boxes(BOXES, multimask_output=multimask, return_logits=True, embedding=emb)
    m = 3 if multimask else 1
    assert batch.masks.shape == logits.masks.shape == (len(BOXES), m, H, W)
    assert batch.masks.dtype == bool and batch.iou_predictions.shape == (len(BOXES), m)
    np.testing.assert_array_equal(batch.masks, logits.masks > 0)
    for i, box in enumerate(BOXES):
        one = predictor.predict(box=box, multimask_output=multimask, return_logits=True, embedding=emb)
        # B > 1 may take other kernels than B = 1, and one predict() takes the fast decoder pair
        # (the same values reordered: tests/test_fast_decoder.py): equal to float32 rounding
        np.testing.assert_allclose(logits.masks[i], one.masks, rtol=0, atol=3e-5)
        np.testing.assert_allclose(batch.iou_predictions[i], one.iou_predictions, rtol=0, atol=1e-6)
        np.testing.assert_allclose(batch.low_res_logits[i], one.low_res_logits, rtol=0, atol=3e-5)
        confident = np.abs(one.masks) > 1e-4  # a mask pixel may flip only where its logit is ~0
        np.testing.assert_array_equal(batch.masks[i][confident], one.masks[confident] > 0)


def test_predict_boxes_names_the_flipped_box(predictor, emb):
    boxes = BOXES.copy()
    boxes[2] = [60, 10, 20, 70]
    with raises_exactly(
        InvalidInputError,
        match=r"invalid boxes: expected x0 <= x1.*got \[60\.0, 10\.0, 20\.0, 70\.0\] \(box 2\)",
    ):
        predictor.predict_boxes(boxes, embedding=emb)
