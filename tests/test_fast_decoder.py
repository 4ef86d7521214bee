"""The fast decoder pair (decoder_image.onnx + decoder_click.onnx) against the official contract.

Three levels: the PyTorch graphs against the official (unfactored) decoder on the tiny models of
both families; the runtime's numpy upscaling against the graphs' torch upscaling; and, on the
kit's checkpoints (the session exports ``vit_b_export`` / ``hiera_t_export``), every golden
prompt through ``SamPredictor`` with the pair against the same predictor on the official-contract
decoder graph: binary masks equal except where the official logit is within
:data:`MASK_LOGIT_MARGIN` of 0, logits and IoU within the contract's tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam_onnx.errors import InvalidInputError, ModelMismatchError
from sam_onnx.export.decoder_graph import DecoderGraph, upscale_masks
from sam_onnx.export.fast_decoder_graph import fast_decoder_pair
from sam_onnx.export.sam2_decoder_graph import Sam2DecoderGraph, upscale_to_original
from sam_onnx.runtime import SamPredictor
from sam_onnx.runtime.core import upscale as np_upscale
from sam_onnx.runtime.core.fast_decoder import FastDecoder, fast_decoder_paths
from sam_onnx.runtime.core.session import SessionConfig
from tests.conftest import CASES, IMAGES, case_meta, unpack_masks

MASK_LOGIT_MARGIN = 1e-3  # masks may differ only where the official logit is this close to 0
LOGIT_ATOL = 1e-4  # full-size and low-res logits, IoU: the decoder contract's tolerance


def _prompts(gen: torch.Generator, mask: torch.Tensor) -> dict[str, tuple[torch.Tensor, ...]]:
    """(point_coords, point_labels, mask_input, has_mask_input) per case, 1024 frame."""
    pts = torch.rand(1, 6, 2, generator=gen) * 1000
    no_mask = (torch.zeros(1, 1, 256, 256), torch.zeros(1))
    return {
        "one_point": (pts[:, :2], torch.tensor([[1.0, -1.0]]), *no_mask),
        "five_points": (pts[:, :5], torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0]]), *no_mask),
        "box": (pts[:, :2].sort(dim=1).values, torch.tensor([[2.0, 3.0]]), *no_mask),
        "mask_input": (pts[:, :2], torch.tensor([[1.0, 0.0]]), mask, torch.ones(1)),
    }


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_torch_pair_equals_official_decoder(family, tiny_model, sam2_tiny_model):
    """The pair's PyTorch graphs give the official layout's four tokens (low-res logits, IoU)."""
    model = tiny_model if family == "sam" else sam2_tiny_model
    image_graph, click_graph = fast_decoder_pair(model.eval())
    gen = torch.Generator().manual_seed(3)
    features = [torch.randn(1, 256, 64, 64, generator=gen)]
    if family == "sam2":
        features += [torch.randn(1, 32, 256, 256, generator=gen), torch.randn(1, 64, 128, 128, generator=gen)]
        official = Sam2DecoderGraph(model, batched=True, factored=False)
    else:
        official = DecoderGraph(model, return_single_mask=False, factored=False)
    size = torch.tensor([300.0, 500.0])
    with torch.no_grad():
        tensors = image_graph(*features)
        for case, prompt in _prompts(gen, 8 * torch.randn(1, 1, 256, 256, generator=gen)).items():
            low_res, iou = click_graph(*tensors, *prompt)
            _, want_iou, want_low, *_ = official(*features, *prompt, size)
            if family == "sam2":  # the contract clamps what it returns; the click graph does not
                low_res = low_res.clamp(-32.0, 32.0)
            scale = float(want_low.abs().max())
            assert float((low_res - want_low).abs().max()) <= LOGIT_ATOL * max(scale, 1.0), case
            assert float((iou - want_iou).abs().max()) <= 1e-5, case


@pytest.mark.parametrize("orig_hw", [(480, 640), (1500, 2250), (800, 533), (9, 13)])
@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_numpy_upscaling_equals_graph_upscaling(family, orig_hw):
    """runtime.upscale gives the decoder graphs' full-size logits; its masks differ only at ~0."""
    gen = torch.Generator().manual_seed(1)
    low = torch.nn.functional.interpolate(8 * torch.randn(1, 2, 24, 24, generator=gen), size=(256, 256))
    size = torch.tensor(orig_hw, dtype=torch.float32)
    with torch.no_grad():
        want = (upscale_to_original(low, size) if family == "sam2" else upscale_masks(low, size, 1024))[0]
    want = want.numpy()
    logits = np_upscale.upscale_logits(low[0].numpy(), orig_hw, family)
    masks = np_upscale.upscale_masks(low[0].numpy(), orig_hw, family)
    assert logits.shape == want.shape == masks.shape
    assert np.abs(logits - want).max() <= LOGIT_ATOL * max(1.0, np.abs(want).max())
    differ = (masks != (want > 0)) & (np.abs(want) > MASK_LOGIT_MARGIN)
    assert not differ.any(), f"{int(differ.sum())} mask pixels differ away from 0"
    assert (masks != (want > 0)).mean() < 1e-4


def _golden_kwargs(meta: dict, mask_input) -> dict:
    return {
        "point_coords": None if meta["points"] is None else np.asarray(meta["points"]),
        "point_labels": None if meta["labels"] is None else np.asarray(meta["labels"]),
        "box": None if meta["box"] is None else np.asarray(meta["box"]),
        "mask_input": mask_input,
        "multimask_output": meta["multimask"],
    }


def _assert_same_as_official(fast: SamPredictor, official: SamPredictor, kwargs: dict, emb, case: str):
    """Masks of the pair equal the official contract's except near 0; logits and IoU close."""
    ref = official.predict(**kwargs, return_logits=True, embedding=emb)
    got = fast.predict(**kwargs, embedding=emb)
    logits = fast.predict(**kwargs, return_logits=True, embedding=emb)
    assert got.masks.dtype == bool and got.masks.shape == ref.masks.shape
    differ = (got.masks != (ref.masks > 0)) & (np.abs(ref.masks) > MASK_LOGIT_MARGIN)
    assert not differ.any(), f"{case}: {int(differ.sum())} mask pixels differ away from 0"
    scale = max(1.0, float(np.abs(ref.masks).max()))
    assert np.abs(logits.masks - ref.masks).max() <= LOGIT_ATOL * scale, case
    np.testing.assert_allclose(got.iou_predictions, ref.iou_predictions, rtol=0, atol=LOGIT_ATOL)
    np.testing.assert_allclose(got.low_res_logits, ref.low_res_logits, rtol=0, atol=LOGIT_ATOL * scale)
    return got


@pytest.mark.slow
def test_every_v1_golden_prompt_matches_official_contract(vit_b_export, golden, reference_dir):
    model_dir = vit_b_export.output_dir
    assert fast_decoder_paths(model_dir) is not None
    fast = SamPredictor.from_export(model_dir)
    official = SamPredictor.from_export(model_dir, fast_decoder=None)
    assert fast.fast is not None and official.fast is None
    for image in IMAGES:
        emb = fast.embed(next((reference_dir / "images").glob(f"{image}_*.png")))
        for case in CASES:
            meta, key = case_meta(golden, image, case), f"{image}/{case}"
            mask = golden[f"{key}/mask_input"] if case == "refine_with_mask" else None
            got = _assert_same_as_official(fast, official, _golden_kwargs(meta, mask), emb, key)
            expected = unpack_masks(golden[f"{key}/masks_packed"], got.masks.shape[-1])
            near_zero = np.abs(golden[f"{key}/mask_logits_f16"].astype(np.float32)) <= MASK_LOGIT_MARGIN
            assert not ((got.masks != expected) & ~near_zero).any(), key


@pytest.mark.slow
def test_every_sam2_golden_prompt_matches_official_contract(hiera_t_export, sam2_golden, reference_dir):
    model_dir = hiera_t_export.output_dir
    fast = SamPredictor.from_export(model_dir)
    official = SamPredictor.from_export(model_dir, fast_decoder=None)
    assert fast.fast is not None and official.fast is None
    for image in IMAGES:
        emb = fast.embed(next((reference_dir / "images").glob(f"{image}_*.png")))
        for case in next(i for i in sam2_golden["meta"]["images"] if i["name"] == image)["cases"]:
            key = f"{image}/{case['name']}"
            kwargs = _golden_kwargs(case, sam2_golden.get(f"{key}/mask_input"))
            kwargs["normalize_coords"] = case["normalize_coords"]
            _assert_same_as_official(fast, official, kwargs, emb, key)


@pytest.mark.parametrize("family", ["sam", "sam2"])
@pytest.mark.parametrize("multimask", [True, False])
def test_decode_points_through_the_pair_matches_the_decoder(
    family, multimask, tiny_model_dir, sam2_tiny_export, monkeypatch
):
    """The automatic generator's step (one click per prompt, in runs, optional mask inputs) through
    the pair against the same prompts through the batched official-contract decoder."""
    clicks = []
    tokens = FastDecoder.tokens
    monkeypatch.setattr(FastDecoder, "tokens", lambda self, *a: clicks.append(1) or tokens(self, *a))
    model_dir = tiny_model_dir if family == "sam" else sam2_tiny_export.output_dir
    fast = SamPredictor.from_export(model_dir)
    official = SamPredictor.from_export(model_dir, fast_decoder=None)
    assert fast.fast is not None and official.fast is None
    rng = np.random.default_rng(3)
    emb = fast.embed(rng.integers(0, 256, (45, 70, 3), np.uint8))
    points = rng.uniform((0, 0), (70, 45), (7, 2))
    masks_in = rng.normal(0, 8, (7, 1, 256, 256)).astype(np.float32)
    for mask_input in (None, masks_in):
        kwargs = {"batch": 3, "multimask_output": multimask, "mask_input": mask_input}
        got = list(fast.decode_points(points, emb, **kwargs))
        ref = list(official.decode_points(points, emb, **kwargs))
        assert [len(run[1]) for run in got] == [3, 3, 1]
        assert len(clicks) == len(points)  # every prompt went through the click graph
        clicks.clear()
        joined = [[np.concatenate([run[k] for run in runs]) for k in range(3)] for runs in (got, ref)]
        for name, a, b in zip(("logits", "iou", "low_res"), *joined, strict=True):
            assert a.shape == b.shape and a.dtype == b.dtype == np.float32, name
            scale = max(1.0, float(np.abs(b).max()))
            assert np.abs(a - b).max() <= LOGIT_ATOL * scale, (name, float(np.abs(a - b).max()))
            if name == "logits":
                assert not (((a > 0) != (b > 0)) & (np.abs(b) > MASK_LOGIT_MARGIN)).any()


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_predict_boxes_through_the_pair_matches_the_decoder(family, tiny_model_dir, sam2_tiny_export):
    model_dir = tiny_model_dir if family == "sam" else sam2_tiny_export.output_dir
    fast = SamPredictor.from_export(model_dir)
    official = SamPredictor.from_export(model_dir, fast_decoder=None)
    emb = fast.embed(np.random.default_rng(4).integers(0, 256, (45, 70, 3), np.uint8))
    boxes = np.array([[3, 4, 40, 30], [10, 0, 69, 44], [0, 20, 25, 44]])
    for multimask in (True, False):
        got = fast.predict_boxes(boxes, multimask_output=multimask, return_logits=True, embedding=emb)
        ref = official.predict_boxes(boxes, multimask_output=multimask, return_logits=True, embedding=emb)
        for field in ("masks", "iou_predictions", "low_res_logits"):
            a, b = getattr(got, field), getattr(ref, field)
            assert a.shape == b.shape, field
            assert np.abs(a - b).max() <= LOGIT_ATOL * max(1.0, float(np.abs(b).max()))


def test_export_declares_and_validates_the_pair(tiny_export):
    graphs = tiny_export.manifest["graphs"]
    for key in ("decoder_image", "decoder_click"):
        assert graphs[key]["file"] == f"{key}.onnx"
        assert graphs[key]["metadata"]["role"] == key
        assert (
            graphs[key]["metadata"]["checkpoint_sha256"] == graphs["decoder"]["metadata"]["checkpoint_sha256"]
        )
    checks = [c for c in tiny_export.report.checks if c.graph == "decoder_image+click"]
    assert {c.output for c in checks} == {"masks", "low_res_masks", "iou_predictions"}
    assert all(c.ok for c in checks) and max(c.max_abs for c in checks) < 1e-4


def test_bad_prompt_is_a_typed_error_on_the_fast_path(tiny_model_dir):
    predictor = SamPredictor.from_export(tiny_model_dir)
    assert predictor.fast is not None
    emb = predictor.set_image(np.zeros((40, 60, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="point_coords"):
        predictor.predict(point_coords=np.zeros((2, 3)), point_labels=np.ones(2), embedding=emb)
    with pytest.raises(InvalidInputError):
        predictor.predict(point_coords=np.array([[5.0, 5.0]]), point_labels=np.array([7]), embedding=emb)


def test_pair_from_another_checkpoint_is_refused(tiny_model_dir, sam2_tiny_export):
    other = fast_decoder_paths(sam2_tiny_export.output_dir)
    predictor = SamPredictor.from_export(tiny_model_dir)
    with pytest.raises(ModelMismatchError, match="checkpoint"):
        FastDecoder.open(other, SessionConfig(), predictor.decoder)


def test_why_the_pair_is_not_used_is_said(tiny_model_dir):
    """The pair's absence is never silent: ``decoder_note`` names the cause of each case."""
    assert SamPredictor.from_export(tiny_model_dir).decoder_note == ""
    cases = {
        "--no-fast-decoder": dict(use_fast_decoder=False),
        "--precision int8": dict(precision="int8"),
        "IO binding": dict(io_binding=True),
        "fast_decoder=None": dict(fast_decoder=None),
    }
    for cause, kwargs in cases.items():
        predictor = SamPredictor.from_export(tiny_model_dir, **kwargs)
        assert predictor.decoder_label != "fast decoder pair"
        note = predictor.decoder_note
        assert cause in note or cause.split()[0] in note, (cause, note)


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_long_prompts_go_to_the_decoder_graph(family, tiny_model_dir, sam2_tiny_export, monkeypatch):
    """Routing by cost: up to ``pair_max_points`` points a prompt takes the pair, beyond it the
    decoder graph, and either way the answer is the decoder graph's."""
    clicks = []
    tokens = FastDecoder.tokens
    monkeypatch.setattr(FastDecoder, "tokens", lambda self, *a: clicks.append(1) or tokens(self, *a))
    model_dir = tiny_model_dir if family == "sam" else sam2_tiny_export.output_dir
    fast = SamPredictor.from_export(model_dir)
    official = SamPredictor.from_export(model_dir, fast_decoder=None)
    assert fast.pair_max_points >= 16  # the measured crossover (docs/BENCHMARKS.md row 22)
    fast.pair_max_points = 4
    rng = np.random.default_rng(5)
    emb = fast.embed(rng.integers(0, 256, (45, 70, 3), np.uint8))
    for n, through_pair in ((2, True), (3, True), (9, False)):  # SAM v1 adds a padding point
        points, labels = rng.uniform((0, 0), (70, 45), (n, 2)), rng.integers(0, 2, n)
        got = fast.predict(points, labels, return_logits=True, embedding=emb)
        ref = official.predict(points, labels, return_logits=True, embedding=emb)
        assert bool(clicks) == through_pair, n
        clicks.clear()
        for field in ("masks", "iou_predictions", "low_res_logits"):
            a, b = getattr(got, field), getattr(ref, field)
            assert a.shape == b.shape, field
            assert np.abs(a - b).max() <= LOGIT_ATOL * max(1.0, float(np.abs(b).max())), (n, field)
