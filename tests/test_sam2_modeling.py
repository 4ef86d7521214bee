"""SAM 2.1's prompt encoder, mask decoder and reference predictor against the kit's goldens.

The goldens' encoder outputs are fed in, so these tests need no image encoder run: they prove the
decoder side (prompt order, padding point, object-score token, skip connections, sigmoid IoU, the
stability fallback, coordinate transforms, mask upscaling) computes what the official code does.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from sam_onnx.modeling.sam2 import Sam2Features, select_masks, single_mask_index, stability_scores
from sam_onnx.modeling.sam2_checkpoint import load_sam2
from sam_onnx.modeling.sam2_reference import Sam2Reference
from sam_onnx.preprocess import resize_bilinear
from tests.conftest import unpack_masks

SAM2_IMAGES = ("landscape", "portrait", "small")
SAM2_CASES = (
    "one_point_multi",
    "one_point_single",
    "three_points",
    "box",
    "box_and_point",
    "refine_with_mask",
    "box_and_point_norm01",
)
TOL = 1e-4  # the kit's decoder tolerance (max abs, logits and IoU)
CLAMP = 32.0


@pytest.fixture(scope="module")
def hiera_t(make_sam2_checkpoint):
    return load_sam2(make_sam2_checkpoint("hiera_t"))


def sam2_case(golden, image: str, case: str) -> dict:
    img = next(i for i in golden["meta"]["images"] if i["name"] == image)
    return next(c for c in img["cases"] if c["name"] == case)


def golden_features(golden, image: str) -> Sam2Features:
    names = ("image_embed", "high_res_feats_0", "high_res_feats_1")
    return Sam2Features(*(torch.from_numpy(golden[f"{image}/{n}"]) for n in names))


def decode_case(model, golden, image: str, case: str, *, factored: bool = False):
    """The model fed the golden features and the golden model-frame prompt: (decoded, selected
    low-res logits, selected IoU, selected token list)."""
    key = f"{image}/{case}"
    mask = golden.get(f"{key}/mask_input")
    with torch.no_grad():
        decoded = model.decode(
            *golden_features(golden, image),
            torch.from_numpy(golden[f"{key}/model_point_coords"]),
            torch.from_numpy(golden[f"{key}/model_point_labels"]),
            None if mask is None else torch.from_numpy(mask)[None],
            factored=factored,
        )
        multimask = sam2_case(golden, image, case)["multimask"]
        low_res, iou = select_masks(decoded.low_res_logits, decoded.iou_predictions, multimask=multimask)
        token = single_mask_index(decoded.low_res_logits, decoded.iou_predictions, delta=0.05, threshold=0.98)
    tokens = [1, 2, 3] if multimask else [int(token)]
    return decoded, low_res[0].numpy(), iou[0].numpy(), tokens


def max_abs(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).max())


def assert_masks_match(golden, key: str, logits: np.ndarray) -> None:
    """Full-size binary masks equal the golden ones except at the exempt near-zero pixels."""
    width = logits.shape[-1]
    expected = unpack_masks(golden[f"{key}/masks_packed"], width)
    exempt = unpack_masks(golden[f"{key}/near_zero_packed"], width)
    differ = ((logits > 0) != expected) & ~exempt
    assert not differ.any(), f"{key}: {int(differ.sum())} mask pixels differ outside the near-zero band"


# The factored form (fewer operations per prompt, the exported decoder's) on one image: the same
# weights and arithmetic, reassociated.
@pytest.mark.parametrize(("image", "factored"), [*((image, False) for image in SAM2_IMAGES), ("small", True)])
def test_decoder_matches_golden(hiera_t, sam2_golden, image, factored):
    g = sam2_golden
    for case in SAM2_CASES:
        key = f"{image}/{case}"
        meta = sam2_case(g, image, case)
        decoded, low_res, iou, tokens = decode_case(hiera_t, g, image, case, factored=factored)
        assert max_abs(np.clip(low_res, -CLAMP, CLAMP), g[f"{key}/low_res_logits"]) <= TOL, key
        assert max_abs(iou, g[f"{key}/iou"]) <= TOL, key
        assert max_abs(decoded.iou_predictions[0], g[f"{key}/all_iou"]) <= TOL, key
        assert max_abs(decoded.object_score_logits[0], g[f"{key}/object_score_logits"]) <= TOL, key
        assert tokens == meta["selected_tokens"], key
        if not meta["multimask"]:
            stability = stability_scores(decoded.low_res_logits[:, 0], 0.05)
            assert abs(float(stability) - meta["stability_token0"]) <= 1e-3, key
        h, w = g[f"{image}/image"].shape[:2]
        assert_masks_match(g, key, resize_bilinear(low_res, (h, w)))


@pytest.mark.parametrize("image", SAM2_IMAGES)
def test_reference_predict_matches_golden(hiera_t, sam2_golden, image):
    """From the original prompt (pixels, or 0..1 with normalize_coords=False), through the
    coordinate transform, the prompt encoder's box order and the numpy mask upscaling."""
    g = sam2_golden
    ref = Sam2Reference(hiera_t)
    h, w = g[f"{image}/image"].shape[:2]
    emb = ref.embedding_from_features(*golden_features(g, image), (h, w))
    for case in SAM2_CASES:
        key = f"{image}/{case}"
        meta = sam2_case(g, image, case)
        mask = g[f"{image}/{meta['mask_from']}/low_res_logits"][0:1] if meta.get("mask_from") else None
        pred = ref.predict(
            emb,
            None if meta["points"] is None else np.array(meta["points"]),
            None if meta["labels"] is None else np.array(meta["labels"]),
            None if meta["box"] is None else np.array(meta["box"]),
            mask,
            multimask_output=meta["multimask"],
            return_logits=True,
            normalize_coords=meta["normalize_coords"],
        )
        assert max_abs(pred.low_res_logits, g[f"{key}/low_res_logits"]) <= TOL, key
        assert max_abs(pred.iou_predictions, g[f"{key}/iou"]) <= TOL, key
        assert pred.masks.shape == (len(pred.iou_predictions), h, w)
        assert_masks_match(g, key, pred.masks)
        if f"{key}/mask_logits_f16" in g:
            expected = g[f"{key}/mask_logits_f16"].astype(np.float32)
            np.testing.assert_allclose(pred.masks, expected, rtol=1e-3, atol=2 * TOL, err_msg=key)


def test_reference_thresholds_masks(hiera_t, sam2_golden):
    g = sam2_golden
    ref = Sam2Reference(hiera_t)
    emb = ref.embedding_from_features(*golden_features(g, "small"), g["small/image"].shape[:2])
    meta = sam2_case(g, "small", "one_point_multi")
    logits = ref.predict(emb, np.array(meta["points"]), np.array(meta["labels"]), return_logits=True)
    masks = ref.predict(emb, np.array(meta["points"]), np.array(meta["labels"]))
    assert masks.masks.dtype == bool
    np.testing.assert_array_equal(masks.masks, logits.masks > 0)


def test_mutated_decoder_fails_the_comparison(hiera_t, sam2_golden):
    """The comparison can fail: one decoder LayerNorm's weight scaled by 1.01 moves the outputs
    beyond the tolerance."""
    mutated = copy.deepcopy(hiera_t)
    with torch.no_grad():
        mutated.sam_mask_decoder.transformer.norm_final_attn.weight.mul_(1.01)
    key = "landscape/one_point_multi"
    _, good, good_iou, _ = decode_case(hiera_t, sam2_golden, "landscape", "one_point_multi")
    _, bad, bad_iou, _ = decode_case(mutated, sam2_golden, "landscape", "one_point_multi")
    assert max_abs(np.clip(good, -CLAMP, CLAMP), sam2_golden[f"{key}/low_res_logits"]) <= TOL
    assert max_abs(np.clip(bad, -CLAMP, CLAMP), sam2_golden[f"{key}/low_res_logits"]) > TOL
    assert max_abs(bad_iou, sam2_golden[f"{key}/iou"]) > max_abs(good_iou, sam2_golden[f"{key}/iou"])


def test_encode_adds_no_mem_embed_and_projects_skips(hiera_t):
    """``features_from_maps``: ``no_mem_embed`` added to the 64x64 map, ``conv_s0`` / ``conv_s1``
    (1x1 convolutions) on the finer ones, computed here as explicit channel sums."""
    gen = torch.Generator().manual_seed(0)
    maps = [torch.randn(1, 256, s, s, generator=gen) for s in (256, 128, 64)]
    with torch.no_grad():
        feats = hiera_t.features_from_maps(*maps)
    dec = hiera_t.sam_mask_decoder
    expected_embed = maps[2] + hiera_t.no_mem_embed.reshape(1, 256, 1, 1)
    torch.testing.assert_close(feats.image_embed, expected_embed, rtol=0, atol=0)
    for feat, conv, x in (
        (feats.high_res_feats_0, dec.conv_s0, maps[0]),
        (feats.high_res_feats_1, dec.conv_s1, maps[1]),
    ):
        expected = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], x) + conv.bias.reshape(1, -1, 1, 1)
        torch.testing.assert_close(feat, expected.detach(), rtol=1e-5, atol=1e-5)
    assert feats.high_res_feats_0.shape == (1, 32, 256, 256)
    assert feats.high_res_feats_1.shape == (1, 64, 128, 128)


def test_single_mask_rule_edge_cases():
    """No pixel above -delta: stability 1.0, token 0 kept. Unstable token 0 with tied IoUs: the
    first of the best among tokens 1..3."""
    logits = torch.full((2, 4, 8, 8), -1.0)
    logits[1, 0, :4] = 0.0  # 32 pixels in (-delta, delta]: stability 0
    iou = torch.tensor([[0.1, 0.9, 0.9, 0.2], [0.1, 0.5, 0.7, 0.7]])
    index = single_mask_index(logits, iou, delta=0.05, threshold=0.98)
    assert index.tolist() == [[0], [2]]
    torch.testing.assert_close(stability_scores(logits[:, 0], 0.05), torch.tensor([1.0, 0.0]))
    masks, scores = select_masks(logits, iou, multimask=False)
    torch.testing.assert_close(masks[:, 0], logits[[0, 1], [0, 2]])
    torch.testing.assert_close(scores[:, 0], torch.tensor([0.1, 0.7]))


def test_reference_embed_matches_golden_features(hiera_t, sam2_golden):
    """The whole chain from pixels: preprocessing, Hiera + FPN, the encode-time skips and
    ``no_mem_embed`` (the kit's encoder tolerance, 1e-3), then one prediction from them."""
    g = sam2_golden
    ref = Sam2Reference(hiera_t)
    emb = ref.embed(g["small/image"])
    for name, got in zip(("image_embed", "high_res_feats_0", "high_res_feats_1"), emb.features, strict=True):
        assert max_abs(got, g[f"small/{name}"]) <= 1e-3, name
    meta = sam2_case(g, "small", "box")
    pred = ref.predict(emb, box=np.array(meta["box"]), multimask_output=False, return_logits=True)
    assert max_abs(pred.low_res_logits, g["small/box/low_res_logits"]) <= 1e-3
    assert_masks_match(g, "small/box", pred.masks)
