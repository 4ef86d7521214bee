"""sam-export on the tiny variant: graphs, metadata, options, precision copies and the validation gate."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from sam_onnx.errors import ConflictingOptionsError, ExportValidationError, InvalidInputError
from sam_onnx.export import ExportOptions, export_sam, onnx_file, validate
from sam_onnx.export import decoder_graph as decoder_module
from sam_onnx.export.decoder_graph import DecoderGraph, select_single_mask
from sam_onnx.export.encoder_graph import EncoderGraph
from sam_onnx.export.validate import synthetic_image
from sam_onnx.modeling.build import build_sam
from sam_onnx.modeling.checkpoint import checkpoint_weights
from sam_onnx.modeling.random_weights import random_sam, write_random_checkpoint
from sam_onnx.preprocess import normalize_and_pad, resize_longest_side

SIZES_HW = [(480, 640), (640, 480), (700, 525), (123, 77), (1, 1), (1, 2000), (1500, 2250), (2250, 1500)]


def session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def torch_run(module, feeds: dict) -> list[np.ndarray]:
    with torch.inference_mode():
        out = module(*(torch.from_numpy(v) for v in feeds.values()))
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def decoder_feeds(num_points: int, orig_hw, seed: int, batch: int | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    b = batch or 1
    labels = rng.integers(-1, 4, size=(b, num_points)).astype(np.float32)
    feeds = {
        "image_embeddings": rng.normal(size=(1, 256, 64, 64)).astype(np.float32),
        "point_coords": (rng.random((b, num_points, 2)) * 1024).astype(np.float32),
        "point_labels": labels,
        "mask_input": rng.normal(size=(b, 1, 256, 256)).astype(np.float32),
        "has_mask_input": (rng.random(b) > 0.5).astype(np.float32),
        "orig_im_size": np.array(orig_hw, np.float32),
    }
    return feeds


# --- files and metadata ---------------------------------------------------------------------


def test_default_export_writes_every_graph_and_manifest(tiny_export, tiny_checkpoint):
    out = tiny_export.output_dir
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "encoder.onnx",
            "decoder.onnx",
            "decoder_batched.onnx",
            "encoder.fp16.onnx",
            "encoder.int8.onnx",
            "decoder.int8.onnx",
            "decoder_batched.int8.onnx",
            "decoder_image.onnx",
            "decoder_click.onnx",
            "export.json",
        ]
    )
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["tool"] == "sam-onnx" and manifest["variant"] == "tiny"
    assert manifest["validation"]["ok"] is True
    assert manifest["checkpoint_sha256"] == hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    assert manifest["graphs"]["encoder"]["simplify"] == "simplified"
    assert "weights" not in manifest  # only checkpoints that say they are random are noted


def test_random_weights_are_noted_in_every_graph_and_the_manifest(tmp_path):
    """A checkpoint of modeling.random_weights says so (torch's own loader reads it unchanged); its
    export carries ``weights`` = ``random`` in every graph and in export.json. The same tensors
    saved without the note export to the same graphs without the key."""
    noted = write_random_checkpoint("tiny", tmp_path / "random.pth")
    plain = tmp_path / "plain.pth"
    torch.save(dict(random_sam("tiny").state_dict()), plain)
    assert (checkpoint_weights(noted), checkpoint_weights(plain)) == ("random", None)
    build_sam("tiny").load_state_dict(torch.load(noted, weights_only=True), strict=True)
    options = ExportOptions(validate=False, int8=True, fp16=True)
    random_export = export_sam(noted, tmp_path / "random", options)
    plain_export = export_sam(plain, tmp_path / "plain", options)
    assert random_export.manifest["weights"] == "random" and "weights" not in plain_export.manifest
    assert random_export.files.keys() == plain_export.files.keys()
    for key, paths in random_export.files.items():
        graph, other = onnx.load(str(paths[0])), onnx.load(str(plain_export.files[key][0]))
        assert {p.key: p.value for p in graph.metadata_props}["weights"] == "random", key
        assert "weights" not in {p.key for p in other.metadata_props}, key
        assert graph.graph.SerializeToString() == other.graph.SerializeToString(), key


def test_every_graph_carries_metadata(tiny_export, tiny_checkpoint):
    sha = hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    for key, paths in tiny_export.files.items():
        model = onnx.load(str(paths[0]), load_external_data=False)
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["checkpoint_sha256"] == sha, key
        assert meta["variant"] == "tiny" and meta["producer"] == "sam-onnx"
        assert meta["opset"] == "17" and meta["input_size"] == "1024"
        assert json.loads(meta["pixel_mean"]) == [123.675, 116.28, 103.53]
        assert json.loads(meta["pixel_std"]) == [58.395, 57.12, 57.375]
        assert meta["precision"] == key.rsplit("_", 1)[-1] if key.endswith(("fp16", "int8")) else "fp32"
        role = "encoder" if key.startswith("encoder") else "decoder"
        assert meta["role"] == (key if key in ("decoder_image", "decoder_click") else role)
        assert min(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
        # onnxruntime reads the same metadata without torch or onnx
        assert session(paths[0]).get_modelmeta().custom_metadata_map["checkpoint_sha256"] == sha
        assert "weights" not in meta, key
    decoder = session(tiny_export.files["decoder"][0]).get_modelmeta().custom_metadata_map
    assert decoder["contract"] == "official" and decoder["decoder_mode"] == "single"
    batched = session(tiny_export.files["decoder_batched"][0]).get_modelmeta().custom_metadata_map
    assert batched["batched"] == "true" and "extends the official decoder contract" in batched["contract"]


def test_decoder_has_the_official_io_contract(tiny_export):
    s = session(tiny_export.files["decoder"][0])
    inputs = [(i.name, i.type, i.shape) for i in s.get_inputs()]
    assert [n for n, _, _ in inputs] == list(decoder_module.INPUT_NAMES)
    assert all(t == "tensor(float)" for _, t, _ in inputs)
    assert inputs[0][2] == [1, 256, 64, 64] and inputs[3][2] == [1, 1, 256, 256]
    assert inputs[4][2] == [1] and inputs[5][2] == [2]
    assert isinstance(inputs[1][2][1], str)  # N is symbolic
    assert [o.name for o in s.get_outputs()] == ["masks", "iou_predictions", "low_res_masks"]


# --- numerics at every size -----------------------------------------------------------------


@pytest.mark.parametrize("orig_hw", SIZES_HW)
def test_decoder_right_at_every_size(tiny_export, tiny_model, orig_hw):
    """One graph for all sizes: nothing of the traced 1500 x 2250 example is baked in."""
    s = session(tiny_export.files["decoder"][0])
    feeds = decoder_feeds(3, orig_hw, seed=sum(orig_hw))
    got = s.run(None, feeds)
    want = torch_run(DecoderGraph(tiny_model, return_single_mask=True), feeds)
    assert got[0].shape == (1, 1, *orig_hw)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=5e-5)


@pytest.mark.parametrize("num_points", [1, 2, 5, 16])
def test_decoder_right_for_any_number_of_points(tiny_export, tiny_model, num_points):
    s = session(tiny_export.files["decoder"][0])
    feeds = decoder_feeds(num_points, (480, 640), seed=num_points)
    want = torch_run(DecoderGraph(tiny_model, return_single_mask=True), feeds)
    for g, w in zip(s.run(None, feeds), want, strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=5e-5)


def test_batched_decoder_equals_single_calls(tiny_export):
    """B prompts in one call = B calls of one prompt; with the selection rule, = decoder.onnx."""
    batched = session(tiny_export.files["decoder_batched"][0])
    single = session(tiny_export.files["decoder"][0])
    feeds = decoder_feeds(4, (700, 525), seed=7, batch=6)
    feeds["has_mask_input"][:] = [0, 1, 0, 1, 1, 0]
    masks, iou, low_res = batched.run(None, feeds)
    assert masks.shape == (6, 4, 700, 525) and iou.shape == (6, 4) and low_res.shape == (6, 4, 256, 256)
    for b in range(6):
        row = dict(feeds)
        for name in ("point_coords", "point_labels", "mask_input", "has_mask_input"):
            row[name] = feeds[name][b : b + 1]
        one = batched.run(None, row)
        np.testing.assert_allclose(one[1][0], iou[b], rtol=0, atol=1e-5)
        np.testing.assert_allclose(one[2][0], low_res[b], rtol=0, atol=1e-4)
        np.testing.assert_allclose(one[0][0], masks[b], rtol=0, atol=1e-4)
        _, s_iou, s_low = single.run(None, row)
        pick_low, pick_iou = select_single_mask(
            torch.from_numpy(low_res[b : b + 1]), torch.from_numpy(iou[b : b + 1]), 4
        )
        np.testing.assert_allclose(s_iou, pick_iou.numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(s_low, pick_low.numpy(), rtol=0, atol=1e-4)


def test_encoder_graph_matches_pytorch(tiny_export, tiny_model):
    image = synthetic_image((300, 200), seed=3)
    padded = normalize_and_pad(resize_longest_side(image))
    got = session(tiny_export.files["encoder"][0]).run(None, {"image": padded})[0]
    want = torch_run(EncoderGraph(tiny_model), {"image": padded})[0]
    assert got.shape == (1, 256, 64, 64)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def tiny_options_export(tiny_checkpoint, tmp_path_factory):
    """uint8 encoder input, multimask decoder with the official extra outputs."""
    options = ExportOptions(
        encoder_input="uint8", multimask=True, return_extra_metrics=True, batched_decoder=False
    )
    return export_sam(tiny_checkpoint, tmp_path_factory.mktemp("opts") / "onnx", options)


@pytest.mark.parametrize("orig_hw", [(480, 640), (700, 525), (123, 77), (3, 1000)])
def test_uint8_encoder_equals_normalized_encoder(tiny_export, tiny_options_export, orig_hw):
    resized = resize_longest_side(synthetic_image(orig_hw, seed=1))
    u8 = session(tiny_options_export.files["encoder"][0])
    assert [i.name for i in u8.get_inputs()] == ["resized_image"]
    assert u8.get_inputs()[0].type == "tensor(uint8)"
    got = u8.run(None, {"resized_image": resized})[0]
    want = session(tiny_export.files["encoder"][0]).run(None, {"image": normalize_and_pad(resized)})[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_multimask_and_extra_metrics(tiny_options_export, tiny_model):
    s = session(tiny_options_export.files["decoder"][0])
    names = [o.name for o in s.get_outputs()]
    assert names == ["masks", "iou_predictions", "low_res_masks", "stability_scores", "areas"]
    feeds = decoder_feeds(3, (123, 77), seed=11)
    got = s.run(None, feeds)
    assert got[0].shape == (1, 4, 123, 77) and got[3].shape == (1, 4)
    np.testing.assert_array_equal(got[4], (got[0] > 0).sum(axis=(-1, -2)))
    wrapper = DecoderGraph(tiny_model, return_single_mask=False, return_extra_metrics=True)
    for g, w in zip(got, torch_run(wrapper, feeds), strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-4)


def test_use_stability_score_replaces_iou(tiny_checkpoint, tiny_model, tmp_path):
    """Scores are the low-res stability scores, and the official rule selects on them."""
    options = ExportOptions(
        encoder=False, batched_decoder=False, fast_decoder=False, use_stability_score=True
    )
    result = export_sam(tiny_checkpoint, tmp_path / "onnx", options)
    assert list(result.files) == ["decoder"]
    feeds = decoder_feeds(2, (480, 640), seed=5)
    _, scores, low_res = session(result.files["decoder"][0]).run(None, feeds)
    all_low = torch.from_numpy(torch_run(DecoderGraph(tiny_model, return_single_mask=False), feeds)[2])
    stability = decoder_module.stability_score(all_low, 0.0, 1.0)
    want_low, want_scores = select_single_mask(all_low, stability, 2)
    np.testing.assert_allclose(scores, want_scores.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(low_res, want_low.numpy(), rtol=0, atol=1e-4)


# --- reduced precision ----------------------------------------------------------------------


def test_precision_copies_are_measured_and_finite(tiny_export):
    quality = {q.graph: q for q in tiny_export.report.quality}
    assert set(quality) == {
        "encoder.fp16.onnx",
        "encoder.int8.onnx",
        "decoder.int8.onnx",
        "decoder_batched.int8.onnx",
    }
    fp16 = quality["encoder.fp16.onnx"]
    assert fp16.finite and fp16.embedding_cosine > 0.9999 and fp16.mask_iou_mean > 0.99
    for q in quality.values():
        assert q.ok and q.mask_iou_mean >= 0.9
    types = {
        onnx.TensorProto.DataType.Name(t.data_type)
        for t in onnx.load(str(tiny_export.files["encoder_fp16"][0])).graph.initializer
    }
    assert "FLOAT16" in types
    ops = {n.op_type for n in onnx.load(str(tiny_export.files["encoder_int8"][0])).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops


def test_report_table_is_printed(tiny_checkpoint, tmp_path):
    lines: list[str] = []
    export_sam(tiny_checkpoint, tmp_path / "o", ExportOptions(batched_decoder=False), log=lines.append)
    text = "\n".join(lines)
    assert "exporting encoder.onnx: done in" in text
    assert "encoder.onnx" in text and "image_embeddings" in text and "masks agree" in text


# --- the validation gate ----------------------------------------------------------------------


def _baked_crop(low_res, orig_im_size, img_size):
    """The official PyPI release's mistake: the crop size made a Python int, frozen by tracing."""
    masks = F.interpolate(low_res, (img_size, img_size), mode="bilinear", align_corners=False)
    input_hw = decoder_module.resized_size_hw(orig_im_size, img_size)
    masks = masks[..., : int(input_hw[0]), : int(input_hw[1])]
    orig_hw = orig_im_size.to(torch.int64)
    return F.interpolate(masks, (orig_hw[0], orig_hw[1]), mode="bilinear", align_corners=False)


def _baked_everything(low_res, orig_im_size, img_size):
    masks = F.interpolate(low_res, (img_size, img_size), mode="bilinear", align_corners=False)
    return F.interpolate(masks, (int(orig_im_size[0]), int(orig_im_size[1])), mode="bilinear")


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize(
    ("upscale", "failure"),
    [
        # traced at 1500 x 2250 (2:3): the 427 x 640 landscape happens to crop right, portrait not
        (_baked_crop, "decoder.onnx masks on portrait/"),
        # sizes frozen entirely leave orig_im_size unread: the exporter drops the input
        (_baked_everything, "decoder.onnx interface: inputs ['image_embeddings', 'point_coords',"),
    ],
)
def test_validation_catches_baked_sizes(tiny_checkpoint, tmp_path, monkeypatch, upscale, failure):
    monkeypatch.setattr(decoder_module, "upscale_masks", upscale)
    out = tmp_path / "onnx"
    with pytest.raises(ExportValidationError) as info:
        export_sam(tiny_checkpoint, out, ExportOptions(encoder=False, batched_decoder=False))
    assert any(f.startswith(failure) for f in info.value.failures), info.value.failures
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the staging directory is gone too


def test_failed_validation_keeps_previous_export(tiny_checkpoint, tmp_path, monkeypatch):
    out = tmp_path / "onnx"
    options = ExportOptions(encoder=False, batched_decoder=False)
    export_sam(tiny_checkpoint, out, options)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setitem(validate.TOLERANCES, "low_res_masks", (-1.0, 0.0))  # nothing can pass
    with pytest.raises(ExportValidationError):
        export_sam(tiny_checkpoint, out, options)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx"]


def test_no_validate_skips_parity_checks(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setitem(validate.TOLERANCES, "low_res_masks", (-1.0, 0.0))
    result = export_sam(tiny_checkpoint, tmp_path / "o", ExportOptions(encoder=False, validate=False))
    assert result.report.checks == [] and result.manifest["validation"] is None


# --- mechanics --------------------------------------------------------------------------------


def test_large_models_use_external_data(tiny_checkpoint, tiny_model, tmp_path, monkeypatch):
    """Over the threshold the weights go to <name>.onnx.data; onnxsim is skipped, not crashed."""
    monkeypatch.setattr(onnx_file, "EXTERNAL_DATA_THRESHOLD", 1_000_000)
    options = ExportOptions(decoder=False, fp16=True)
    result = export_sam(tiny_checkpoint, tmp_path / "o", options)
    assert [p.name for p in result.files["encoder"]] == ["encoder.onnx", "encoder.onnx.data"]
    assert result.files["encoder"][1].stat().st_size > 1_000_000
    assert result.files["encoder"][0].stat().st_size < 1_000_000
    assert result.manifest["graphs"]["encoder"]["simplify"].startswith("skipped: weights exceed")
    image = normalize_and_pad(resize_longest_side(synthetic_image((64, 48), seed=0)))
    got = session(result.files["encoder"][0]).run(None, {"image": image})[0]
    np.testing.assert_allclose(got, torch_run(EncoderGraph(tiny_model), {"image": image})[0], atol=1e-4)


def test_onnxsim_failure_falls_back_to_traced_graph(tiny_checkpoint, tmp_path, monkeypatch):
    import onnxsim

    def broken(model, *args, **kwargs):
        raise RuntimeError("simulated onnxsim crash")

    monkeypatch.setattr(onnxsim, "simplify", broken)
    result = export_sam(tiny_checkpoint, tmp_path / "o", ExportOptions(decoder=False))
    assert "simulated onnxsim crash" in result.manifest["graphs"]["encoder"]["simplify"]
    assert result.report.ok


@pytest.mark.parametrize("opset", [17, 20])
def test_opsets(tiny_checkpoint, tmp_path, opset):
    result = export_sam(tiny_checkpoint, tmp_path / "o", ExportOptions(encoder=False, opset=opset))
    model = onnx.load(str(result.files["decoder"][0]))
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == opset


# --- bad options ------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [16, 9, 21, "17", True])
def test_opset_out_of_range(opset):
    with pytest.raises(InvalidInputError, match="opset"):
        ExportOptions(opset=opset)


def test_unknown_model_type():
    with pytest.raises(InvalidInputError, match=r"model type.*vit_b"):
        ExportOptions(model_type="vit_x")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"encoder": False, "decoder": False},
        {"decoder": False, "multimask": True},
        {"decoder": False, "use_stability_score": True},
        {"decoder": False, "return_extra_metrics": True},
        {"encoder": False, "fp16": True},
        {"encoder": False, "encoder_input": "uint8"},
    ],
)
def test_conflicting_options(kwargs):
    with pytest.raises(ConflictingOptionsError):
        ExportOptions(**kwargs)


def test_bad_encoder_input_kind():
    with pytest.raises(InvalidInputError, match="encoder input"):
        ExportOptions(encoder_input="float16")


def test_reduced_precision_graph_that_fails_to_run_fails_the_export(tiny_checkpoint, tmp_path, monkeypatch):
    """An int8 graph onnxruntime cannot run is a failed check naming it, not a traceback."""
    real_session = validate.cpu_session

    class RefusingSession:
        def __init__(self, session) -> None:
            self.session = session

        def __getattr__(self, name):
            return getattr(self.session, name)

        def run(self, *args, **kwargs):
            raise RuntimeError("MatMulIntegerToFloat: b zero point is not valid")

    def session(path):
        opened = real_session(path)
        return RefusingSession(opened) if ".int8." in path.name else opened

    monkeypatch.setattr(validate, "cpu_session", session)
    out = tmp_path / "onnx"
    with pytest.raises(ExportValidationError) as info:
        export_sam(tiny_checkpoint, out, ExportOptions(encoder=False, batched_decoder=False, int8=True))
    failures = info.value.failures
    assert any(f.startswith("decoder.int8.onnx run failed: MatMulIntegerToFloat") for f in failures), failures
    assert "decoder.int8.onnx did not run on any validation case" in failures
    assert not out.exists()


def test_int8_decoder_quantises_only_the_image_side_products(tiny_checkpoint, tmp_path):
    """Of the decoder, only the two upscaling products (4096 and 16384 rows) become int8; the
    prompt-token products stay float32, the per-head 3-D weights too (onnxruntime's int8 MatMul
    refuses them), and the int8 decoder runs."""
    out = tmp_path / "onnx"
    export_sam(tiny_checkpoint, out, ExportOptions(encoder=False, batched_decoder=False, int8=True))
    model = onnx.load(str(out / "decoder.int8.onnx"))
    weights = {t.name: len(t.dims) for t in model.graph.initializer}
    float_matmuls = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    quantised = [n for n in model.graph.node if n.op_type == "MatMulInteger"]
    assert any(weights[n.input[1]] == 3 for n in float_matmuls)
    assert sum(weights[n.input[1]] == 2 for n in float_matmuls) > 20  # the quantiser turns Gemm into MatMul
    assert len(quantised) == 2


def _products_graph() -> onnx.ModelProto:
    """A Gemm on 4096 rows, a MatMul on 2 rows (2-D weights) and a MatMul with a 3-D weight."""
    h, tp = onnx.helper, onnx.TensorProto
    rng = np.random.default_rng(0)
    weights = [
        onnx.numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
        for name, shape in (("w_gemm", (8, 4)), ("b_gemm", (4,)), ("w_few", (8, 4)), ("w_3d", (2, 4, 4)))
    ]
    nodes = [
        h.make_node("Gemm", ["image", "w_gemm", "b_gemm"], ["image_out"], name="image_gemm"),
        h.make_node("MatMul", ["tokens", "w_few"], ["tokens_out"], name="token_matmul"),
        h.make_node("MatMul", ["heads", "w_3d"], ["heads_out"], name="head_matmul"),
    ]
    inputs = [
        h.make_tensor_value_info("image", tp.FLOAT, [4096, 8]),
        h.make_tensor_value_info("tokens", tp.FLOAT, [2, 8]),
        h.make_tensor_value_info("heads", tp.FLOAT, [2, 3, 4]),
    ]
    outputs = [h.make_tensor_value_info(n, tp.FLOAT, None) for n in ("image_out", "tokens_out", "heads_out")]
    graph = h.make_graph(nodes, "products", inputs, outputs, weights)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize(("role", "expected"), [("encoder", 2), ("decoder", 1)])
def test_int8_quantises_the_selected_products_gemm_included(tmp_path, role, expected):
    """Encoders: every 2-D weight product; decoders: only those on many rows. A Gemm counts
    although the quantiser renames it, and a 3-D weight always stays float32."""
    from sam_onnx.export.precision import int8_nodes, to_int8

    model = _products_graph()
    assert sorted(int8_nodes(model, role)) == sorted(["image_gemm", "token_matmul"][:expected])
    quantised = to_int8(model, tmp_path, role)
    assert sum(n.op_type == "MatMulInteger" for n in quantised.graph.node) == expected
    session = ort.InferenceSession(quantised.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.ones([d for d in i.shape], np.float32) for i in session.get_inputs()}
    reference = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for got, want in zip(session.run(None, feeds), reference.run(None, feeds), strict=True):
        np.testing.assert_allclose(got, want, rtol=0.05, atol=0.05 * np.abs(want).max())
