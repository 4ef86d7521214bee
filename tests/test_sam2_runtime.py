"""The torch-free runtime on a SAM 2 export (the tiny variant, random weights): the predictor
against the PyTorch reference of the official SAM2ImagePredictor, embeddings on disk, the
automatic generator's SAM 2 options, the CLI's JSON, and the hostile inputs of mixing families.
The SAM 2.1 kit's goldens are in tests/test_sam2_runtime_golden.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from sam_onnx.errors import EmbeddingFileError, InvalidInputError, ModelMismatchError
from sam_onnx.export.validate import synthetic_image
from sam_onnx.runtime import SamPredictor
from sam_onnx.runtime.amg import AutomaticMaskGenerator
from sam_onnx.runtime.cli import main
from sam_onnx.runtime.core.embedding import ImageEmbedding
from sam_onnx.runtime.core.graphs import Graph, check_feeds
from sam_onnx.runtime.core.prompts import decoder_feeds
from sam_onnx.runtime.core.session import SessionConfig

ATOL = 1e-4  # low-res logits and IoU against the PyTorch reference (the kit's decoder tolerance)
HW = (45, 67)
PROMPTS = {
    "point_multi": dict(point_coords=[[20.5, 30.0]], point_labels=[1], multimask_output=True),
    "point_single": dict(point_coords=[[20.5, 30.0]], point_labels=[1], multimask_output=False),
    "three_points": dict(
        point_coords=[[5, 5], [60, 40], [30, 20]], point_labels=[1, 1, 0], multimask_output=False
    ),
    "box": dict(box=[3, 4, 50, 40], multimask_output=False),
    "box_and_point": dict(
        point_coords=[[10, 30]], point_labels=[0], box=[3, 4, 50, 40], multimask_output=True
    ),
}


@pytest.fixture(scope="module")
def predictor(sam2_tiny_export):
    return SamPredictor.from_export(sam2_tiny_export.output_dir)


@pytest.fixture(scope="module")
def image():
    return synthetic_image(HW, seed=7)


@pytest.fixture(scope="module")
def emb(predictor, image):
    return predictor.embed(image)


@pytest.fixture(scope="module")
def reference(sam2_tiny_checkpoint):
    from sam_onnx.modeling import load_sam2
    from sam_onnx.modeling.sam2_reference import Sam2Reference

    return Sam2Reference(load_sam2(sam2_tiny_checkpoint))


@pytest.fixture(scope="module")
def reference_emb(reference, image):
    return reference.embed(image)


def assert_same(got, want, masks_too: bool = True) -> None:
    np.testing.assert_allclose(got.iou_predictions, want.iou_predictions, rtol=0, atol=ATOL)
    np.testing.assert_allclose(got.low_res_logits, want.low_res_logits, rtol=0, atol=ATOL)
    if masks_too:
        np.testing.assert_allclose(got.masks, want.masks, rtol=0, atol=ATOL)


def test_family_and_embedding(predictor, emb, reference_emb):
    assert predictor.family == "sam2" and predictor.variant == "hiera_tiny"
    assert emb.family == "sam2" and emb.orig_hw == HW and emb.input_hw == (1024, 1024)
    features = reference_emb.features
    for got, want in zip((emb.embedding, *emb.high_res_feats), features, strict=True):
        np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-3)


@pytest.mark.parametrize("name", PROMPTS)
def test_predict_matches_the_pytorch_reference(predictor, emb, reference, reference_emb, name):
    """Logits, IoU and the token choice (SAM 2's single-mask rule) of the official predictor."""
    prompt = PROMPTS[name]
    got = predictor.predict(**prompt, return_logits=True, embedding=emb)
    want = reference.predict(reference_emb, **prompt, return_logits=True)
    assert got.masks.shape == want.masks.shape == (3 if prompt["multimask_output"] else 1, *HW)
    assert_same(got, want)


def test_refinement_and_normalized_coords(predictor, emb, reference, reference_emb):
    first = predictor.predict(**PROMPTS["point_multi"], embedding=emb)
    mask_input = first.low_res_logits[np.argmax(first.iou_predictions)][None]
    assert np.abs(mask_input).max() <= 32.0  # clamped, as the official predictor returns them
    prompt = dict(point_coords=[[20.5, 30.0], [40, 10]], point_labels=[1, 1], mask_input=mask_input)
    got = predictor.predict(**prompt, multimask_output=False, return_logits=True, embedding=emb)
    want = reference.predict(reference_emb, **prompt, multimask_output=False, return_logits=True)
    assert_same(got, want)
    h, w = HW
    norm = dict(
        point_coords=np.array([[20.5 / w, 30.0 / h]]),
        point_labels=[1],
        box=np.array([3 / w, 4 / h, 50 / w, 40 / h]),
    )
    got = predictor.predict(**norm, normalize_coords=False, return_logits=True, embedding=emb)
    want = reference.predict(reference_emb, **norm, normalize_coords=False, return_logits=True)
    assert_same(got, want)


def test_predict_boxes_rows_equal_single_calls(predictor, emb):
    boxes = np.array([[3, 4, 50, 40], [0, 0, 66, 44], [10, 10, 20, 30]], np.float64)
    batched = predictor.predict_boxes(boxes, return_logits=True, embedding=emb)
    assert batched.masks.shape == (3, 1, *HW)
    for i, box in enumerate(boxes):
        single = predictor.predict(box=box, multimask_output=False, return_logits=True, embedding=emb)
        assert_same(
            type(single)(batched.masks[i], batched.iou_predictions[i], batched.low_res_logits[i]), single
        )


def test_io_binding_gives_the_same_masks(sam2_tiny_export, emb, image):
    bound = SamPredictor.from_export(sam2_tiny_export.output_dir, io_binding=True)
    got_emb = bound.embed(image)
    assert got_emb.device_value is not None and len(got_emb.device_value) == 3
    got = bound.predict(**PROMPTS["box"], return_logits=True, embedding=got_emb)
    want = bound.predict(**PROMPTS["box"], return_logits=True, embedding=emb)
    assert_same(got, want)
    np.testing.assert_array_equal(got_emb.high_res_feats[1], emb.high_res_feats[1])


def test_embedding_round_trip_and_family_check(predictor, emb, tmp_path, tiny_predictor):
    npy, sidecar = emb.save(tmp_path / "img", image="img.png")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["img.high_res_feats_0.npy", "img.high_res_feats_1.npy", "img.json", "img.npy"]
    meta = json.loads(sidecar.read_text())
    assert (meta["family"], meta["version"], meta["input_hw"]) == ("sam2", 2, [1024, 1024])
    loaded = ImageEmbedding.load(npy, family="sam2")
    for got, want in zip(
        (loaded.embedding, *loaded.high_res_feats), (emb.embedding, *emb.high_res_feats), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    got = predictor.predict(**PROMPTS["box"], embedding=loaded)
    np.testing.assert_array_equal(got.masks, predictor.predict(**PROMPTS["box"], embedding=emb).masks)
    with pytest.raises(EmbeddingFileError, match=r"is a SAM 2 embedding .*this model is SAM v1"):
        ImageEmbedding.load(npy, family="sam")
    (tmp_path / "img.high_res_feats_1.npy").unlink()
    with pytest.raises(EmbeddingFileError, match=r"high_res_feats_1.npy.*no such file"):
        ImageEmbedding.load(npy)


def test_embedding_of_the_other_family_is_refused(predictor, emb, tiny_predictor, image, tmp_path):
    v1 = tiny_predictor.embed(image)
    with pytest.raises(
        InvalidInputError, match=r"expected a SAM 2 embedding.*got a SAM v1 embedding of tiny"
    ):
        predictor.predict(**PROMPTS["box"], embedding=v1)
    with pytest.raises(
        InvalidInputError, match=r"expected a SAM v1 embedding.*got a SAM 2 embedding of hiera_tiny"
    ):
        tiny_predictor.set_embedding(emb)
    v1_path, _ = v1.save(tmp_path / "v1")
    assert "family" in json.loads((tmp_path / "v1.json").read_text())
    with pytest.raises(EmbeddingFileError, match=r"is a SAM v1 embedding \(tiny\); this model is SAM 2"):
        ImageEmbedding.load(v1_path, family="sam2")


def test_v1_decoder_with_a_sam2_encoder_is_refused(sam2_tiny_export, tiny_export, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(sam2_tiny_export.output_dir, mixed)
    shutil.copy(tiny_export.files["decoder_batched"][0], mixed / "decoder_batched.onnx")
    with pytest.raises(ModelMismatchError, match=r"is a SAM v1 decoder \(family 'sam'\).*is SAM 2"):
        SamPredictor.from_export(mixed)


def test_sam2_decoder_fed_v1_feeds_names_the_missing_inputs(sam2_tiny_export, tiny_predictor, image):
    decoder = Graph.open(sam2_tiny_export.files["decoder_batched"][0], SessionConfig(), role="decoder")
    v1 = tiny_predictor.embed(image)
    feeds = {
        "image_embeddings": v1.embedding,
        **decoder_feeds(v1.orig_hw, np.array([[5.0, 5.0]]), np.array([1]), None, None),
    }
    with pytest.raises(
        InvalidInputError, match=r"expected all of .*got none for high_res_feats_0, high_res_feats_1"
    ):
        check_feeds(decoder, feeds)


def test_m2m_refines_each_mask_with_its_own_logits(predictor, image, emb):
    """One click, use_m2m: each of its three masks is the single-mask prediction of that click
    with the first pass's low-res logits as mask_input (nothing filtered: thresholds 0)."""
    options = dict(point_grids=(np.array([[0.3, 0.6]]),), points_per_side=None, pred_iou_thresh=0.0)
    options.update(stability_score_thresh=0.0, box_nms_thresh=1.0, output_mode="binary_mask")
    anns = AutomaticMaskGenerator(predictor, use_m2m=True, **options).generate(image)
    h, w = HW
    point = np.array([[0.3 * w, 0.6 * h]], np.float32)
    first = predictor.predict(point, [1], multimask_output=True, embedding=emb)
    refined = [
        predictor.predict(
            point, [1], mask_input=low[None], multimask_output=False, return_logits=True, embedding=emb
        )
        for low in first.low_res_logits
    ]
    want = sorted(((float(r.iou_predictions[0]), r.masks[0] > 0) for r in refined), key=lambda x: -x[0])
    assert len(anns) == 3
    for ann, (iou, mask) in zip(anns, want, strict=True):
        assert ann["predicted_iou"] == pytest.approx(iou, abs=1e-5)
        np.testing.assert_array_equal(ann["segmentation"], mask)
        assert ann["point_coords"] == [[float(point[0, 0]), float(point[0, 1])]]


def test_amg_family_defaults_and_options(predictor, tiny_predictor, image):
    assert AutomaticMaskGenerator(predictor).options.pred_iou_thresh == 0.8
    assert AutomaticMaskGenerator(tiny_predictor).options.pred_iou_thresh == 0.88
    single = AutomaticMaskGenerator(
        predictor,
        points_per_side=2,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        box_nms_thresh=1.0,
        multimask_output=False,
    )
    assert len(single.generate(image)) == 4  # one mask per click
    with pytest.raises(InvalidInputError, match=r"use_m2m: expected False for a SAM v1 model"):
        AutomaticMaskGenerator(tiny_predictor, use_m2m=True)
    with pytest.raises(InvalidInputError, match=r"multimask_output: expected True for a SAM v1 model"):
        AutomaticMaskGenerator(tiny_predictor, multimask_output=False)
    with pytest.raises(InvalidInputError, match=r"min_mask_region_area: expected 0 for a SAM 2 model"):
        AutomaticMaskGenerator(predictor, min_mask_region_area=10)


def test_cli_outputs_name_family_and_variant(sam2_tiny_export, image, tmp_path):
    from PIL import Image

    path = tmp_path / "img.png"
    Image.fromarray(image).save(path)
    model = ["-m", str(sam2_tiny_export.output_dir), "-q"]
    assert main(["predict", str(path), *model, "--box", "3,4,50,40", "-o", str(tmp_path / "p")]) == 0
    info = json.loads((tmp_path / "p" / "img.json").read_text())["model"]
    assert (info["family"], info["variant"]) == ("sam2", "hiera_tiny")
    assert main(["embed", str(path), *model, "-o", str(tmp_path / "e.npy")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["family"] == "sam2"
    again = ["predict", str(path), *model, "--point", "20,30", "--embedding", str(tmp_path / "e.npy")]
    assert main([*again, "-o", str(tmp_path / "q")]) == 0
    amg = ["amg", str(path), *model, "--points-per-side", "2", "--pred-iou-thresh", "0", "--use-m2m"]
    assert main([*amg, "--stability-score-thresh", "0", "-o", str(tmp_path / "a")]) == 0
    data = json.loads((tmp_path / "a" / "img.json").read_text())
    assert data["model"] == {"family": "sam2", "variant": "hiera_tiny"} and data["annotations"]


def test_normalized_coords_are_refused_for_sam_v1(tiny_predictor, image):
    emb = tiny_predictor.embed(image)
    with pytest.raises(InvalidInputError, match=r"normalize_coords: expected True for a SAM v1 model"):
        tiny_predictor.predict([[0.5, 0.5]], [1], normalize_coords=False, embedding=emb)


def test_threads_each_see_their_own_image(predictor):
    """Two threads, each set_image + predict on its own image, as often as sequential calls."""
    from concurrent.futures import ThreadPoolExecutor

    images = [synthetic_image((40, 60), seed=1), synthetic_image((70, 30), seed=2)]
    box = np.array([2, 3, 25, 30])
    want = [
        predictor.predict(box=box, return_logits=True, embedding=predictor.embed(i)).masks for i in images
    ]

    def run(image):
        predictor.set_image(image)
        return [predictor.predict(box=box, return_logits=True).masks for _ in range(3)]

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, images))
    for got, expected in zip(results, want, strict=True):
        for masks in got:
            np.testing.assert_array_equal(masks, expected)
