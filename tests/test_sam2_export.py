"""sam-export for SAM 2.1: the exported graphs against the SAM 2.1 kit's goldens (hiera_t), the
in-graph preprocessing against torch and numpy, and the export mechanics on the tiny variant."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from sam_onnx.errors import ConflictingOptionsError, ExportValidationError, InvalidInputError
from sam_onnx.export import ExportOptions, export_sam
from sam_onnx.export import sam2_decoder_graph as decoder_module
from sam_onnx.export.onnx_file import trace_to_onnx
from sam_onnx.export.sam2_decoder_graph import INPUT_NAMES, Sam2DecoderGraph
from sam_onnx.export.sam2_encoder_graph import Sam2Preprocess
from sam_onnx.export.sam2_reference import official_input
from sam_onnx.export.validate import synthetic_image
from sam_onnx.preprocess import sam2_preprocess
from tests.conftest import IMAGES, unpack_masks

LOGIT_ATOL = 1e-4  # the kit's decoder tolerance (low-res logits, IoU)
FEATURE_ATOL = 1e-3  # the kit's encoder tolerance
FEATURES = ("image_embed", "high_res_feats_0", "high_res_feats_1")


def session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def metadata(path) -> dict[str, str]:
    return session(path).get_modelmeta().custom_metadata_map


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hiera_t_sessions(hiera_t_export):
    return {key: session(paths[0]) for key, paths in hiera_t_export.files.items()}


@pytest.fixture(scope="session")
def hiera_t_multimask(make_sam2_checkpoint, tmp_path_factory):
    """decoder.onnx exported with --multimask (decoder only)."""
    out = tmp_path_factory.mktemp("hiera_t_multi") / "onnx"
    options = ExportOptions(encoder=False, batched_decoder=False, multimask=True)
    return session(export_sam(make_sam2_checkpoint("hiera_t"), out, options).files["decoder"][0])


# --- (a) golden conformance of the exported hiera_t graphs -------------------------------------


def golden_case_feed(golden, image: str, case: str) -> dict[str, np.ndarray]:
    """The decoder inputs of a golden case: the golden features and the prompt as the official
    prompt encoder received it, without the padding point (the graph appends it)."""
    key = f"{image}/{case}"
    h, w = golden[f"{image}/image"].shape[:2]
    has_mask = f"{key}/mask_input" in golden
    return {
        "image_embeddings": golden[f"{image}/image_embed"],
        "high_res_feats_0": golden[f"{image}/high_res_feats_0"],
        "high_res_feats_1": golden[f"{image}/high_res_feats_1"],
        "point_coords": golden[f"{key}/model_point_coords"],
        "point_labels": golden[f"{key}/model_point_labels"].astype(np.float32),
        "mask_input": golden[f"{key}/mask_input"][None]
        if has_mask
        else np.zeros((1, 1, 256, 256), np.float32),
        "has_mask_input": np.array([1.0 if has_mask else 0.0], np.float32),
        "orig_im_size": np.array([h, w], np.float32),
    }


def golden_cases(golden, image: str) -> list[dict]:
    return next(i for i in golden["meta"]["images"] if i["name"] == image)["cases"]


def assert_matches_golden(golden, image: str, case: str, masks, iou, low_res) -> None:
    key = f"{image}/{case}"
    np.testing.assert_allclose(iou[0], golden[f"{key}/iou"], rtol=0, atol=LOGIT_ATOL)
    np.testing.assert_allclose(low_res[0], golden[f"{key}/low_res_logits"], rtol=0, atol=LOGIT_ATOL)
    width = masks.shape[-1]
    expected = unpack_masks(golden[f"{key}/masks_packed"], width)
    exempt = unpack_masks(golden[f"{key}/near_zero_packed"], width)
    assert masks[0].shape == expected.shape
    bad = ((masks[0] > 0) != expected) & ~exempt
    assert not bad.any(), f"{case}: {int(bad.sum())} mask pixels differ outside the near-zero band"


@pytest.mark.slow
@pytest.mark.parametrize("image", IMAGES)
def test_encoder_reproduces_golden_features(sam2_golden, hiera_t_sessions, image):
    got = hiera_t_sessions["encoder"].run(None, {"image": sam2_golden[f"{image}/input_tensor"]})
    for name, value in zip(FEATURES, got, strict=True):
        np.testing.assert_allclose(
            value, sam2_golden[f"{image}/{name}"], rtol=0, atol=FEATURE_ATOL, err_msg=name
        )


@pytest.mark.slow
@pytest.mark.parametrize("image", IMAGES)
def test_decoder_reproduces_every_golden_case(sam2_golden, hiera_t_sessions, hiera_t_multimask, image):
    """Single-mask cases through decoder.onnx, the multimask case through a --multimask
    decoder.onnx; every case through the batched decoder, whose four tokens hold the golden IoUs,
    object score and (by the official rule) the golden selected token."""
    for case in golden_cases(sam2_golden, image):
        name, feed = case["name"], golden_case_feed(sam2_golden, image, case["name"])
        graph = hiera_t_multimask if case["multimask"] else hiera_t_sessions["decoder"]
        masks, iou, low_res = graph.run(None, feed)
        assert_matches_golden(sam2_golden, image, name, masks, iou, low_res)
        all_masks, all_iou, all_low, object_score = hiera_t_sessions["decoder_batched"].run(None, feed)
        key = f"{image}/{name}"
        np.testing.assert_allclose(all_iou[0], sam2_golden[f"{key}/all_iou"], rtol=0, atol=LOGIT_ATOL)
        np.testing.assert_allclose(
            object_score[0], sam2_golden[f"{key}/object_score_logits"], rtol=0, atol=LOGIT_ATOL
        )
        tokens = case["selected_tokens"]
        picked = (all_masks[:, tokens], all_iou[:, tokens], all_low[:, tokens])
        assert_matches_golden(sam2_golden, image, name, *picked)
        if not case["multimask"]:  # decoder.onnx chose the golden token: its output is that row
            np.testing.assert_allclose(low_res, all_low[:, tokens], rtol=0, atol=LOGIT_ATOL)


@pytest.mark.slow
def test_export_validation_passed_on_the_kit_images(hiera_t_export):
    report = hiera_t_export.report
    assert report.ok, report.failures
    assert {c.case.split("/")[0] for c in report.checks} == set(IMAGES)
    graphs = {"encoder.onnx", "decoder.onnx", "decoder_batched.onnx", "decoder_image+click"}
    assert {c.graph for c in report.checks} == graphs
    outputs = {c.output for c in report.checks}
    assert {"high_res_feats_0", "high_res_feats_1", "object_score_logits", "masks"} <= outputs
    worst = {}
    for c in report.checks:
        worst[c.output] = max(worst.get(c.output, 0.0), c.max_abs)
    print("validation max abs per output:", {k: f"{v:.3g}" for k, v in worst.items()})


@pytest.mark.slow
def test_export_metadata_says_sam2(hiera_t_export):
    for key, paths in hiera_t_export.files.items():
        meta = metadata(paths[0])
        assert meta["family"] == "sam2" and meta["variant"] == "hiera_t" and meta["resize"] == "square", key
        assert json.loads(meta["pixel_mean"]) == [0.485, 0.456, 0.406]
        assert json.loads(meta["pixel_std"]) == [0.229, 0.224, 0.225]
    decoder = metadata(hiera_t_export.files["decoder"][0])
    assert decoder["contract"].startswith("sam-onnx sam2:") and decoder["num_masks"] == "1"
    assert decoder["padding_point"] == "appended_by_graph"
    batched = metadata(hiera_t_export.files["decoder_batched"][0])
    assert batched["num_masks"] == "4" and batched["outputs"].endswith("object_score_logits")
    assert hiera_t_export.manifest["family"] == "sam2"


# --- (b) the golden comparison can fail -----------------------------------------------------------


@pytest.mark.slow
def test_a_perturbed_layer_norm_fails_the_golden_comparison(make_sam2_checkpoint, sam2_golden, tmp_path):
    """One LayerNorm weight of the decoder's transformer x1.01 before export: the graph no longer
    reproduces the goldens (the export's own validation compares with the same perturbed model, so
    it is off here)."""
    state = torch.load(make_sam2_checkpoint("hiera_t"), map_location="cpu")
    state["model"]["sam_mask_decoder.transformer.norm_final_attn.weight"] *= 1.01
    path = tmp_path / "perturbed.pt"
    torch.save(state, path)
    options = ExportOptions(encoder=False, batched_decoder=False, validate=False)
    decoder = session(export_sam(path, tmp_path / "onnx", options).files["decoder"][0])
    feed = golden_case_feed(sam2_golden, "landscape", "box")
    with pytest.raises(AssertionError, match="Mismatched elements"):
        assert_matches_golden(sam2_golden, "landscape", "box", *decoder.run(None, feed))


# --- (c) the uint8 encoder's preprocessing --------------------------------------------------------


@pytest.fixture(scope="module")
def preprocess_session(tmp_path_factory):
    """:class:`Sam2Preprocess` alone, traced as the encoder graph traces it (H, W symbolic)."""

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.preprocess = Sam2Preprocess()
            self.input_names, self.output_names = ("image",), ("input_tensor",)
            self.dynamic_axes = {"image": {0: "height", 1: "width"}}

        def example_inputs(self):
            return (torch.zeros(600, 900, 3, dtype=torch.uint8),)

        def forward(self, image):
            return self.preprocess(image)

    model = trace_to_onnx(Wrapper(), opset=17, scratch_dir=tmp_path_factory.mktemp("pre"))
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("hw", [(1500, 2000), (2000, 1500), (700, 525), (123, 77), (1024, 1024), (1, 3000)])
def test_in_graph_resize_matches_torch_antialias_and_numpy(preprocess_session, hw):
    """Down- and up-scaling, both orientations, no-op and extreme aspect: the graph's encoder input
    equals torch's ``F.interpolate(antialias=True)`` preprocessing and the numpy one within 1e-5."""
    image = synthetic_image(hw, seed=sum(hw))
    got = preprocess_session.run(None, {"image": image})[0]
    np.testing.assert_allclose(got, official_input(image).numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(got, sam2_preprocess(image), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_uint8_encoder_equals_numpy_preprocessing_and_normalized_encoder(
    sam2_tiny_checkpoint, sam2_tiny_export, tmp_path
):
    options = ExportOptions(decoder=False, encoder_input="uint8", fp16=True)
    u8 = export_sam(sam2_tiny_checkpoint, tmp_path / "onnx", options)
    assert u8.report.ok, u8.report.failures
    graph, normalized = session(u8.files["encoder"][0]), session(sam2_tiny_export.files["encoder"][0])
    assert [(i.name, i.type) for i in graph.get_inputs()] == [("image", "tensor(uint8)")]
    fp16 = session(u8.files["encoder_fp16"][0])
    for hw in [(1500, 2000), (300, 200)]:  # antialiased downscaling, upscaling
        image = synthetic_image(hw, seed=hw[0])
        want = normalized.run(None, {"image": sam2_preprocess(image)})
        for got, expected in zip(graph.run(None, {"image": image}), want, strict=True):
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
        # the fp16 copy keeps the in-graph resize in float32: as close as the normalised fp16 graph
        half = fp16.run(None, {"image": image})
        assert max(float(np.abs(h - w).max()) for h, w in zip(half, want, strict=True)) < 0.05


# --- (d) reduced precision on the kit's prompts -----------------------------------------------------


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.mark.slow
def test_reduced_precision_mask_iou_on_the_kit_prompts(sam2_golden, hiera_t_sessions, hiera_t_export):
    """fp16 / int8 encoder (features into the fp32 decoder) and int8 decoder (golden features):
    single-mask IoU against the fp32 graphs on every golden prompt; printed, mean >= 0.9."""
    s = hiera_t_sessions
    ious: dict[str, list[float]] = {"encoder.fp16": [], "encoder.int8": [], "decoder.int8": []}
    for image in IMAGES:
        x = {"image": sam2_golden[f"{image}/input_tensor"]}
        features = {
            k: dict(zip(INPUT_NAMES[:3], s[k].run(None, x), strict=True))
            for k in ("encoder", "encoder_fp16", "encoder_int8")
        }
        for case in golden_cases(sam2_golden, image):
            feed = golden_case_feed(sam2_golden, image, case["name"])
            ref = s["decoder"].run(None, {**feed, **features["encoder"]})[0] > 0
            for key, label in (("encoder_fp16", "encoder.fp16"), ("encoder_int8", "encoder.int8")):
                got = s["decoder"].run(None, {**feed, **features[key]})[0] > 0
                ious[label].append(_iou(got, ref))
            fp32, int8 = s["decoder"].run(None, feed)[0], s["decoder_int8"].run(None, feed)[0]
            ious["decoder.int8"].append(_iou(int8 > 0, fp32 > 0))
    for label, values in ious.items():
        mean, least = float(np.mean(values)), min(values)
        print(f"{label}: mask IoU vs fp32 on {len(values)} kit prompts: mean {mean:.4f} min {least:.4f}")
        assert np.mean(values) >= 0.9, label
    for q in hiera_t_export.report.quality:
        print(f"export check {q.graph}: mask IoU mean {q.mask_iou_mean:.4f} min {q.mask_iou_min:.4f}")
        assert q.ok and q.finite


# --- (e) the tiny variant: validation, options, families ---------------------------------------------


@pytest.mark.slow  # shares the validated tiny SAM 2 export (tens of seconds)
def test_tiny_export_validates_every_graph(sam2_tiny_export):
    report = sam2_tiny_export.report
    assert report.ok, report.failures
    assert sorted(p.name for p in sam2_tiny_export.output_dir.iterdir()) == [
        "decoder.onnx",
        "decoder_batched.onnx",
        "decoder_click.onnx",
        "decoder_image.onnx",
        "encoder.onnx",
        "export.json",
    ]
    cases = {c.case for c in report.checks if c.graph == "decoder.onnx"}
    assert {c.split("/")[1] for c in cases} == {"one_point", "five_points", "box", "mask_input"}
    assert {c.split("/")[0] for c in cases} == {"landscape", "portrait", "tiny"}
    assert {c.case.split("/")[1] for c in report.checks if c.graph == "decoder_batched.onnx"} == {
        "batch_of_4",
        "batch_of_1",
    }


@pytest.mark.slow  # shares the validated tiny SAM 2 export (tens of seconds)
def test_tiny_export_interface(sam2_tiny_export):
    encoder = session(sam2_tiny_export.files["encoder"][0])
    assert [(i.name, i.shape) for i in encoder.get_inputs()] == [("image", [1, 3, 1024, 1024])]
    assert [(o.name, o.shape) for o in encoder.get_outputs()] == [
        ("image_embeddings", [1, 256, 64, 64]),
        ("high_res_feats_0", [1, 32, 256, 256]),
        ("high_res_feats_1", [1, 64, 128, 128]),
    ]
    decoder = session(sam2_tiny_export.files["decoder"][0])
    assert [i.name for i in decoder.get_inputs()] == list(INPUT_NAMES)
    assert isinstance(decoder.get_inputs()[3].shape[1], str)  # N symbolic
    assert [o.name for o in decoder.get_outputs()] == ["masks", "iou_predictions", "low_res_masks"]
    batched = session(sam2_tiny_export.files["decoder_batched"][0])
    assert [o.name for o in batched.get_outputs()][-1] == "object_score_logits"


@pytest.mark.slow  # shares the validated tiny SAM 2 export (tens of seconds)
def test_batched_rows_equal_single_calls_and_single_mask_rule(sam2_tiny_export, sam2_tiny_model):
    """Row b of the batched decoder = a one-prompt call; the official rule applied to its four
    tokens gives decoder.onnx's answer; low_res_masks are clamped, masks are not."""
    from sam_onnx.modeling.sam2 import single_mask_index

    batched, single = (session(sam2_tiny_export.files[k][0]) for k in ("decoder_batched", "decoder"))
    rng = np.random.default_rng(3)
    feeds = {
        "image_embeddings": rng.normal(size=(1, 256, 64, 64)).astype(np.float32),
        "high_res_feats_0": rng.normal(size=(1, 32, 256, 256)).astype(np.float32),
        "high_res_feats_1": rng.normal(size=(1, 64, 128, 128)).astype(np.float32),
        "point_coords": (rng.random((3, 2, 2)) * 1024).astype(np.float32),
        "point_labels": np.array([[1, 0], [2, 3], [1, 1]], np.float32),
        "mask_input": (rng.normal(size=(3, 1, 256, 256)) * 40).astype(np.float32),
        "has_mask_input": np.array([0, 0, 1], np.float32),
        "orig_im_size": np.array([300, 451], np.float32),
    }
    masks, iou, low_res, score = batched.run(None, feeds)
    assert masks.shape == (3, 4, 300, 451) and low_res.shape == (3, 4, 256, 256) and score.shape == (3, 1)
    assert np.abs(low_res).max() == 32.0 and np.abs(masks).max() > 32.0
    for b in range(3):
        row = {k: (v[b : b + 1] if k in INPUT_NAMES[3:7] else v) for k, v in feeds.items()}
        for got, want in zip(batched.run(None, row), (masks, iou, low_res, score), strict=True):
            np.testing.assert_allclose(got[0], want[b], rtol=0, atol=1e-4)
        # clamping at +-32 keeps the stability rule's counts at +-0.05, so the clamped rows suffice
        best = single_mask_index(
            torch.from_numpy(low_res[b : b + 1]), torch.from_numpy(iou[b : b + 1]), delta=0.05, threshold=0.98
        )
        token = int(best[0, 0])
        one_masks, one_iou, one_low = single.run(None, row)
        np.testing.assert_allclose(one_iou[0, 0], iou[b, token], rtol=0, atol=1e-5)
        np.testing.assert_allclose(one_low[0, 0], low_res[b, token], rtol=0, atol=1e-4)
        np.testing.assert_allclose(one_masks[0, 0], masks[b, token], rtol=0, atol=1e-4)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_validation_catches_a_graph_without_the_padding_point(sam2_tiny_checkpoint, tmp_path, monkeypatch):
    """The graph must append the padding point; the validation's reference is the official prompt
    encoder, so a graph that forgets it fails the export and writes nothing."""
    monkeypatch.setattr(decoder_module, "append_padding_point", lambda coords, labels: (coords, labels))
    out = tmp_path / "onnx"
    with pytest.raises(ExportValidationError) as info:
        export_sam(sam2_tiny_checkpoint, out, ExportOptions(encoder=False, batched_decoder=False))
    assert any(f.startswith("decoder.onnx low_res_masks on") for f in info.value.failures), (
        info.value.failures
    )
    assert not out.exists()


@pytest.mark.slow
def test_multimask_decoder_returns_tokens_1_to_3(sam2_tiny_checkpoint, sam2_tiny_model, tmp_path):
    options = ExportOptions(encoder=False, batched_decoder=False, multimask=True)
    result = export_sam(sam2_tiny_checkpoint, tmp_path / "onnx", options)
    assert result.report.ok, result.report.failures
    assert metadata(result.files["decoder"][0])["num_masks"] == "3"
    wrapper = Sam2DecoderGraph(sam2_tiny_model, batched=True)
    feed = wrapper.example_inputs(num_points=2, batch=1, orig_hw=(50, 70))
    got = session(result.files["decoder"][0]).run(
        None, {n: t.numpy() for n, t in zip(INPUT_NAMES, feed, strict=True)}
    )
    with torch.inference_mode():
        all_masks, all_iou, all_low, _ = wrapper(*feed)
    np.testing.assert_allclose(got[1], all_iou[:, 1:].numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(got[2], all_low[:, 1:].numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(got[0], all_masks[:, 1:].numpy(), rtol=0, atol=1e-4)


@pytest.mark.slow
def test_families_are_never_confused(sam2_tiny_export, tiny_checkpoint, sam2_tiny_checkpoint, tmp_path):
    """A SAM v1 export says family sam (long-side resize, 0..255 statistics), a SAM 2 export sam2;
    a model type of the other family is refused before anything is written."""
    options = ExportOptions(encoder=False, batched_decoder=False, validate=False)  # metadata only
    v1 = export_sam(tiny_checkpoint, tmp_path / "v1", options)
    v1_meta = metadata(v1.files["decoder"][0])
    assert (
        v1_meta["family"] == "sam" and v1_meta["resize"] == "long_side" and v1_meta["contract"] == "official"
    )
    assert json.loads(v1_meta["pixel_mean"]) == [123.675, 116.28, 103.53]
    for paths in sam2_tiny_export.files.values():
        assert metadata(paths[0])["family"] == "sam2"
    assert v1.manifest["family"] == "sam" and sam2_tiny_export.manifest["family"] == "sam2"
    with pytest.raises(InvalidInputError, match="hiera"):
        export_sam(sam2_tiny_checkpoint, tmp_path / "a", ExportOptions(model_type="vit_b"))
    with pytest.raises(InvalidInputError):
        export_sam(tiny_checkpoint, tmp_path / "b", ExportOptions(model_type="hiera_t"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_v1_only_options_are_refused_for_sam2(sam2_tiny_checkpoint, tmp_path):
    with pytest.raises(ConflictingOptionsError, match="use_stability_score"):
        export_sam(sam2_tiny_checkpoint, tmp_path / "o", ExportOptions(use_stability_score=True))
    assert not (tmp_path / "o").exists()


def test_cli_model_type_accepts_sam2_names():
    from sam_onnx.export.cli import build_parser

    args = build_parser().parse_args(["x.pt", "-o", "out", "--model-type", "hiera_t"])
    assert args.model_type == "hiera_t"
    assert ExportOptions(model_type="hiera_b+").model_type == "hiera_b+"


@pytest.mark.parametrize("orig_hw", [(37, 1000), (427, 640), (1500, 2250), (1, 1), (256, 256)])
def test_upscaling_is_one_bilinear_resize_of_the_unclamped_logits(orig_hw):
    """No crop, no clamp before the resize, torch's interpolation weights: SAM 2's postprocessing
    (ONNX Resize's own coordinate arithmetic would be off by several 1e-4 at these magnitudes)."""
    low_res = torch.randn(1, 2, 256, 256) * 50
    got = decoder_module.upscale_to_original(low_res, torch.tensor(orig_hw, dtype=torch.float32))
    want = F.interpolate(low_res, orig_hw, mode="bilinear", align_corners=False)
    torch.testing.assert_close(got, want, rtol=0, atol=5e-5)


def test_int8_picks_the_same_products_in_the_uint8_encoder(sam2_tiny_checkpoint, sam2_tiny_export, tmp_path):
    """The uint8 encoder's in-graph resize must not hide the later shapes from shape inference:
    int8 picks its products by rows (SAM2_INT8_MAX_ROWS), and with none picked the quantiser
    would take every node (hiera_t's --encoder-input uint8 --int8 failed so)."""
    import onnx

    from sam_onnx.export.precision import SAM2_INT8_MAX_ROWS, int8_nodes

    options = ExportOptions(decoder=False, encoder_input="uint8", validate=False)
    u8 = export_sam(sam2_tiny_checkpoint, tmp_path / "onnx", options)

    def picked(path):
        return sorted(int8_nodes(onnx.load(str(path)), "encoder", max_rows=SAM2_INT8_MAX_ROWS))

    normalized = picked(sam2_tiny_export.files["encoder"][0])
    assert normalized, "the tiny encoder has products on at most SAM2_INT8_MAX_ROWS rows"
    assert picked(u8.files["encoder"][0]) == normalized


def test_int8_refuses_a_graph_with_no_product_to_quantise(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from sam_onnx.errors import ExportError
    from sam_onnx.export.precision import to_int8

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    with pytest.raises(ExportError, match="no product qualifies"):
        to_int8(model, tmp_path, "encoder")
