"""Loading SAM 2.1 checkpoints: official ``.pt`` files of every size, Hugging Face ``Sam2Model``
directories, family detection and the errors that keep SAM v1 and SAM 2 files apart."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from sam_onnx.errors import ModelFamilyError, NotSamCheckpointError, VariantMismatchError
from sam_onnx.modeling import load_sam
from sam_onnx.modeling.build import build_sam2
from sam_onnx.modeling.checkpoint import check_keys, read_tensors
from sam_onnx.modeling.family import detect_family
from sam_onnx.modeling.hf_sam2_layout import HF_FOURIER_DUPLICATE, official_to_hf_sam2
from sam_onnx.modeling.load import load_model
from sam_onnx.modeling.sam import Sam
from sam_onnx.modeling.sam2 import Sam2
from sam_onnx.modeling.sam2_checkpoint import detect_sam2_variant, load_sam2, sam2_state_dict


def manifest(sam2_reference_dir, name: str) -> dict:
    return json.loads((sam2_reference_dir / "manifests" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def hiera_t_path(make_sam2_checkpoint):
    return make_sam2_checkpoint("hiera_t")


@pytest.fixture(scope="module")
def hiera_t_model(hiera_t_path):
    return load_sam2(hiera_t_path)


def meta_state_dict(variant: str) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return build_sam2(variant).state_dict()


@pytest.mark.parametrize(
    "variant", ["hiera_t", "hiera_s", "hiera_b+", pytest.param("hiera_l", marks=pytest.mark.slow)]
)
def test_official_sizes_detected_and_keys_strict(make_sam2_checkpoint, sam2_reference_dir, variant):
    """Every size is recognised from its tensors alone; the kept tensors are exactly the model's
    (names and shapes) and exactly the manifest's image path; the rest is the video-only set."""
    path = make_sam2_checkpoint(variant)
    raw = read_tensors(path)
    assert detect_family(raw) == "sam2"
    state_dict, layout, ignored = sam2_state_dict(raw, path)
    assert layout == "official"
    assert detect_sam2_variant(state_dict, path).name == variant
    check_keys(state_dict, meta_state_dict(variant), path)
    man = manifest(sam2_reference_dir, f"sam2.1_{variant}")
    image_path = {k for k in man["tensors"] if k.startswith(tuple(man["image_path_prefixes"]))}
    assert set(state_dict) == image_path
    assert set(ignored) == set(man["tensors"]) - image_path
    assert all(k.startswith(tuple(man["video_only_prefixes"])) for k in ignored)


def test_load_sam2_values_and_report(hiera_t_path, hiera_t_model):
    raw = read_tensors(hiera_t_path)
    loaded = hiera_t_model.state_dict()
    assert all(torch.equal(loaded[k], raw[k]) for k in loaded)
    report = hiera_t_model.load_report
    assert (report.variant, report.layout, report.path) == ("hiera_t", "official", str(hiera_t_path))
    assert len(report.ignored) == 471 - 311 and "memory_attention.norm.weight" in report.ignored
    assert not hiera_t_model.training


def test_load_model_picks_the_family(hiera_t_path, tiny_checkpoint):
    assert isinstance(load_model(hiera_t_path), Sam2)
    v1 = load_model(tiny_checkpoint)
    assert isinstance(v1, Sam) and v1.variant.name == "tiny"


def test_families_never_confused(hiera_t_path, tiny_checkpoint):
    with pytest.raises(
        ModelFamilyError, match=r"SAM 2 checkpoint, not SAM v1: load it with load_sam2"
    ) as exc:
        load_sam(hiera_t_path)
    assert (exc.value.requested, exc.value.detected) == ("sam", "sam2")
    with pytest.raises(ModelFamilyError, match=r"SAM v1 checkpoint, not SAM 2: load it with load_sam\b"):
        load_sam2(tiny_checkpoint)
    assert isinstance(exc.value, NotSamCheckpointError)  # callers catching the v1 error still do


def test_variant_mismatch(hiera_t_path):
    with pytest.raises(VariantMismatchError, match=r"'hiera_s'.*'hiera_t'"):
        load_sam2(hiera_t_path, model_type="hiera_s")
    assert load_sam2(hiera_t_path, model_type="hiera_t").variant.name == "hiera_t"


def test_unknown_trunk_and_missing_tensor(hiera_t_model, tmp_path):
    state_dict = dict(hiera_t_model.state_dict())
    fewer_blocks = {k: v for k, v in state_dict.items() if not k.startswith("image_encoder.trunk.blocks.11.")}
    with pytest.raises(
        NotSamCheckpointError, match=r"blocks per stage \[1, 2, 7, 1\].*no known SAM 2 variant"
    ):
        detect_sam2_variant(fewer_blocks)
    del state_dict["sam_mask_decoder.conv_s0.weight"]
    path = tmp_path / "no_conv_s0.pt"
    torch.save({"model": state_dict}, path)
    with pytest.raises(NotSamCheckpointError, match=r"missing keys .*conv_s0\.weight"):
        load_sam2(path)


def write_hf_sam2(directory, state_dict: dict[str, torch.Tensor]) -> None:
    directory.mkdir()
    save_file({k: v.contiguous() for k, v in state_dict.items()}, directory / "model.safetensors")
    (directory / "config.json").write_text(json.dumps({"model_type": "sam2", "architectures": ["Sam2Model"]}))


def test_hf_layout_loads_identical_tensors(hiera_t_model, sam2_reference_dir, tmp_path):
    """The official state dict mapped to transformers' names matches the HF manifest (names and
    shapes); saved as a model directory it loads back to the same tensors, bit for bit."""
    official = hiera_t_model.state_dict()
    hf = official_to_hf_sam2(official)
    expected = manifest(sam2_reference_dir, "hf_sam2.1_hiera_t")["tensors"]
    assert {k: list(v.shape) for k, v in hf.items()} == expected
    write_hf_sam2(tmp_path / "hf", hf)
    model = load_sam2(tmp_path / "hf")
    assert (model.load_report.layout, model.load_report.ignored) == ("hf", ())
    loaded = model.state_dict()
    assert loaded.keys() == official.keys()
    assert all(torch.equal(loaded[k], official[k]) for k in official)
    assert isinstance(load_model(tmp_path / "hf"), Sam2)
    with pytest.raises(ModelFamilyError, match="SAM 2 checkpoint"):
        load_sam(tmp_path / "hf")


def test_hf_fourier_copies_must_agree(hiera_t_model, tmp_path):
    hf = official_to_hf_sam2(hiera_t_model.state_dict())
    hf[HF_FOURIER_DUPLICATE] = hf[HF_FOURIER_DUPLICATE] + 1
    write_hf_sam2(tmp_path / "hf", hf)
    with pytest.raises(NotSamCheckpointError, match="hold different values"):
        load_sam2(tmp_path / "hf")


def test_neither_family(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": {"backbone.conv.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(NotSamCheckpointError, match="not a SAM 2 state dict"):
        load_sam2(path)
