"""Shared fixtures: the reference kit in ../shared/sam_reference, checkpoints built per session.

The goldens are never copied into the repository; tests that need them read them from the kit
(``SAM_REFERENCE_DIR`` overrides its location) and skip, saying why, only when it is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("SAM_REFERENCE_DIR", REPO.parent / "shared" / "sam_reference"))
IMAGES = ("landscape", "portrait", "small")
CASES = ("one_point_multi", "one_point_single", "three_points", "box", "box_and_point", "refine_with_mask")


def require_reference(golden: str = "golden/vit_b_seed0.npz") -> Path:
    """The kit's directory; skips (fails under ``SAM_REQUIRE_REFERENCE=1``) when ``golden`` is absent."""
    if not (REFERENCE_DIR / golden).exists():
        reason = f"reference kit not found at {REFERENCE_DIR} (set SAM_REFERENCE_DIR)"
        if os.environ.get("SAM_REQUIRE_REFERENCE") == "1":  # CI: a missing kit is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return require_reference()


@pytest.fixture(scope="session")
def golden(reference_dir: Path):
    with np.load(reference_dir / "golden" / "vit_b_seed0.npz") as z:
        data = {k: z[k] for k in z.files}
    data["meta"] = json.loads(bytes(data.pop("meta_json")))
    return data


@pytest.fixture(scope="session")
def make_checkpoint(reference_dir: Path, tmp_path_factory):
    """Build (once per session) the kit's deterministic checkpoint of a variant; returns its path."""
    cache = tmp_path_factory.mktemp("checkpoints")
    built: dict[tuple[str, int], Path] = {}

    def make(variant: str, seed: int = 0) -> Path:
        if (variant, seed) not in built:
            out = cache / f"sam_{variant}_seed{seed}.pth"
            script = reference_dir / "make_checkpoint.py"
            cmd = [sys.executable, str(script), variant, str(out), "--seed", str(seed)]
            subprocess.run(cmd, check=True, capture_output=True)
            built[(variant, seed)] = out
        return built[(variant, seed)]

    return make


SAM2_GOLDEN = "sam2/golden/sam2.1_hiera_t_seed0.npz"


@pytest.fixture(scope="session")
def sam2_reference_dir() -> Path:
    """The SAM 2.1 part of the kit (``sam2/``: manifests, goldens, make_checkpoint.py)."""
    return require_reference(SAM2_GOLDEN) / "sam2"


@pytest.fixture(scope="session")
def make_sam2_checkpoint(sam2_reference_dir: Path, tmp_path_factory):
    """Build (once per session) the SAM 2.1 kit's checkpoint of a variant (our name, e.g. ``"hiera_t"``);
    returns the path of the ``.pt`` file (``{"model": state_dict}``, the official layout)."""
    cache = tmp_path_factory.mktemp("sam2_checkpoints")
    built: dict[tuple[str, int], Path] = {}

    def make(variant: str, seed: int = 0) -> Path:
        if (variant, seed) not in built:
            out = cache / f"sam2.1_{variant}_seed{seed}.pt"
            script = sam2_reference_dir / "make_checkpoint.py"
            cmd = [sys.executable, str(script), f"sam2.1_{variant}", str(out), "--seed", str(seed)]
            subprocess.run(cmd, check=True, capture_output=True)
            built[(variant, seed)] = out
        return built[(variant, seed)]

    return make


@pytest.fixture(scope="session")
def sam2_golden(sam2_reference_dir: Path):
    """The SAM 2.1 goldens (``sam2.1_hiera_t_seed0.npz``, and ``<img>/input_tensor`` from the inputs
    file) as one dict, ``meta`` parsed from its JSON."""
    with np.load(sam2_reference_dir / "golden" / "sam2.1_hiera_t_seed0.npz") as z:
        data = {k: z[k] for k in z.files}
    with np.load(sam2_reference_dir / "golden" / "sam2.1_hiera_t_seed0_inputs.npz") as z:
        data.update({k: z[k] for k in z.files})
    data["meta"] = json.loads(bytes(data.pop("meta_json")))
    return data


@pytest.fixture(scope="session")
def vit_b_checkpoint(make_checkpoint) -> Path:
    return make_checkpoint("vit_b")


@pytest.fixture(scope="session")
def vit_b_model(vit_b_checkpoint):
    from sam_onnx.modeling import load_sam

    return load_sam(vit_b_checkpoint)


@pytest.fixture(scope="session")
def tiny_model():
    """A tiny variant from the same builder, with deterministic random weights."""
    from sam_onnx.modeling.random_weights import random_sam

    return random_sam("tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_model, tmp_path_factory) -> Path:
    """The tiny model saved as an official-layout ``.pth``."""
    import torch

    path = tmp_path_factory.mktemp("tiny") / "sam_tiny.pth"
    torch.save(tiny_model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def tiny_export(tiny_checkpoint, tmp_path_factory):
    """One default export of the tiny model plus its fp16 and int8 copies (validated)."""
    from sam_onnx.export import ExportOptions, export_sam

    out = tmp_path_factory.mktemp("tiny_export") / "onnx"
    return export_sam(tiny_checkpoint, out, ExportOptions(fp16=True, int8=True))


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_export) -> str:
    return str(tiny_export.output_dir)


@pytest.fixture(scope="session")
def tiny_predictor(tiny_model_dir):
    """A runtime predictor on the tiny export (CPU)."""
    from sam_onnx.runtime import SamPredictor

    return SamPredictor.from_export(tiny_model_dir)


@pytest.fixture(scope="session")
def vit_b_export(vit_b_checkpoint, golden, tmp_path_factory):
    """The kit checkpoint exported with fp16/int8 copies, validated on the kit's three images
    (shared by the export and runtime golden tests)."""
    from sam_onnx.export import ExportOptions, export_sam

    images = {name: golden[f"{name}/image"] for name in IMAGES}
    out = tmp_path_factory.mktemp("vit_b_export") / "onnx"
    return export_sam(vit_b_checkpoint, out, ExportOptions(fp16=True, int8=True), images=images, log=print)


@pytest.fixture(scope="session")
def slimsam_77_export(tmp_path_factory):
    """A SlimSAM-77-shaped (width 168, MLP 696) official-layout checkpoint of random weights and
    its fp32 export, validated on one small random image to keep it short (about a minute).
    Returns ``(checkpoint path, ExportResult, that image)``; shared by the derived-variant and the
    in-browser encoder tests."""
    from sam_onnx.export import export_sam
    from sam_onnx.modeling.random_weights import write_random_checkpoint
    from sam_onnx.variants import EncoderNumbers, variant_from_numbers

    root = tmp_path_factory.mktemp("slimsam_77")
    numbers = EncoderNumbers(168, 12, 12, 696, (2, 5, 8, 11))
    checkpoint = write_random_checkpoint(variant_from_numbers(numbers), root / "slimsam77.pth")
    image = np.random.default_rng(3).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    return checkpoint, export_sam(checkpoint, root / "onnx", images={"small": image}), image


def case_meta(golden, image: str, case: str) -> dict:
    img = next(i for i in golden["meta"]["images"] if i["name"] == image)
    return next(c for c in img["cases"] if c["name"] == case)


def unpack_masks(packed: np.ndarray, width: int) -> np.ndarray:
    """``... x ceil(W/8)`` packed bits -> ``... x W`` bool."""
    return np.unpackbits(packed, axis=-1)[..., :width].astype(bool)


# --- SAM 2.1 exports shared by the export and runtime tests ---------------------------------------


@pytest.fixture(scope="session")
def sam2_tiny_model():
    """The tiny SAM 2 variant with deterministic random weights (PyTorch's init plus noise); the
    hypernetworks' last layers x16 (the kit scales them x4), so that low-res logits pass the +-32
    clamp and the stability fallback is not decided by logits that all sit near 0."""
    import torch

    from sam_onnx.modeling.build import build_sam2

    torch.manual_seed(0)
    model = build_sam2("hiera_tiny")
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(0.02 * torch.randn_like(tensor))
        for mlp in model.sam_mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(16.0)
    return model


@pytest.fixture(scope="session")
def sam2_tiny_checkpoint(sam2_tiny_model, tmp_path_factory):
    import torch

    path = tmp_path_factory.mktemp("sam2_tiny") / "sam2.1_hiera_tiny_random.pt"
    torch.save({"model": sam2_tiny_model.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def sam2_tiny_export(sam2_tiny_checkpoint, tmp_path_factory):
    """A default export of the tiny SAM 2 variant (validated)."""
    from sam_onnx.export import ExportOptions, export_sam

    out = tmp_path_factory.mktemp("sam2_tiny_export") / "onnx"
    return export_sam(sam2_tiny_checkpoint, out, ExportOptions())


@pytest.fixture(scope="session")
def grounding_dino_dir(tmp_path_factory) -> Path:
    """A tiny random Grounding DINO in the Hugging Face layout with its tokenizer, written by
    transformers (``sam_onnx.export.grounding_dino_random``, shape ``test``)."""
    pytest.importorskip("transformers")
    from sam_onnx.export.grounding_dino_random import write_random_grounding_dino

    return write_random_grounding_dino("test", tmp_path_factory.mktemp("grounding_dino") / "hf")


@pytest.fixture(scope="session")
def detector_export(grounding_dino_dir, tmp_path_factory):
    """``grounding_dino_dir`` through sam-export-detector on a 320 x 320 canvas (validated)."""
    from sam_onnx.export.detector_export import export_detector

    return export_detector(grounding_dino_dir, tmp_path_factory.mktemp("detector") / "onnx", canvas=320)


@pytest.fixture(scope="session")
def hiera_t_export(make_sam2_checkpoint, sam2_golden, tmp_path_factory):
    """The SAM 2.1 kit's hiera_t checkpoint exported with fp16/int8 copies, validated on the kit's
    three images (shared by the export, runtime and web golden tests, as ``vit_b_export`` for v1)."""
    from sam_onnx.export import ExportOptions, export_sam

    images = {name: sam2_golden[f"{name}/image"] for name in IMAGES}
    out = tmp_path_factory.mktemp("hiera_t_export") / "onnx"
    # the image graphs only: the video graphs are exported from the video kit's checkpoint
    # (hiera_t_video_export)
    options = ExportOptions(fp16=True, int8=True, image_only=True)
    return export_sam(make_sam2_checkpoint("hiera_t"), out, options, images=images, log=print)


SAM2_VIDEO_GOLDEN = "sam2/video/sam2.1_hiera_t_seed0_video.npz"
VIDEO_OBJECT_SCORE_OFFSET = 0.6  # the video kit's weights: make_checkpoint.py --object-score-offset


@pytest.fixture(scope="session")
def sam2_video_checkpoint(tmp_path_factory) -> Path:
    """The SAM 2.1 video kit's checkpoint: hiera_t, seed 0, object-score offset 0.6 (official
    layout, video modules included)."""
    script = require_reference(SAM2_VIDEO_GOLDEN) / "sam2" / "make_checkpoint.py"
    out = tmp_path_factory.mktemp("sam2_video_ckpt") / "sam2.1_hiera_t_seed0_offset0.6.pt"
    cmd = [sys.executable, str(script), "sam2.1_hiera_t", str(out), "--seed", "0"]
    cmd += ["--object-score-offset", str(VIDEO_OBJECT_SCORE_OFFSET)]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def hiera_t_video_export(sam2_video_checkpoint, tmp_path_factory):
    """The video kit's checkpoint exported with the default options: the image graphs and the
    video graphs (video_heads, video_mask_prompt, memory_attention, memory_encoder), validated."""
    from sam_onnx.export import ExportOptions, export_sam

    out = tmp_path_factory.mktemp("hiera_t_video_export") / "onnx"
    return export_sam(sam2_video_checkpoint, out, ExportOptions(), log=print)


@pytest.fixture(scope="session")
def tiny_video_export(tmp_path_factory) -> Path:
    """The tiny SAM 2 video model of ``tests.video_torch_model`` (deterministic weights) exported
    with its video graphs, unvalidated (its tests compare it to the PyTorch model themselves)."""
    torch = pytest.importorskip("torch")
    from sam_onnx.contract import VIDEO_FILES
    from sam_onnx.export import ExportOptions, export_sam
    from tests.video_torch_model import tiny_torch_video_model

    folder = tmp_path_factory.mktemp("tiny_video")
    torch.save({"model": tiny_torch_video_model().model.state_dict()}, folder / "tiny.pt")
    options = ExportOptions(batched_decoder=False, fast_decoder=False, validate=False)
    export_sam(folder / "tiny.pt", folder / "onnx", options)
    if not all((folder / "onnx" / name).is_file() for name in VIDEO_FILES.values()):
        pytest.skip("sam-export does not write the video graphs yet")
    return folder / "onnx"


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray for the whole session (every --engine ray test): 2 CPUs, no dashboard."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install '.[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
