"""SAM 2.1 image encoder (Hiera trunk + FPN neck) against the kit's official outputs and manifests."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam_onnx.modeling.fpn_neck import Sam2ImageEncoder, build_sam2_image_encoder
from sam_onnx.modeling.hiera import block_layout
from sam_onnx.variants import OFFICIAL_SAM2_VARIANTS, get_sam2_variant
from tests.conftest import IMAGES

PREFIX = "image_encoder."
DECODER = "sam_mask_decoder."
TOLERANCE = 1e-3  # the kit's encoder tolerance (max abs); same code gives 0, 1 vs 2 threads 1.5e-5


@pytest.fixture(scope="module")
def hiera_t_state(make_sam2_checkpoint) -> dict[str, torch.Tensor]:
    return torch.load(make_sam2_checkpoint("hiera_t"), map_location="cpu")["model"]


def load_encoder(state: dict[str, torch.Tensor]) -> Sam2ImageEncoder:
    encoder = build_sam2_image_encoder(get_sam2_variant("hiera_t")).eval()
    own = {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}
    encoder.load_state_dict(own, strict=True)
    return encoder


def image_features(encoder: Sam2ImageEncoder, state: dict, input_tensor: np.ndarray) -> dict[str, np.ndarray]:
    """What the official predictor stores after ``set_image``: the encoder's maps with the decoder's
    ``conv_s0`` / ``conv_s1`` and the model's ``no_mem_embed`` applied by hand (not the encoder's job)."""
    with torch.no_grad():
        level_256, level_128, level_64 = encoder(torch.from_numpy(input_tensor))
        conv_s0 = F.conv2d(level_256, state[f"{DECODER}conv_s0.weight"], state[f"{DECODER}conv_s0.bias"])
        conv_s1 = F.conv2d(level_128, state[f"{DECODER}conv_s1.weight"], state[f"{DECODER}conv_s1.bias"])
        image_embed = level_64 + state["no_mem_embed"].reshape(1, -1, 1, 1)
    return {"image_embed": image_embed, "high_res_feats_0": conv_s0, "high_res_feats_1": conv_s1}


def max_errors(features: dict, golden: dict, image: str) -> dict[str, float]:
    errors = {}
    for name, value in features.items():
        expected = golden[f"{image}/{name}"]
        assert value.shape == expected.shape, (name, value.shape, expected.shape)
        errors[name] = float(np.abs(value.numpy() - expected).max())
    return errors


@pytest.fixture(scope="module")
def hiera_t_encoder(hiera_t_state) -> Sam2ImageEncoder:
    return load_encoder(hiera_t_state)


@pytest.mark.parametrize("image", IMAGES)
def test_encoder_matches_official_features(hiera_t_encoder, hiera_t_state, sam2_golden, image):
    features = image_features(hiera_t_encoder, hiera_t_state, sam2_golden[f"{image}/input_tensor"])
    errors = max_errors(features, sam2_golden, image)
    assert max(errors.values()) <= TOLERANCE, errors


def test_encoder_golden_comparison_detects_a_perturbed_layer_norm(hiera_t_state, sam2_golden):
    state = dict(hiera_t_state)
    name = f"{PREFIX}trunk.blocks.6.norm2.weight"  # a stage-3 block's MLP norm
    state[name] = state[name] * 1.01
    features = image_features(load_encoder(state), state, sam2_golden["landscape/input_tensor"])
    errors = max_errors(features, sam2_golden, "landscape")
    assert errors["image_embed"] > TOLERANCE, errors


@pytest.mark.parametrize("name", OFFICIAL_SAM2_VARIANTS)
def test_state_dict_names_and_shapes_equal_official_manifest(sam2_reference_dir, name):
    manifest = json.loads((sam2_reference_dir / "manifests" / f"sam2.1_{name}.json").read_text())
    expected = {k[len(PREFIX) :]: v for k, v in manifest["tensors"].items() if k.startswith(PREFIX)}
    with torch.device("meta"):
        encoder = build_sam2_image_encoder(get_sam2_variant(name))
    got = {k: list(v.shape) for k, v in encoder.state_dict().items()}
    assert got == expected


@pytest.mark.parametrize("name", OFFICIAL_SAM2_VARIANTS)
def test_official_variants_run_on_meta_with_image_path_shapes(name):
    """Window / query-pooling geometry of every variant (padding, regrouping) without computing."""
    variant = get_sam2_variant(name)
    with torch.device("meta"):
        encoder = build_sam2_image_encoder(variant)
        x = torch.empty(1, 3, 1024, 1024)
        stages = [tuple(s.shape) for s in encoder.trunk(x)]
        features = [tuple(f.shape) for f in encoder(x)]
    sides = (256, 128, 64, 32)
    assert stages == [(1, dim, side, side) for dim, side in zip(variant.stage_dims, sides, strict=True)]
    assert features == [(1, 256, side, side) for side in sides[:3]]


def test_hiera_t_block_layout_follows_the_official_rule():
    """Read off the official Hiera constructor: a stage's first block keeps the previous stage's
    window (on its unpooled input) and pools q; blocks 5, 7, 9 are global."""
    variant = get_sam2_variant("hiera_t")
    layout = block_layout(variant.stages, variant.window_spec, variant.global_attn_blocks, variant.q_pool)
    assert [window for _, window, _ in layout] == [8, 8, 4, 4, 14, 0, 14, 0, 14, 0, 14, 7]
    assert [i for i, (_, _, pools) in enumerate(layout) if pools] == [1, 3, 10]
    assert [stage for stage, _, _ in layout] == [0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 3, 3]


def random_tiny_encoder() -> Sam2ImageEncoder:
    torch.manual_seed(0)
    encoder = build_sam2_image_encoder(get_sam2_variant("hiera_tiny")).eval()
    with torch.no_grad():  # non-zero position embeddings, so the bicubic resize is exercised
        encoder.trunk.pos_embed.normal_(std=0.1)
        encoder.trunk.pos_embed_window.normal_(std=0.1)
    return encoder


def test_tiny_variant_gives_the_image_path_shapes():
    encoder = random_tiny_encoder()
    x = torch.randn(1, 3, 1024, 1024)
    with torch.no_grad():
        stages = encoder.trunk(x)
        features = encoder(x)
    dim = get_sam2_variant("hiera_tiny").trunk_embed_dim
    assert [tuple(s.shape) for s in stages] == [
        (1, dim, 256, 256),
        (1, 2 * dim, 128, 128),
        (1, 4 * dim, 64, 64),
        (1, 8 * dim, 32, 32),
    ]
    assert [tuple(f.shape) for f in features] == [(1, 256, 256, 256), (1, 256, 128, 128), (1, 256, 64, 64)]
    assert all(torch.isfinite(f).all() for f in features)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter, as export/ uses it
def test_tiny_encoder_exports_to_onnx_and_runs_in_onnxruntime(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    encoder = random_tiny_encoder()
    x = torch.randn(1, 3, 1024, 1024)
    with torch.no_grad():
        expected = encoder(x)
    path = tmp_path / "encoder.onnx"
    names = ["level_256", "level_128", "level_64"]
    torch.onnx.export(
        encoder, (x,), str(path), dynamo=False, opset_version=17, input_names=["image"], output_names=names
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(names, {"image": x.numpy()})
    for name, a, b in zip(names, got, expected, strict=True):
        assert a.shape == tuple(b.shape), name
        np.testing.assert_allclose(a, b.numpy(), atol=1e-4, rtol=0, err_msg=name)
