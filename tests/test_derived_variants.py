"""Checkpoints of any ViT-SAM shape: SlimSAM's pruned encoders, MedSAM's training files.

The shapes are detected from the tensors in both layouts and checked against transformers'
``SamModel`` (a test-only dependency) built from the matching ``SamVisionConfig``: same key names,
same embedding. A SlimSAM-77-shaped checkpoint then goes through export (with its validation), the
runtime predictor and the automatic mask generator, each compared with our PyTorch reference.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sam_onnx.errors import InvalidInputError, NotSamCheckpointError
from sam_onnx.modeling import detect_variant, load_sam, load_state_dict
from sam_onnx.modeling.build import build_sam
from sam_onnx.modeling.hf_layout import hf_to_official
from sam_onnx.variants import (
    VARIANTS,
    EncoderNumbers,
    derived_name,
    get_variant,
    variant_from_numbers,
    variant_metadata,
)

# SlimSAM's published uniform checkpoints (transformers' convert_sam_to_hf.py: slimsam-50 / -77).
SLIMSAM = {
    "slimsam_50": EncoderNumbers(384, 12, 12, 1536, (2, 5, 8, 11)),
    "slimsam_77": EncoderNumbers(168, 12, 12, 696, (2, 5, 8, 11)),
}
SLIMSAM_77_NAME = "vit_w168_d12_h12_m696_g2-5-8-11"
EMBEDDING_ATOL = 1e-4  # ours vs transformers, same weights, float32 on the CPU


def hf_sam(numbers: EncoderNumbers, *, seed: int = 0, meta: bool = False):
    """transformers' ``SamModel`` whose encoder has ``numbers``: random weights (every tensor
    redrawn, so no norm is 1 and no bias 0), or on the meta device (names and shapes only)."""
    transformers = pytest.importorskip("transformers", reason="a test dependency: pip install -e '.[test]'")
    vision = transformers.SamVisionConfig(
        hidden_size=numbers.width,
        num_hidden_layers=numbers.depth,
        num_attention_heads=numbers.heads,
        mlp_dim=numbers.mlp,
        global_attn_indexes=list(numbers.global_blocks),
        window_size=numbers.window,
    )
    config = transformers.SamConfig(vision_config=vision.to_dict())
    if meta:
        with torch.device("meta"):
            return transformers.SamModel(config)
    torch.manual_seed(seed)
    model = transformers.SamModel(config).eval()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.ndim == 1:
                tensor.add_(0.02 * torch.randn_like(tensor))
            else:
                tensor.copy_(torch.randn_like(tensor) / math.sqrt(math.prod(tensor.shape[1:])))
    return model


# --- names and numbers -------------------------------------------------------------------------


def test_derived_names_read_back_and_registry_shapes_keep_their_names():
    slim = variant_from_numbers(SLIMSAM["slimsam_77"])
    assert slim.name == derived_name(SLIMSAM["slimsam_77"]) == SLIMSAM_77_NAME
    assert get_variant(SLIMSAM_77_NAME) == slim
    assert (slim.encoder_mlp_width, slim.head_dim) == (696, 14)
    for name in ("vit_b", "vit_l", "vit_h", "tiny"):
        numbers = VARIANTS[name].encoder_numbers
        assert variant_from_numbers(numbers) is VARIANTS[name]
        assert get_variant(derived_name(numbers)) is VARIANTS[name]
    odd = EncoderNumbers(64, 3, 4, 100, (), window=7)
    assert derived_name(odd) == "vit_w64_d3_h4_m100_gnone_win7"
    assert get_variant(derived_name(odd)).encoder_numbers == odd


@pytest.mark.parametrize(
    "numbers",
    [
        EncoderNumbers(100, 12, 12, 400, (2,)),  # width not a whole number of heads
        EncoderNumbers(96, 4, 4, 384, (4,)),  # a global block past the last block
        EncoderNumbers(96, 4, 4, 384, (3, 1)),  # global blocks out of order
        EncoderNumbers(96, 4, 4, 0, (1,)),  # no MLP
    ],
)
def test_impossible_numbers_are_refused(numbers):
    with pytest.raises(InvalidInputError, match="image encoder numbers"):
        variant_from_numbers(numbers)


def test_unknown_name_lists_the_derived_form():
    with pytest.raises(InvalidInputError, match=r"vit_w<width>_d<depth>"):
        get_variant("vit_x")


# --- detection from both layouts -----------------------------------------------------------------

SHAPES = {name: VARIANTS[name].encoder_numbers for name in ("vit_b", "vit_l", "vit_h")} | SLIMSAM


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_detected_from_both_layouts(shape):
    """Names and shapes only (meta device): our official layout, and transformers' own SamModel."""
    numbers = SHAPES[shape]
    expected = shape if shape in VARIANTS else derived_name(numbers)
    with torch.device("meta"):
        official = build_sam(variant_from_numbers(numbers)).state_dict()
    assert detect_variant(official).name == expected
    hf = hf_to_official(hf_sam(numbers, meta=True).state_dict())
    assert detect_variant(hf).name == expected
    # transformers' names, renamed, are exactly our model's names and shapes
    assert {k: tuple(v.shape) for k, v in hf.items()} == {k: tuple(v.shape) for k, v in official.items()}


@pytest.mark.slow  # 10-25 s each on two free cores
@pytest.mark.parametrize("shape", sorted(SLIMSAM))
def test_slimsam_matches_transformers(shape, tmp_path):
    """A SlimSAM-shaped ``save_pretrained`` directory loads with no type given and embeds as
    transformers does; re-saved in the official layout, it loads as the same variant."""
    hf = hf_sam(SLIMSAM[shape])
    hf.save_pretrained(tmp_path / "hf")
    ours = load_sam(tmp_path / "hf")
    assert ours.variant == variant_from_numbers(SLIMSAM[shape])
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 3, 1024, 1024), dtype=np.float32))
    with torch.no_grad():
        expected = hf.get_image_embeddings(x)
        got = ours.image_encoder(x)
    assert expected.shape == (1, 256, 64, 64) and float(expected.std()) > 0.1
    torch.testing.assert_close(got, expected, rtol=0, atol=EMBEDDING_ATOL)

    torch.save(ours.state_dict(), tmp_path / "official.pth")
    again = load_sam(tmp_path / "official.pth")
    assert again.variant == ours.variant
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)


# --- MedSAM --------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrapping", ["training", "multi_gpu_training"])
def test_medsam_training_checkpoint_loads_as_vit_b(vit_b_checkpoint, tmp_path, wrapping):
    """MedSAM's train_one_gpu.py saves {"model": state_dict, "optimizer": ..., "epoch": ...}; its
    multi-GPU script the same from a DistributedDataParallel model ("module." before every key),
    as its utils/ckpt_convert.py reads them. (medsam_vit_b.pth itself is a plain ViT-B state dict.)"""
    state = load_state_dict(vit_b_checkpoint)
    if wrapping == "multi_gpu_training":
        state = {f"module.{k}": v for k, v in state.items()}
    adam = {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999)}]}
    torch.save({"model": state, "optimizer": adam, "epoch": 7}, tmp_path / "medsam_model_best.pth")
    model = load_sam(tmp_path / "medsam_model_best.pth")
    assert model.variant.name == "vit_b"
    for name, value in load_state_dict(vit_b_checkpoint).items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=0, atol=0)


# --- broken files still get typed errors ---------------------------------------------------------


def test_blocks_that_disagree_in_width_are_named(tiny_model, tmp_path):
    state = dict(tiny_model.state_dict())
    state["image_encoder.blocks.1.mlp.lin1.weight"] = torch.zeros(200, 64)
    state["image_encoder.blocks.1.mlp.lin1.bias"] = torch.zeros(200)
    torch.save(state, tmp_path / "uneven.pth")
    with pytest.raises(NotSamCheckpointError, match=r"blocks\.1\.mlp\.lin1\.weight: \[200, 64\] \(expected"):
        load_sam(tmp_path / "uneven.pth")


def test_table_not_a_whole_number_of_heads(tiny_model, tmp_path):
    state = dict(tiny_model.state_dict())
    for axis in "hw":
        state[f"image_encoder.blocks.0.attn.rel_pos_{axis}"] = torch.zeros(27, 24)
    torch.save(state, tmp_path / "heads.pth")
    with pytest.raises(NotSamCheckpointError, match="width 64 is not a whole number of heads of width 24"):
        load_sam(tmp_path / "heads.pth")


def test_missing_table_lists_the_missing_key(tiny_model, tmp_path):
    state = {k: v for k, v in tiny_model.state_dict().items() if k != "image_encoder.blocks.1.attn.rel_pos_h"}
    torch.save(state, tmp_path / "no_table.pth")
    with pytest.raises(NotSamCheckpointError, match=r"1 missing keys .*blocks\.1\.attn\.rel_pos_h"):
        load_sam(tmp_path / "no_table.pth")


# --- export, runtime and AMG on a SlimSAM-77 shape -----------------------------------------------


@pytest.fixture(scope="module")
def slimsam_77(slimsam_77_export):
    """The session's SlimSAM-77-shaped random-weight export (conftest.py), its validation image
    and the PyTorch model."""
    checkpoint, result, image = slimsam_77_export
    return result, load_sam(checkpoint), image


@pytest.mark.slow
def test_slimsam_77_export_carries_its_numbers(slimsam_77):
    result, model, _ = slimsam_77
    assert not result.report.failures
    assert result.manifest["variant"] == SLIMSAM_77_NAME
    for graph in ("encoder", "decoder", "decoder_batched"):
        meta = result.manifest["graphs"][graph]["metadata"]
        assert meta["variant"] == SLIMSAM_77_NAME
        numbers = EncoderNumbers(
            int(meta["encoder_embed_dim"]),
            int(meta["encoder_depth"]),
            int(meta["encoder_num_heads"]),
            int(meta["encoder_mlp_dim"]),
            tuple(json.loads(meta["encoder_global_attn_indexes"])),
            int(meta["encoder_window_size"]),
        )
        assert numbers == SLIMSAM["slimsam_77"] == model.variant.encoder_numbers
        assert {k: meta[k] for k in variant_metadata(model.variant)} == variant_metadata(model.variant)


@pytest.mark.slow
def test_slimsam_77_runtime_and_amg_match_pytorch(slimsam_77, tmp_path):
    from sam_onnx.modeling.reference import SamReference
    from sam_onnx.runtime import SamPredictor
    from sam_onnx.runtime.amg import AutomaticMaskGenerator
    from sam_onnx.runtime.core.graphs import web_decoder_paths
    from sam_onnx.runtime.server.bundle import write_bundle

    result, model, image = slimsam_77
    ref = SamReference(model)
    ref_emb = ref.embed(image)
    predictor = SamPredictor.from_export(result.output_dir)
    assert predictor.variant == SLIMSAM_77_NAME
    emb = predictor.embed(image)
    np.testing.assert_allclose(emb.embedding, ref_emb.embedding.numpy(), rtol=0, atol=1e-3)
    click = {"point_coords": np.array([[40.0, 30.0]]), "point_labels": np.array([1])}
    pred = predictor.predict(**click, multimask_output=True, embedding=emb)
    expected = ref.predict(ref_emb, **click, multimask_output=True)
    np.testing.assert_allclose(pred.iou_predictions, expected.iou_predictions, rtol=0, atol=1e-4)
    np.testing.assert_allclose(pred.low_res_logits, expected.low_res_logits, rtol=0, atol=1e-4)
    bundle = write_bundle(tmp_path / "bundle", image, emb, web_decoder_paths(result.output_dir))
    assert json.loads(bundle.read_text())["variant"] == SLIMSAM_77_NAME

    # Every mask of a 4 x 4 grid (no threshold, no suppression) is the reference's mask for its click.
    options = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0}
    annotations = AutomaticMaskGenerator(predictor, points_per_side=4, **options).generate(image)
    assert len(annotations) == 16 * 3
    by_click = {}
    for ann in annotations:
        xy = tuple(ann["point_coords"][0])
        if xy not in by_click:
            by_click[xy] = ref.predict(ref_emb, np.array([xy]), np.array([1]), multimask_output=True)
        ref_pred = by_click[xy]
        token = int(np.argmin(np.abs(ref_pred.iou_predictions - ann["predicted_iou"])))
        assert abs(ref_pred.iou_predictions[token] - ann["predicted_iou"]) < 1e-4
        agree = (ann["segmentation"] == ref_pred.masks[token]).mean()
        assert agree > 0.999, f"click {ann['point_coords']}: {agree:.5f} of pixels agree"
