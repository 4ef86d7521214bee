"""The exported ViT-B graphs (seed-0 kit checkpoint) against the official goldens."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from sam_onnx.export.decoder_graph import INPUT_NAMES, select_single_mask
from sam_onnx.preprocess import normalize_and_pad
from tests.conftest import CASES, IMAGES, unpack_masks

pytestmark = pytest.mark.slow

LOGIT_ATOL = 1e-4  # low-res logits and IoU, the kit's tolerance
EMBEDDING_ATOL = 1e-3
MASK_LOGIT_MARGIN = 1e-3  # binary masks may differ only where the logit is this close to 0


@pytest.fixture(scope="module")
def sessions(vit_b_export):
    return {
        key: ort.InferenceSession(str(paths[0]), providers=["CPUExecutionProvider"])
        for key, paths in vit_b_export.files.items()
        if key in ("encoder", "decoder", "decoder_batched", "encoder_fp16")
    }


def onnx_in(golden, image: str, case: str) -> dict[str, np.ndarray]:
    """The six contract inputs of a golden case (the embedding is the image's golden one)."""
    feeds = {name: golden[f"{image}/{case}/onnx_in/{name}"] for name in INPUT_NAMES[1:]}
    return {"image_embeddings": golden[f"{image}/embedding"], **feeds}


def assert_matches_onnx_out(golden, image, case, masks, iou, low_res):
    key = f"{image}/{case}/onnx_out"
    np.testing.assert_allclose(iou, golden[f"{key}/iou_predictions"], rtol=0, atol=LOGIT_ATOL)
    np.testing.assert_allclose(low_res, golden[f"{key}/low_res_masks"], rtol=0, atol=LOGIT_ATOL)
    expected = unpack_masks(golden[f"{key}/masks_packed"], masks.shape[-1])
    assert masks.shape == expected.shape
    bad = ((masks > 0) != expected) & (np.abs(masks) > MASK_LOGIT_MARGIN)
    assert not bad.any(), f"{int(bad.sum())} mask pixels differ away from the 0 threshold"


@pytest.mark.parametrize("image", IMAGES)
def test_encoder_reproduces_golden_embedding(golden, sessions, image):
    padded = normalize_and_pad(golden[f"{image}/resized_uint8"])
    got = sessions["encoder"].run(None, {"image": padded})[0]
    np.testing.assert_allclose(got, golden[f"{image}/embedding"], rtol=0, atol=EMBEDDING_ATOL)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("image", IMAGES)
def test_decoder_reproduces_golden_onnx_out(golden, sessions, image, case):
    masks, iou, low_res = sessions["decoder"].run(None, onnx_in(golden, image, case))
    assert_matches_onnx_out(golden, image, case, masks, iou, low_res)


@pytest.mark.parametrize("image", IMAGES)
def test_batched_decoder_equals_single_calls(golden, sessions, image):
    """The golden cases with two prompt points decode in one batched call; each row, put through
    the official selection rule, is the single-mask decoder's answer and the golden's."""
    cases = [c for c in CASES if golden[f"{image}/{c}/onnx_in/point_labels"].shape[1] == 2]
    assert len(cases) >= 3
    feeds = [onnx_in(golden, image, c) for c in cases]
    batch = dict(feeds[0])
    for name in ("point_coords", "point_labels", "mask_input", "has_mask_input"):
        batch[name] = np.concatenate([f[name] for f in feeds])
    masks, iou, low_res = sessions["decoder_batched"].run(None, batch)
    assert masks.shape[:2] == (len(cases), 4)
    picked_low, picked_iou = select_single_mask(torch.from_numpy(low_res), torch.from_numpy(iou), 2)
    picked_masks, _ = select_single_mask(torch.from_numpy(masks), torch.from_numpy(iou), 2)
    for row, (case, feed) in enumerate(zip(cases, feeds, strict=True)):
        s_masks, s_iou, s_low = sessions["decoder"].run(None, feed)
        np.testing.assert_allclose(picked_iou[row].numpy(), s_iou[0], rtol=0, atol=1e-5)
        np.testing.assert_allclose(picked_low[row].numpy(), s_low[0], rtol=0, atol=1e-4)
        np.testing.assert_allclose(picked_masks[row].numpy(), s_masks[0], rtol=0, atol=1e-4)
        row_out = (
            picked_masks[row : row + 1].numpy(),
            picked_iou[row : row + 1].numpy(),
            picked_low[row : row + 1].numpy(),
        )
        assert_matches_onnx_out(golden, image, case, *row_out)


def test_export_validation_passed_on_reference_images(vit_b_export):
    report = vit_b_export.report
    assert report.ok, report.failures
    cases = {c.case.split("/")[0] for c in report.checks}
    assert cases == set(IMAGES)
    graphs = {c.graph for c in report.checks}
    assert graphs == {"encoder.onnx", "decoder.onnx", "decoder_batched.onnx", "decoder_image+click"}


def test_reduced_precision_quality_on_reference_images(vit_b_export, golden, sessions):
    quality = {q.graph: q for q in vit_b_export.report.quality}
    fp16 = quality["encoder.fp16.onnx"]
    assert fp16.finite and fp16.embedding_cosine > 0.999 and fp16.mask_iou_mean > 0.98
    int8 = quality["encoder.int8.onnx"]
    assert int8.finite and int8.embedding_cosine > 0.99 and int8.mask_iou_mean >= 0.9
    for image in IMAGES:  # no NaN/Inf in fp16 on any reference image
        padded = normalize_and_pad(golden[f"{image}/resized_uint8"])
        emb = sessions["encoder_fp16"].run(None, {"image": padded})[0]
        assert np.isfinite(emb).all()
        cosine = float((emb * golden[f"{image}/embedding"]).sum()) / float(
            np.linalg.norm(emb) * np.linalg.norm(golden[f"{image}/embedding"])
        )
        assert cosine > 0.999
