"""Ways of opening the predictor, against the PyTorch reference path of the same tiny model."""

from __future__ import annotations

import numpy as np
import pytest

from sam_onnx.errors import InvalidInputError
from sam_onnx.runtime import ImageEmbedding, Prediction, SamPredictor

ATOL = 1e-4  # ONNX vs PyTorch, IoU and low-res logits
CLICK = {"point_coords": np.array([[30.0, 20.0]]), "point_labels": np.array([1])}


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(5).integers(0, 256, (70, 110, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def reference(tiny_model, image):
    from sam_onnx.modeling.reference import SamReference

    ref = SamReference(tiny_model)
    return ref, ref.embed(image)


@pytest.fixture(scope="module")
def variant_exports(tiny_checkpoint, tmp_path_factory):
    """The tiny model with a uint8-input encoder and a multimask decoder.onnx, and no batched
    decoder (unvalidated here: the tests below compare with PyTorch themselves)."""
    from sam_onnx.export import ExportOptions, export_sam

    out = tmp_path_factory.mktemp("variants") / "onnx"
    options = ExportOptions(encoder_input="uint8", multimask=True, batched_decoder=False, validate=False)
    return export_sam(tiny_checkpoint, out, options)


def assert_matches_reference(pred, ref_pred):
    np.testing.assert_array_equal(pred.masks.shape, ref_pred.masks.shape)
    np.testing.assert_allclose(pred.iou_predictions, ref_pred.iou_predictions, rtol=0, atol=ATOL)
    np.testing.assert_allclose(pred.low_res_logits, ref_pred.low_res_logits, rtol=0, atol=ATOL)


def test_uint8_encoder_and_multimask_decoder(variant_exports, reference, image):
    """An export with the in-graph preprocessing and a 4-token decoder.onnx serves the predictor."""
    ref, ref_emb = reference
    predictor = SamPredictor.from_export(variant_exports.output_dir)
    assert predictor.encoder.metadata["encoder_input"] == "uint8"
    assert predictor.decoder.path.name == "decoder.onnx" and not predictor.batched
    emb = predictor.embed(image)
    np.testing.assert_allclose(emb.embedding, ref_emb.embedding.numpy(), rtol=0, atol=1e-3)
    for multimask in (True, False):
        pred = predictor.predict(**CLICK, multimask_output=multimask, embedding=emb)
        assert_matches_reference(pred, ref.predict(ref_emb, **CLICK, multimask_output=multimask))
    boxes = np.array([[5, 5, 60, 50], [20, 10, 100, 69]])
    many = predictor.predict_boxes(boxes, embedding=emb)  # one decoder call per box here
    for i, box in enumerate(boxes):
        assert_matches_reference(
            Prediction(many.masks[i], many.iou_predictions[i], many.low_res_logits[i]),
            ref.predict(ref_emb, box=box, multimask_output=False),
        )


def test_decoder_only_predictor_uses_saved_embeddings(tiny_export, reference, image, tmp_path):
    ref, ref_emb = reference
    full = SamPredictor.from_export(tiny_export.output_dir)
    full.embed(image).save(tmp_path / "emb")
    decoder_only = SamPredictor(None, tiny_export.files["decoder_batched"][0])
    decoder_only.set_embedding(ImageEmbedding.load(tmp_path / "emb.npy"))
    assert_matches_reference(decoder_only.predict(**CLICK), ref.predict(ref_emb, **CLICK))
    with pytest.raises(InvalidInputError, match="encoder=None"):
        decoder_only.embed(image)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_graphs_open_and_stay_close(tiny_export, reference, image, precision):
    _, ref_emb = reference
    predictor = SamPredictor.from_export(tiny_export.output_dir, precision=precision)
    assert predictor.encoder.metadata["precision"] == precision
    emb = predictor.embed(image)
    cosine = np.dot(emb.embedding.ravel(), ref_emb.embedding.numpy().ravel()) / (
        np.linalg.norm(emb.embedding) * np.linalg.norm(ref_emb.embedding.numpy())
    )
    assert cosine > 0.99, cosine


def test_refinement_chain(tiny_export, reference, image):
    """Feed the best low-res mask back as mask_input, as the official notebook does."""
    ref, ref_emb = reference
    predictor = SamPredictor.from_export(tiny_export.output_dir)
    predictor.set_image(image)
    first = predictor.predict(**CLICK)
    best = first.low_res_logits[[int(np.argmax(first.iou_predictions))]]
    two = {"point_coords": np.array([[30.0, 20.0], [80.0, 50.0]]), "point_labels": np.array([1, 0])}
    pred = predictor.predict(**two, mask_input=best, multimask_output=False)
    ref_first = ref.predict(ref_emb, **CLICK)
    ref_best = ref_first.low_res_logits[[int(np.argmax(ref_first.iou_predictions))]]
    assert_matches_reference(pred, ref.predict(ref_emb, **two, mask_input=ref_best, multimask_output=False))
    logits = predictor.predict(**two, mask_input=best, multimask_output=False, return_logits=True)
    np.testing.assert_array_equal(logits.masks > 0, pred.masks)
