"""The OpenVINO engine: onnxruntime-openvino's execution provider at f32 and bf16 against the goldens.

Most tests need the ``[openvino]`` extra (onnxruntime-openvino in place of onnxruntime) and skip,
saying why, without it; ``SAM_REQUIRE_OPENVINO=1`` (CI's second venv) turns that skip into a
failure. The precision choice, the conflict check and the warning when OpenVINO is asked for but
absent run in any environment.

Tolerances: at f32, those of tests/test_runtime_golden.py (1e-3 on the embedding, IoU
predictions and low-res logits; mask pixels may differ only where the golden logit is within 1e-3
of 0). At bf16 (8 bits of mantissa in the products), stated here and measured on the kit's
seed-0 ViT-B: embedding max abs <= BF16_EMBEDDING_ATOL, IoU predictions within BF16_IOU_ATOL,
and each mask within BF16_MIN_MASK_IOU of the golden mask (mean over the prompts >=
BF16_MEAN_MASK_IOU).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from sam_onnx.errors import DependencyConflictError, ProviderError
from sam_onnx.runtime import SamPredictor, SessionConfig, ort
from sam_onnx.runtime.core import session as session_module
from tests.conftest import CASES, IMAGES, case_meta, unpack_masks

OPENVINO = "OpenVINOExecutionProvider"
HAS_OPENVINO = OPENVINO in ort.get_available_providers()
TOLERANCE = 1e-3
MASK_LOGIT_MARGIN = 1e-3
BF16_EMBEDDING_ATOL = 0.15
BF16_IOU_ATOL = 0.03
# Every mask of every golden case (multimask cases: all three, the weaker ones included); the
# runs here gave min 0.9489, mean 0.9876 over the 24 masks.
BF16_MIN_MASK_IOU = 0.93
BF16_MEAN_MASK_IOU = 0.97
INT8_MIN_COSINE = 0.9  # the nncf int8 encoder's embedding against fp32 (ViT-B, random input: 0.977)


def require_openvino() -> None:
    """Skip without the OpenVINO provider; fail instead under ``SAM_REQUIRE_OPENVINO=1``."""
    if HAS_OPENVINO:
        return
    reason = (
        f"onnxruntime {ort.__version__} here offers {ort.get_available_providers()}, no {OPENVINO} "
        "(install the [openvino] extra in its own venv: see .ci/run)"
    )
    if os.environ.get("SAM_REQUIRE_OPENVINO") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


# --- any environment ------------------------------------------------------------------------------
def test_onnxruntime_and_onnxruntime_openvino_are_refused(monkeypatch):
    from sam_onnx.runtime.core import backend

    installed = {"onnxruntime", "onnxruntime-openvino"}

    def version(name: str) -> str:
        if name not in installed:
            raise backend.metadata.PackageNotFoundError(name)
        return "1.24.1"

    monkeypatch.setattr(backend.metadata, "version", version)
    with pytest.raises(DependencyConflictError, match="onnxruntime and onnxruntime-openvino") as info:
        backend.onnxruntime_module()
    assert "pip uninstall -y onnxruntime onnxruntime-openvino" in str(info.value)
    assert "'.[openvino]'" in str(info.value)


@pytest.mark.parametrize(
    ("asked", "flags", "expected"),
    [
        ("auto", ["avx512_bf16"], "bf16"),
        ("auto", ["amx_bf16"], "bf16"),
        ("auto", [], "f32"),
        ("f32", ["avx512_bf16"], "f32"),
        ("bf16", [], "bf16"),
    ],
)
def test_precision_choice(monkeypatch, asked, flags, expected):
    """``auto`` takes bf16 exactly where the CPU has native bf16, and says which it took."""
    monkeypatch.setattr(session_module, "cpu_bf16_flags", lambda: flags)
    config = SessionConfig(providers=("openvino",), openvino_precision=asked)
    precision, why = session_module.openvino_precision(config)
    assert precision == expected
    assert why.startswith("auto") == (asked == "auto")
    if asked == "auto" and flags:
        assert flags[0] in why
    _, options = session_module._provider_entry(OPENVINO, config)
    assert options["device_type"] == "CPU"
    assert json.loads(options["load_config"]) == {"CPU": {"INFERENCE_PRECISION_HINT": expected}}


def test_auto_runs_the_decoder_graphs_in_f32(monkeypatch):
    """``auto`` is bf16 for the encoder only; an asked-for precision holds for every graph."""
    monkeypatch.setattr(session_module, "cpu_bf16_flags", lambda: ["avx512_bf16"])
    config = SessionConfig(providers=("openvino",))
    assert session_module.openvino_precision(config, "encoder")[0] == "bf16"
    for role in ("decoder", "decoder_image", "decoder_click"):
        assert session_module.openvino_precision(config, role) == ("f32", "auto: decoder graphs run in f32")
        _, options = session_module._provider_entry(OPENVINO, config, role)
        assert json.loads(options["load_config"]) == {"CPU": {"INFERENCE_PRECISION_HINT": "f32"}}
    asked = SessionConfig(providers=("openvino",), openvino_precision="bf16")
    assert session_module.openvino_precision(asked, "decoder_click") == ("bf16", "asked for")


def test_cpu_flags_read_from_proc_cpuinfo():
    flags = session_module.cpu_bf16_flags()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        assert flags == []
        return
    for flag in session_module.BF16_CPU_FLAGS:
        assert (flag in flags) == (f" {flag}" in text)


def test_unknown_precision_is_refused(tiny_export):
    config = SessionConfig(providers=("openvino",), openvino_precision="fp8")
    with pytest.raises(ProviderError, match="openvino_precision must be one of"):
        session_module.open_session(tiny_export.files["decoder"][0], config, role="decoder")


def test_auto_is_openvino_exactly_where_offered():
    expected = [OPENVINO, "CPUExecutionProvider"] if HAS_OPENVINO else ["CPUExecutionProvider"]
    assert SessionConfig().provider_names() == expected


def test_openvino_requested_without_it(tiny_export, monkeypatch):
    """Without onnxruntime-openvino: strict raises naming the extra; otherwise one warning, CPU runs."""
    if HAS_OPENVINO:
        pytest.skip("the OpenVINO provider is installed here; this checks an environment without it")
    monkeypatch.setattr(session_module, "_warned", set())
    path = tiny_export.files["decoder"][0]
    with pytest.raises(ProviderError, match=r"OpenVINOExecutionProvider.*\[openvino\] extra"):
        session_module.open_session(path, SessionConfig(providers=("openvino",), strict=True), role="decoder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = SessionConfig(providers=("openvino",))
        predictor = SamPredictor.from_export(tiny_export.output_dir, config=config)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "OpenVINOExecutionProvider not in use" in messages[0]
    assert predictor.providers == ["CPUExecutionProvider"] and predictor.engine == "CPUExecutionProvider"


# --- with the OpenVINO provider -------------------------------------------------------------------
@pytest.fixture(scope="module")
def ov_export(vit_b_checkpoint, tmp_path_factory):
    """The kit's ViT-B export without the PyTorch parity check (the goldens check it here)."""
    require_openvino()
    from sam_onnx.export import ExportOptions, export_sam

    out = tmp_path_factory.mktemp("ov_export") / "onnx"
    return export_sam(vit_b_checkpoint, out, ExportOptions(validate=False))


def _predictor(export, precision: str) -> SamPredictor:
    config = SessionConfig(providers=("openvino",), openvino_precision=precision, strict=True)
    return SamPredictor.from_export(export.output_dir, config=config)


def _embeddings(predictor, reference_dir):
    return {name: predictor.embed(next((reference_dir / "images").glob(f"{name}_*.png"))) for name in IMAGES}


def _predict(predictor, golden, embedding, image, case):
    meta = case_meta(golden, image, case)
    predictor.set_embedding(embedding)
    return predictor.predict(
        point_coords=None if meta["points"] is None else np.asarray(meta["points"]),
        point_labels=None if meta["labels"] is None else np.asarray(meta["labels"]),
        box=None if meta["box"] is None else np.asarray(meta["box"]),
        mask_input=golden[f"{image}/{case}/mask_input"] if case == "refine_with_mask" else None,
        multimask_output=meta["multimask"],
    )


@pytest.mark.slow
def test_openvino_f32_reproduces_goldens(ov_export, golden, reference_dir):
    predictor = _predictor(ov_export, "f32")
    assert predictor.providers[0] == OPENVINO and "CPU, f32; asked for" in predictor.engine
    embeddings = _embeddings(predictor, reference_dir)
    for image in IMAGES:
        np.testing.assert_allclose(
            embeddings[image].embedding, golden[f"{image}/embedding"], rtol=0, atol=TOLERANCE
        )
        for case in CASES:
            key = f"{image}/{case}"
            pred = _predict(predictor, golden, embeddings[image], image, case)
            expected = unpack_masks(golden[f"{key}/masks_packed"], pred.masks.shape[-1])
            near_zero = np.abs(golden[f"{key}/mask_logits_f16"].astype(np.float32)) <= MASK_LOGIT_MARGIN
            differ = (pred.masks != expected) & ~near_zero
            assert not differ.any(), f"{key}: {int(differ.sum())} mask pixels differ away from 0"
            np.testing.assert_allclose(pred.iou_predictions, golden[f"{key}/iou"], rtol=0, atol=TOLERANCE)
            np.testing.assert_allclose(
                pred.low_res_logits, golden[f"{key}/low_res_logits"], rtol=0, atol=TOLERANCE
            )


@pytest.mark.slow
def test_openvino_bf16_within_stated_tolerances(ov_export, golden, reference_dir):
    predictor = _predictor(ov_export, "bf16")
    assert "CPU, bf16; asked for" in predictor.engine
    embeddings = _embeddings(predictor, reference_dir)
    ious = []
    for image in IMAGES:
        error = np.abs(embeddings[image].embedding - golden[f"{image}/embedding"]).max()
        assert error <= BF16_EMBEDDING_ATOL, f"{image}: embedding max abs {error:.4f}"
        assert error > 0, "bf16 gave exactly the f32 embedding: the precision hint was not applied"
        for case in CASES:
            key = f"{image}/{case}"
            pred = _predict(predictor, golden, embeddings[image], image, case)
            expected = unpack_masks(golden[f"{key}/masks_packed"], pred.masks.shape[-1])
            np.testing.assert_allclose(pred.iou_predictions, golden[f"{key}/iou"], rtol=0, atol=BF16_IOU_ATOL)
            for got, want in zip(pred.masks, expected, strict=True):
                union = np.logical_or(got, want).sum()
                ious.append(float(np.logical_and(got, want).sum() / union) if union else 1.0)
    summary = f"mask IoU vs the goldens: min {min(ious):.4f}, mean {np.mean(ious):.4f} over {len(ious)}"
    print(summary)
    assert min(ious) >= BF16_MIN_MASK_IOU and np.mean(ious) >= BF16_MEAN_MASK_IOU, summary


def test_default_engine_is_openvino_and_says_its_precision(tiny_export, monkeypatch):
    require_openvino()
    monkeypatch.setattr(session_module, "cpu_bf16_flags", lambda: ["avx512_bf16"])
    predictor = SamPredictor.from_export(tiny_export.output_dir)
    assert predictor.providers[0] == OPENVINO
    assert predictor.engine == f"{OPENVINO} (CPU, bf16; auto: the CPU has native bf16 (avx512_bf16))"
    decoders = [predictor.decoder] + ([predictor.fast.image, predictor.fast.click] if predictor.fast else [])
    assert len(decoders) == 3, "the tiny export carries the fast pair"
    for graph in decoders:
        assert graph.engine == f"{OPENVINO} (CPU, f32; auto: decoder graphs run in f32)", graph.path
    cpu = SamPredictor.from_export(tiny_export.output_dir, config=SessionConfig(providers=("cpu",)))
    assert cpu.engine == "CPUExecutionProvider"


def test_openvino_int8_encoder_is_written_listed_and_runs(tiny_export, tmp_path, golden):
    """nncf's int8 QDQ encoder: written beside the export, listed in export.json, opened by
    ``--precision ov-int8`` on OpenVINO, and its embedding close to the fp32 one (the tiny model's
    random weights; ViT-B's mask IoU is in docs/BENCHMARKS.md)."""
    require_openvino()
    import shutil

    import onnx

    from sam_onnx.export.openvino_int8 import MANIFEST_KEY, OUTPUT_FILE, write_openvino_int8

    export_dir = tmp_path / "onnx"
    shutil.copytree(tiny_export.output_dir, export_dir)
    path = write_openvino_int8(export_dir)
    assert path == export_dir / OUTPUT_FILE
    assert json.loads((export_dir / "export.json").read_text())["graphs"][MANIFEST_KEY]["file"] == OUTPUT_FILE
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    config = SessionConfig(providers=("openvino",), openvino_precision="f32", strict=True)
    int8 = SamPredictor.from_export(export_dir, precision="ov-int8", config=config)
    fp32 = SamPredictor.from_export(export_dir, config=SessionConfig(providers=("cpu",)))
    assert int8.encoder.path == path and int8.providers[0] == OPENVINO
    image = golden["landscape/image"]
    a, b = fp32.embed(image).embedding.ravel(), int8.embed(image).embedding.ravel()
    cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    print(f"tiny encoder, nncf int8 vs fp32: embedding cosine {cosine:.4f}")
    assert cosine >= INT8_MIN_COSINE, f"embedding cosine {cosine:.4f}"
