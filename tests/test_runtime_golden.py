"""The torch-free runtime, from each golden image *file*, against the official SamPredictor goldens.

The whole chain runs as an app would run it: PNG -> load_image -> resize -> encoder.onnx ->
decoder_batched.onnx -> masks; nothing is taken from the goldens but the prompts.
"""

from __future__ import annotations

import numpy as np
import pytest

from sam_onnx.runtime import SamPredictor
from tests.conftest import CASES, IMAGES, case_meta, unpack_masks

pytestmark = pytest.mark.slow

TOLERANCE = 1e-3  # IoU and low-res logits, the bound for the whole chain
MASK_LOGIT_MARGIN = 1e-3  # masks may differ only where the golden logit is this close to 0


@pytest.fixture(scope="module")
def predictor(vit_b_export):
    return SamPredictor.from_export(vit_b_export.output_dir)


@pytest.fixture(scope="module")
def embeddings(predictor, reference_dir):
    """Each golden image embedded from its PNG file."""
    return {name: predictor.embed(next((reference_dir / "images").glob(f"{name}_*.png"))) for name in IMAGES}


@pytest.mark.parametrize("image", IMAGES)
def test_image_file_gives_golden_embedding(golden, embeddings, image):
    emb = embeddings[image]
    assert emb.orig_hw == golden[f"{image}/image"].shape[:2]
    assert emb.input_hw == golden[f"{image}/resized_uint8"].shape[:2]
    np.testing.assert_allclose(emb.embedding, golden[f"{image}/embedding"], rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("image", IMAGES)
def test_predict_reproduces_sam_predictor(golden, predictor, embeddings, image, case):
    meta = case_meta(golden, image, case)
    key = f"{image}/{case}"
    predictor.set_embedding(embeddings[image])
    pred = predictor.predict(
        point_coords=None if meta["points"] is None else np.asarray(meta["points"]),
        point_labels=None if meta["labels"] is None else np.asarray(meta["labels"]),
        box=None if meta["box"] is None else np.asarray(meta["box"]),
        mask_input=golden[f"{key}/mask_input"] if case == "refine_with_mask" else None,
        multimask_output=meta["multimask"],
    )
    expected = unpack_masks(golden[f"{key}/masks_packed"], pred.masks.shape[-1])
    assert pred.masks.dtype == bool and pred.masks.shape == expected.shape
    near_zero = np.abs(golden[f"{key}/mask_logits_f16"].astype(np.float32)) <= MASK_LOGIT_MARGIN
    differ = (pred.masks != expected) & ~near_zero
    assert not differ.any(), f"{int(differ.sum())} mask pixels differ away from the 0 threshold"
    np.testing.assert_allclose(pred.iou_predictions, golden[f"{key}/iou"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(pred.low_res_logits, golden[f"{key}/low_res_logits"], rtol=0, atol=TOLERANCE)


def test_predict_boxes_equals_single_box_calls(golden, predictor, embeddings):
    """Boxes decoded in one batched call equal one-box calls (to float error: batch sizes take
    other kernel paths) and the golden one-box result."""
    boxes = np.array([case_meta(golden, name, "box")["box"] for name in IMAGES])
    emb = embeddings["landscape"]
    batched = predictor.predict_boxes(boxes, multimask_output=True, return_logits=True, embedding=emb)
    assert batched.masks.shape == (len(boxes), 3, *emb.orig_hw)
    for i, box in enumerate(boxes):
        single = predictor.predict(box=box, return_logits=True, embedding=emb)
        np.testing.assert_allclose(batched.masks[i], single.masks, rtol=0, atol=1e-4)
        np.testing.assert_allclose(batched.iou_predictions[i], single.iou_predictions, rtol=0, atol=1e-5)
        np.testing.assert_allclose(batched.low_res_logits[i], single.low_res_logits, rtol=0, atol=1e-4)
    first = predictor.predict_boxes(boxes[:1], multimask_output=False, embedding=emb)
    np.testing.assert_allclose(first.iou_predictions[0], golden["landscape/box/iou"], rtol=0, atol=TOLERANCE)
    expected = unpack_masks(golden["landscape/box/masks_packed"], emb.orig_hw[1])
    near_zero = np.abs(golden["landscape/box/mask_logits_f16"].astype(np.float32)) <= MASK_LOGIT_MARGIN
    assert not ((first.masks[0] != expected) & ~near_zero).any()


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_encoders_stay_close(vit_b_export, embeddings, reference_dir, precision):
    """The fp16/int8 encoder through the same runtime: masks agree with fp32 on most pixels."""
    low = SamPredictor.from_export(vit_b_export.output_dir, precision=precision)
    path = next((reference_dir / "images").glob("portrait_*.png"))
    emb = low.embed(path)
    point = dict(point_coords=np.array([[262, 350]]), point_labels=np.array([1]), multimask_output=False)
    got = low.predict(**point, embedding=emb).masks
    want = low.predict(**point, embedding=embeddings["portrait"]).masks
    iou = (got & want).sum() / max(1, (got | want).sum())
    assert iou >= 0.9, f"{precision} mask IoU against fp32 {iou:.3f}"
