"""Checkpoint loading: official .pth and Hugging Face layouts, variant detection, hostile files."""

from __future__ import annotations

import json
import os
import pickle
import re

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sam_onnx.errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    MissingWeightsError,
    NotSamCheckpointError,
    UnreadableCheckpointError,
    UnsafeCheckpointError,
    VariantMismatchError,
)
from sam_onnx.modeling import detect_variant, load_sam, load_sam2, load_state_dict

# The test's own official -> Hugging Face renaming (the inverse direction of the loader's table),
# checked against the kit's hf_vit_*.json manifests below.
OFFICIAL_TO_HF = (
    (
        r"^prompt_encoder\.pe_layer\.positional_encoding_gaussian_matrix$",
        "shared_image_embedding.positional_embedding",
    ),
    (r"^image_encoder\.", "vision_encoder."),
    (r"\.blocks\.", ".layers."),
    (r"\.patch_embed\.proj\.", ".patch_embed.projection."),
    (r"\.norm(\d)\.", r".layer_norm\1."),
    (r"\.norm_final_attn\.", ".layer_norm_final_attn."),
    (r"^vision_encoder\.neck\.0\.", "vision_encoder.neck.conv1."),
    (r"^vision_encoder\.neck\.1\.", "vision_encoder.neck.layer_norm1."),
    (r"^vision_encoder\.neck\.2\.", "vision_encoder.neck.conv2."),
    (r"^vision_encoder\.neck\.3\.", "vision_encoder.neck.layer_norm2."),
    (r"\.mask_downscaling\.0\.", ".mask_embed.conv1."),
    (r"\.mask_downscaling\.1\.", ".mask_embed.layer_norm1."),
    (r"\.mask_downscaling\.3\.", ".mask_embed.conv2."),
    (r"\.mask_downscaling\.4\.", ".mask_embed.layer_norm2."),
    (r"\.mask_downscaling\.6\.", ".mask_embed.conv3."),
    (r"\.point_embeddings\.", ".point_embed."),
    (r"\.output_upscaling\.0\.", ".upscale_conv1."),
    (r"\.output_upscaling\.1\.", ".upscale_layer_norm."),
    (r"\.output_upscaling\.3\.", ".upscale_conv2."),
    (r"(iou_prediction_head|output_hypernetworks_mlps\.\d+)\.layers\.1\.", r"\1.hidden0."),
    (r"(iou_prediction_head|output_hypernetworks_mlps\.\d+)\.layers\.0\.", r"\1.proj_in."),
    (r"(iou_prediction_head|output_hypernetworks_mlps\.\d+)\.layers\.2\.", r"\1.proj_out."),
    (r"\.hidden0\.", ".layers.0."),
)


def to_hf(state_dict: dict) -> dict:
    out = {}
    for key, value in state_dict.items():
        for pattern, replacement in OFFICIAL_TO_HF:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


def write_hf_dir(path, state_dict: dict, *, model_type: str = "sam") -> None:
    path.mkdir()
    save_file({k: v.contiguous() for k, v in to_hf(state_dict).items()}, path / "model.safetensors")
    (path / "config.json").write_text(json.dumps({"model_type": model_type, "architectures": ["SamModel"]}))


@pytest.fixture()
def tiny_pth(tiny_model, tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(tiny_model.state_dict(), path)
    return path


# --- official layout -----------------------------------------------------------------------


def test_tiny_checkpoint_round_trip(tiny_model, tiny_pth):
    loaded = load_sam(tiny_pth)
    assert loaded.variant.name == "tiny"
    for key, value in tiny_model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_vit_b_detected_and_matches_kit_weights(vit_b_checkpoint, reference_dir):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_checkpoint", reference_dir / "make_checkpoint.py")
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    expected = kit.build_state_dict("vit_b", 0)
    model = load_sam(vit_b_checkpoint)
    assert model.variant.name == "vit_b"
    state = model.state_dict()
    for name in ("image_encoder.blocks.11.attn.rel_pos_h", "mask_decoder.iou_prediction_head.layers.2.bias"):
        np.testing.assert_array_equal(state[name].numpy(), expected[name])


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["vit_l", "vit_h"])
def test_large_variants_detected_without_type(make_checkpoint, reference_dir, variant):
    manifest = json.loads((reference_dir / "manifests" / f"{variant}.json").read_text())["tensors"]
    path = make_checkpoint(variant)
    try:
        assert detect_variant(load_state_dict(path), path).name == variant
        model = load_sam(path)
        assert model.variant.name == variant
        shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
        assert shapes == manifest
    finally:
        path.unlink()  # ViT-H is 2.5 GB: do not keep it for the rest of the session


def test_vit_b_asked_as_vit_h_names_vit_b(vit_b_checkpoint):
    with pytest.raises(VariantMismatchError, match="'vit_b'") as info:
        load_sam(vit_b_checkpoint, "vit_h")
    assert info.value.detected == "vit_b" and info.value.requested == "vit_h"
    assert str(vit_b_checkpoint) in str(info.value)


def test_unknown_model_type(tiny_pth):
    with pytest.raises(ValueError, match="model type"):
        load_sam(tiny_pth, "vit_x")


# --- hostile and broken files --------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="no such file") as info:
        load_sam(tmp_path / "sam_vit_b_01ec64.pth")
    assert isinstance(info.value, FileNotFoundError)


def test_unreadable_file_is_not_called_corrupt(tiny_pth, monkeypatch):
    """What torch.load raises on a file without read permission (simulated: root reads anything)."""

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(torch, "load", denied)
    with pytest.raises(UnreadableCheckpointError, match="not readable by this process") as info:
        load_sam(tiny_pth)
    assert isinstance(info.value, PermissionError) and info.value.path == str(tiny_pth)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads through file permissions")
def test_unreadable_file(tiny_pth):
    tiny_pth.chmod(0)
    with pytest.raises(UnreadableCheckpointError):
        load_sam(tiny_pth)


@pytest.mark.parametrize("keep", [0, 100, 0.5])
def test_truncated_checkpoint(tiny_pth, tmp_path, keep):
    data = tiny_pth.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(CorruptCheckpointError, match=r"cut\.pth"):
        load_sam(cut)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CorruptCheckpointError):
        load_sam(path)


@pytest.mark.parametrize(
    "content", [b"# sam-onnx\n\nSplit-inference ONNX toolkit", b"hello", b"<!doctype html>", b""]
)
@pytest.mark.parametrize("loader", [load_sam, load_sam2])
def test_a_file_that_is_no_checkpoint_is_called_so_without_torchs_advice(tmp_path, content, loader):
    """``sam-export README.md``: torch's advice to re-run with weights_only=False is not passed on,
    and bytes its unpickler fails on with a KeyError are no traceback."""
    path = tmp_path / "README.md"
    path.write_bytes(content)
    with pytest.raises(CorruptCheckpointError, match=r"'.*README\.md': not a checkpoint: expected") as info:
        loader(path)
    assert "weights_only" not in str(info.value)
    assert (f"begins with {content[:16]!r}" if content else "it is empty") in str(info.value)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(NotSamCheckpointError, match="state dict"):
        load_sam(path)


def test_state_dict_of_another_model_lists_keys(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.bias": torch.zeros(10)}, path)
    with pytest.raises(
        NotSamCheckpointError, match=r"missing keys .*image_encoder.*unexpected keys .*conv1.weight"
    ):
        load_sam(path)


def test_incomplete_sam_state_dict_lists_missing_keys(tiny_model, tmp_path):
    state = dict(tiny_model.state_dict())
    del state["mask_decoder.iou_token.weight"]
    state["mask_decoder.extra_head.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(NotSamCheckpointError, match=r"iou_token.*extra_head"):
        load_sam(path)


def test_wrong_shape_is_named(tiny_model, tmp_path):
    state = dict(tiny_model.state_dict())
    state["mask_decoder.mask_tokens.weight"] = torch.zeros(5, 256)
    path = tmp_path / "shape.pth"
    torch.save(state, path)
    with pytest.raises(NotSamCheckpointError, match=r"mask_tokens.weight: \[5, 256\]"):
        load_sam(path)


def test_unknown_encoder_size_is_a_variant_named_after_its_numbers(tmp_path):
    from sam_onnx.modeling.random_weights import random_sam
    from sam_onnx.variants import EncoderNumbers, variant_from_numbers

    model = random_sam(variant_from_numbers(EncoderNumbers(32, 1, 2, 80, ())), seed=1)
    path = tmp_path / "shallow.pth"
    torch.save(model.state_dict(), path)
    loaded = load_sam(path)
    assert loaded.variant.name == "vit_w32_d1_h2_m80_gnone"
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_encoder_cut_short_with_a_tiny_decoder_is_named(tiny_model, tmp_path):
    """Only the encoder's shape is read off the file; a decoder of another size is refused by name."""
    state = {k: v for k, v in tiny_model.state_dict().items() if not k.startswith("image_encoder.blocks.1.")}
    path = tmp_path / "shallow.pth"
    torch.save(state, path)
    with pytest.raises(NotSamCheckpointError, match=r"layers\.0\.mlp\.lin1\.weight: \[256, 256\]"):
        load_sam(path)


def test_encoder_without_blocks(tiny_model, tmp_path):
    state = {k: v for k, v in tiny_model.state_dict().items() if not k.startswith("image_encoder.blocks.")}
    path = tmp_path / "no_blocks.pth"
    torch.save(state, path)
    with pytest.raises(NotSamCheckpointError, match=r"missing keys .*image_encoder\.blocks\.0"):
        load_sam(path)


def test_wrapped_state_dict_is_unwrapped(tiny_model, tmp_path):
    path = tmp_path / "wrapped.pth"
    torch.save({"model": tiny_model.state_dict()}, path)
    assert load_sam(path).variant.name == "tiny"


class _RunsCode:
    """Unpickling this object would call ``open(marker, "w")``: the side effect proves execution."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("container", ["torch_zip", "raw_pickle"])
def test_malicious_pickle_refused_without_side_effect(tiny_model, tmp_path, container):
    marker = tmp_path / "pwned"
    payload = dict(tiny_model.state_dict())
    payload["mask_decoder.extra"] = _RunsCode(str(marker))
    path = tmp_path / "evil.pth"
    if container == "torch_zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    # Sanity: the payload really runs code when unpickled without restriction.
    if container == "torch_zip":
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pth.*GLOBAL") as info:
        load_sam(path)
    assert not marker.exists(), "the malicious pickle ran code"
    assert "weights_only" not in str(info.value)  # torch's advice to run it after all is not passed on


# --- Hugging Face layout ---------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["vit_b", "vit_l", "vit_h"])
def test_test_renaming_matches_hf_manifest(reference_dir, variant):
    """The test's own official->HF renaming reproduces transformers' key names and shapes."""
    official = json.loads((reference_dir / "manifests" / f"{variant}.json").read_text())["tensors"]
    hf = json.loads((reference_dir / "manifests" / f"hf_{variant}.json").read_text())["tensors"]
    hf.pop("prompt_encoder.shared_embedding.positional_embedding")  # tied; not in model.safetensors
    assert to_hf(official) == hf


def test_hf_directory_loads_tiny(tiny_model, tmp_path):
    write_hf_dir(tmp_path / "hf", tiny_model.state_dict())
    loaded = load_sam(tmp_path / "hf")
    for key, value in tiny_model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize("stored", ["both", "prompt_encoder_only"])
def test_hf_tied_positional_embedding_variants(tiny_model, tmp_path, stored):
    """Older transformers stored both tied keys (.bin) or only the prompt encoder's alias."""
    state = to_hf(tiny_model.state_dict())
    matrix = state["shared_image_embedding.positional_embedding"]
    state["prompt_encoder.shared_embedding.positional_embedding"] = matrix.clone()
    if stored == "prompt_encoder_only":
        del state["shared_image_embedding.positional_embedding"]
    (tmp_path / "hf").mkdir()
    torch.save(state, tmp_path / "hf" / "pytorch_model.bin")
    loaded = load_sam(tmp_path / "hf")
    torch.testing.assert_close(
        loaded.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix, matrix, rtol=0, atol=0
    )


def test_hf_single_safetensors_file(tiny_model, tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in to_hf(tiny_model.state_dict()).items()}, path)
    assert load_sam(path).variant.name == "tiny"


def test_hf_sharded_safetensors(tiny_model, tmp_path):
    state = {k: v.contiguous() for k, v in to_hf(tiny_model.state_dict()).items()}
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    (tmp_path / "hf").mkdir()
    for shard, keys in shards.items():
        save_file({k: state[k] for k in keys}, tmp_path / "hf" / shard)
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    (tmp_path / "hf" / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    loaded = load_sam(tmp_path / "hf")
    for key, value in tiny_model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_hf_shard_outside_directory_refused(tmp_path):
    (tmp_path / "hf").mkdir()
    index = {"weight_map": {"vision_encoder.pos_embed": "../elsewhere.safetensors"}}
    (tmp_path / "hf" / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CorruptCheckpointError, match="outside the model directory"):
        load_sam(tmp_path / "hf")


def test_hf_directory_without_weights(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text('{"model_type": "sam"}')
    with pytest.raises(MissingWeightsError, match=r"model.safetensors.*config.json"):
        load_sam(tmp_path / "hf")


def test_hf_directory_of_another_model(tiny_model, tmp_path):
    write_hf_dir(tmp_path / "hf", tiny_model.state_dict(), model_type="grounding-dino")
    with pytest.raises(NotSamCheckpointError, match="model_type 'grounding-dino'"):
        load_sam(tmp_path / "hf")


def test_truncated_safetensors(tiny_model, tmp_path):
    write_hf_dir(tmp_path / "hf", tiny_model.state_dict())
    weights = tmp_path / "hf" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: os.path.getsize(weights) // 2])
    with pytest.raises(CorruptCheckpointError, match=r"model\.safetensors"):
        load_sam(tmp_path / "hf")


@pytest.mark.slow
def test_hf_vit_b_gives_same_embedding_as_official(vit_b_checkpoint, vit_b_model, golden, tmp_path):
    from sam_onnx.modeling.reference import SamReference

    write_hf_dir(tmp_path / "hf", load_state_dict(vit_b_checkpoint))
    hf_model = load_sam(tmp_path / "hf")
    assert hf_model.variant.name == "vit_b"
    resized, orig_hw = golden["small/resized_uint8"], golden["small/image"].shape[:2]
    ours = SamReference(hf_model).embed_resized(resized, orig_hw).embedding
    official = SamReference(vit_b_model).embed_resized(resized, orig_hw).embedding
    torch.testing.assert_close(ours, official, rtol=0, atol=0)
    np.testing.assert_allclose(ours.numpy(), golden["small/embedding"], rtol=0, atol=1e-3)


def test_random_sam2_checkpoint_holds_the_video_model_and_says_random(tmp_path):
    """``python -m sam_onnx.modeling.random_weights hiera_tiny ...``: the official ``{"model": ...}``
    layout with every video tensor, noted as random, the object-score bias raised as the kit's."""
    from sam_onnx.modeling.checkpoint import RANDOM_WEIGHTS, checkpoint_weights
    from sam_onnx.modeling.random_weights import SAM2_OBJECT_SCORE_OFFSET, main
    from sam_onnx.modeling.sam2_checkpoint import load_sam2_video

    path = tmp_path / "sam2_tiny_random.pt"
    assert main(["hiera_tiny", str(path), "--seed", "3"]) == 0
    assert checkpoint_weights(path) == RANDOM_WEIGHTS
    assert list(torch.load(path, weights_only=True)) == ["model"]
    model = load_sam2_video(path, "hiera_tiny")
    torch.manual_seed(3)
    from sam_onnx.modeling.build import build_sam2_video

    bias = build_sam2_video("hiera_tiny").sam_mask_decoder.pred_obj_score_head.layers[-1].bias
    got = model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias
    # default init plus noise of 0.02, then the offset: the offset is what remains on average
    assert abs(float((got - bias).detach().mean()) - SAM2_OBJECT_SCORE_OFFSET) < 0.05
