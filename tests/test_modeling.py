"""Model sources on tiny variants: registry, preprocessing, upscaling at every size, traceability."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from sam_onnx.errors import InvalidInputError
from sam_onnx.export.decoder_graph import DecoderGraph, resized_size_hw, select_single_mask, upscale_masks
from sam_onnx.modeling import detect_variant
from sam_onnx.modeling.reference import SamReference
from sam_onnx.preprocess import (
    normalize_and_pad,
    resize_longest_side,
    resized_hw,
    scale_boxes_xyxy,
    scale_coords_xy,
)
from sam_onnx.variants import OFFICIAL_VARIANTS, VARIANTS

SIZES_HW = [
    (480, 640),
    (640, 480),
    (700, 525),
    (123, 77),
    (1, 1),
    (1, 2000),
    (1500, 2250),
    (2250, 1500),
    (1023, 1025),
]


@pytest.mark.parametrize("variant", OFFICIAL_VARIANTS)
def test_variant_detected_from_manifest_shapes(reference_dir, variant):
    tensors = json.loads((reference_dir / "manifests" / f"{variant}.json").read_text())["tensors"]
    state = {name: torch.empty(shape, device="meta") for name, shape in tensors.items()}
    assert detect_variant(state).name == variant


def test_variants_are_frozen_data():
    for variant in VARIANTS.values():
        with pytest.raises(AttributeError):
            variant.encoder_depth = 1  # type: ignore[misc]
        assert variant.encoder_embed_dim % variant.encoder_num_heads == 0
        assert max(variant.encoder_global_attn_indexes) < variant.encoder_depth


def test_resized_hw_rounds_half_up():
    assert resized_hw((480, 640)) == (768, 1024)
    assert resized_hw((123, 77)) == (1024, 641)  # 641.04 -> 641
    assert resized_hw((3, 2)) == (1024, 683)  # 682.67 -> 683
    with pytest.raises(InvalidInputError, match="image size"):
        resized_hw((0, 5))
    assert resized_hw((1, 2000)) == (1, 1024)  # 0.512 -> 1
    assert resized_hw((1, 3000)) == (1, 1024)  # 0.34 would round to 0 rows (the official code fails)
    assert resized_hw((5000, 1)) == (1024, 1)


def test_graph_rounding_equals_python_rounding():
    """The decoder graph's float32 size arithmetic agrees with int(x + 0.5) on many sizes."""
    widths = (1, 2, 77, 123, 480, 525, 640, 700, 1024, 1025, 2250, 4000)
    sizes = [(h, w) for h in range(1, 2600, 7) for w in widths] + [(1, 5000), (5000, 1), (3, 9000)]
    graph = [tuple(resized_size_hw(torch.tensor(s, dtype=torch.float32), 1024).tolist()) for s in sizes]
    mismatched = [(s, g) for s, g in zip(sizes, graph, strict=True) if resized_hw(s) != g]
    assert not mismatched, mismatched[:5]


def test_normalize_and_pad_matches_torch_preprocess(tiny_model):
    rng = np.random.default_rng(1)
    resized = rng.integers(0, 256, (641, 1024, 3), dtype=np.uint8)
    ours = normalize_and_pad(resized)
    torch_side = tiny_model.preprocess(torch.from_numpy(resized).permute(2, 0, 1)[None]).numpy()
    np.testing.assert_array_equal(ours, torch_side)
    assert ours.shape == (1, 3, 1024, 1024) and not ours[:, :, 641:].any()


def test_coordinate_scaling_xy_order():
    # Portrait 700 x 525 (H x W): resized to 1024 x 768. x scales by 768/525, y by 1024/700.
    np.testing.assert_allclose(scale_coords_xy(np.array([[525.0, 700.0]]), (700, 525)), [[768.0, 1024.0]])
    np.testing.assert_allclose(scale_boxes_xyxy(np.array([0, 0, 525, 700]), (700, 525)), [0, 0, 768, 1024])
    with pytest.raises(InvalidInputError, match="point coordinates"):
        scale_coords_xy(np.zeros((2, 3)), (10, 10))


@pytest.mark.parametrize("orig_hw", SIZES_HW)
def test_graph_upscaling_equals_predictor_upscaling(tiny_model, orig_hw):
    """orig_im_size upscaling (crop to the resized image, then to H x W) at many sizes."""
    low_res = torch.randn(1, 2, 256, 256, generator=torch.Generator().manual_seed(0))
    graph = upscale_masks(low_res, torch.tensor(orig_hw, dtype=torch.float32), 1024)
    predictor = tiny_model.postprocess_masks(low_res, resized_hw(orig_hw), orig_hw)
    assert graph.shape == (1, 2, *orig_hw)
    torch.testing.assert_close(graph, predictor, rtol=0, atol=0)


def test_reference_predict_rejects_bad_prompts(tiny_model):
    ref = SamReference(tiny_model)
    emb = ref.embed(np.zeros((40, 30, 3), np.uint8))
    assert emb.embedding.shape == (1, 256, 64, 64) and emb.input_hw == (1024, 768)
    with pytest.raises(InvalidInputError, match="points"):
        ref.predict(emb, np.zeros((2, 2)), np.ones(3))
    with pytest.raises(InvalidInputError, match="point_labels"):
        ref.predict(emb, np.zeros((2, 2)), None)
    with pytest.raises(InvalidInputError, match="box"):
        ref.predict(emb, box=np.zeros(3))
    with pytest.raises(InvalidInputError, match="mask_input"):
        ref.predict(emb, np.zeros((1, 2)), np.ones(1), mask_input=np.zeros((256, 256)))
    with pytest.raises(InvalidInputError, match="uint8"):
        ref.embed(np.zeros((40, 30, 3), np.float32))
    pred = ref.predict(emb, np.array([[10.0, 20.0]]), np.array([1]))
    assert pred.masks.shape == (3, 40, 30) and pred.masks.dtype == bool
    assert pred.low_res_logits.shape == (3, 256, 256) and pred.iou_predictions.shape == (3,)


def test_resize_handles_extreme_aspect_ratio():
    assert resize_longest_side(np.zeros((1, 2000, 3), np.uint8)).shape == (1, 1024, 3)
    assert resize_longest_side(np.zeros((2000, 1, 3), np.uint8)).shape == (1024, 1, 3)
    assert resize_longest_side(np.zeros((1, 5000, 3), np.uint8)).shape == (1, 1024, 3)


class _DecoderCore(torch.nn.Module):
    """Decoder contract up to the low-res masks (the dynamic upscaling is the export's concern)."""

    def __init__(self, graph: DecoderGraph) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, *inputs):
        rows, hyper_in, iou, (h, w) = self.graph.decode_tokens(*inputs)
        return self.graph.sam.mask_decoder.upscale_rows(rows, hyper_in, h, w), iou


def _decoder_inputs(num_points: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(-1, 4, (1, num_points), generator=g).float()
    return (
        torch.randn(1, 256, 64, 64, generator=g),
        torch.rand(1, num_points, 2, generator=g) * 1024,
        labels,
        torch.randn(1, 1, 256, 256, generator=g),
        torch.tensor([float(seed % 2)]),
    )


def test_modules_trace_without_value_dependent_control_flow(tiny_model):
    """Tracing raises no TracerWarning, and the traced decoder is right for other point counts."""
    image = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    core = _DecoderCore(DecoderGraph(tiny_model, return_single_mask=False))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 marks jit.trace deprecated
        encoder = torch.jit.trace(tiny_model.image_encoder, image)
        decoder = torch.jit.trace(core, _decoder_inputs(3, 0))
        torch.testing.assert_close(encoder(image), tiny_model.image_encoder(image))
        for num_points, seed in ((1, 1), (5, 2), (16, 3)):
            inputs = _decoder_inputs(num_points, seed)
            for traced, eager in zip(decoder(*inputs), core(*inputs), strict=True):
                torch.testing.assert_close(traced, eager, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("num_points", "batch", "has_mask"),
    [(1, 1, 0.0), (3, 2, 1.0), (10, 1, 0.0), (20, 3, 1.0)],  # 20 points: past the break-even
)
def test_factored_decoder_equals_official_form(tiny_model, num_points, batch, has_mask):
    """Projections moved to the token side and channel-last upscaling change only rounding."""
    g = torch.Generator().manual_seed(num_points)
    pe, decoder = tiny_model.prompt_encoder, tiny_model.mask_decoder
    coords = torch.rand(batch, num_points, 2, generator=g) * 1024
    labels = torch.randint(-1, 4, (batch, num_points), generator=g).float()
    sparse = pe.embed_labeled_points(coords, labels)
    dense = pe.embed_mask(torch.randn(batch, 1, 256, 256, generator=g)) * has_mask
    dense = dense + (1 - has_mask) * pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
    image = torch.randn(1, 256, 64, 64, generator=g)
    with torch.no_grad():
        official = decoder.predict_masks(image, pe.get_dense_pe(), sparse, dense)
        factored = decoder.predict_masks(image, pe.get_dense_pe(), sparse, dense, factored=True)
    assert official[0].shape == factored[0].shape == (batch, 4, 256, 256)
    for got, want in zip(factored, official, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        assert not torch.equal(got, torch.zeros_like(got))


def test_single_mask_graph_upscales_the_chosen_token(tiny_model):
    """The single-mask graph picks its token from the IoU head first; the result is the
    official rule applied to all four upscaled tokens."""
    single = DecoderGraph(tiny_model, return_single_mask=True)
    every = DecoderGraph(tiny_model, return_single_mask=False)
    for num_points, seed in ((2, 0), (2, 1), (3, 2), (5, 3)):
        inputs = (*_decoder_inputs(num_points, seed), torch.tensor([700.0, 525.0]))
        with torch.no_grad():
            masks, scores, low_res = single(*inputs)
            all_masks, all_scores, all_low = every(*inputs)
        want_low, want_scores = select_single_mask(all_low, all_scores, num_points)
        want_masks, _ = select_single_mask(all_masks, all_scores, num_points)
        torch.testing.assert_close(scores, want_scores, rtol=0, atol=0)
        torch.testing.assert_close(low_res, want_low, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(masks, want_masks, rtol=1e-5, atol=1e-5)


def test_decoder_graph_official_layout_gives_the_same_masks(tiny_model):
    """``factored=False`` (the official layout, kept for benchmarks) against the default graph."""
    inputs = (*_decoder_inputs(3, 4), torch.tensor([480.0, 640.0]))
    with torch.no_grad():
        factored = DecoderGraph(tiny_model, return_single_mask=True)(*inputs)
        official = DecoderGraph(tiny_model, return_single_mask=True, factored=False)(*inputs)
    for got, want in zip(factored, official, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
