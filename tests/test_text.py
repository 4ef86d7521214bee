"""Text prompts (Grounded SAM) on a tiny random Grounding DINO built by transformers in the session
(no download): the export, the torch-free runtime against transformers' own pipeline, the masks
against SamPredictor's boxes, and the hostile prompts and folders."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from sam_onnx.detector import DETECTOR_GRAPH, phrase_structure, resized_hw
from sam_onnx.errors import (
    CheckpointError,
    InvalidPromptError,
    ModelLoadError,
    ModelMismatchError,
    NothingFoundError,
)

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

PROMPTS = ("cat.", "a cat. a remote control.", "cat. dog. car. tree. person.")
SHAPES = ((240, 360), (300, 200))  # a landscape and a portrait image (rows x columns)


def noise_image(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def detector(detector_export):
    from sam_onnx.runtime.text import Detector

    return Detector(detector_export.output_dir)


@pytest.fixture(scope="module")
def reference(grounding_dino_dir, detector):
    """transformers' own pipeline: its PIL processor (the export's resize rule, padded to the
    canvas), the model, and post_process_grounded_object_detection."""
    from transformers import AutoTokenizer, GroundingDinoForObjectDetection, GroundingDinoProcessor
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    size = {"shortest_edge": detector.edges[0], "longest_edge": detector.edges[1]}
    pad = {"height": detector.canvas, "width": detector.canvas}
    images = GroundingDinoImageProcessorPil(size=size, pad_size=pad)
    processor = GroundingDinoProcessor(images, AutoTokenizer.from_pretrained(grounding_dino_dir))
    model = GroundingDinoForObjectDetection.from_pretrained(grounding_dino_dir).eval()

    def run(image: np.ndarray, prompt: str, box_threshold=None, text_threshold=0.25):
        from PIL import Image

        inputs = processor(images=Image.fromarray(image), text=prompt, return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs)
        scores = torch.sigmoid(out.logits[0]).max(-1).values.numpy()
        threshold = gap_threshold(scores) if box_threshold is None else box_threshold
        result = processor.post_process_grounded_object_detection(
            out,
            inputs.input_ids,
            threshold=threshold,
            text_threshold=text_threshold,
            target_sizes=[image.shape[:2]],
        )[0]
        return inputs, out, result, threshold

    return run


def gap_threshold(scores: np.ndarray) -> float:
    """A box threshold near the median score with at least 1e-3 between it and every score, so
    that a difference of 1e-4 cannot move a box across it."""
    ordered = np.sort(scores)
    middle = len(ordered) // 2
    for offset in range(middle):
        for i in (middle + offset, middle - offset):
            if 0 < i < len(ordered) and ordered[i] - ordered[i - 1] > 2e-3:
                return float((ordered[i] + ordered[i - 1]) / 2)
    raise AssertionError("no gap of 2e-3 between the scores")


# -- the phrase structure and the resize rule: transformers' functions, in numpy ------------------


def test_phrase_structure_equals_transformers():
    from transformers.models.grounding_dino.modeling_grounding_dino import (
        SPECIAL_TOKENS,
        generate_masks_with_special_tokens_and_transfer_map,
    )

    rng = np.random.default_rng(0)
    pool = np.array([*SPECIAL_TOKENS, 104, 105, 106, 107])
    cases = [rng.choice(pool, size=(2, n)) for n in (1, 2, 3, 7, 30) for _ in range(20)]
    cases.append(np.array([[101, 104, 1012, 105, 1012, 106, 1012, 107, 1012, 108, 1012, 102]]))
    for ids in cases:
        mask, position_ids = phrase_structure(ids, np.array(SPECIAL_TOKENS))
        ref_mask, ref_pos = generate_masks_with_special_tokens_and_transfer_map(
            torch.from_numpy(ids), torch.tensor(SPECIAL_TOKENS)
        )
        np.testing.assert_array_equal(mask, ref_mask.numpy())
        np.testing.assert_array_equal(position_ids, ref_pos.numpy())


def test_resized_hw_equals_transformers():
    from transformers.image_transforms import get_size_with_aspect_ratio

    for hw in [(480, 640), (640, 480), (1, 1000), (333, 777), (800, 800), (1080, 1920), (97, 13)]:
        for edges in [(800, 1333), (320, 320), (800, 1024), (512, 640)]:
            assert resized_hw(hw, *edges) == get_size_with_aspect_ratio(hw, edges[0], edges[1]), (hw, edges)


# -- the export -----------------------------------------------------------------------------------


def test_export_interface_and_validation(detector_export, detector):
    """The graph has the contract's interface, text length dynamic; the export validated 1, 2 and
    5 phrases on two image shapes within tolerance (export_detector raises otherwise)."""
    session = detector.graph.session
    assert [i.name for i in session.get_inputs()] == list(DETECTOR_GRAPH.input_names)
    assert [o.name for o in session.get_outputs()] == list(DETECTOR_GRAPH.output_names)
    assert session.get_inputs()[2].shape == [1, "T"]
    assert len(detector_export.report.cases) == 6
    assert all(case["pred_boxes"] <= 1e-4 for case in detector_export.report.cases.values())
    manifest = json.loads((detector_export.output_dir / "export.json").read_text())
    assert manifest["kind"] == "grounding-dino-detector"
    assert (detector_export.output_dir / "tokenizer.json").is_file()


def test_validation_fails_on_a_changed_weight(detector_export, grounding_dino_dir):
    """The validation can fail: the graph against a model whose box head's last bias moved by 0.01."""
    from transformers import AutoTokenizer, GroundingDinoForObjectDetection

    from sam_onnx.export.detector_validate import validate_detector

    model = GroundingDinoForObjectDetection.from_pretrained(grounding_dino_dir).eval()
    with torch.no_grad():
        model.bbox_embed[0].layers[-1].bias.add_(0.01)
    tokenizer = AutoTokenizer.from_pretrained(grounding_dino_dir)
    report = validate_detector(
        __import__("onnxruntime").InferenceSession(str(detector_export.output_dir / "detector.onnx")),
        model,
        tokenizer,
        320,
    )
    assert report.failures


def test_cli_no_validate_skips_only_the_validation(grounding_dino_dir, tmp_path, capsys):
    """sam-export-detector --no-validate (for benchmarks): the same graph and files, the manifest's
    validation null, and the command says it was not validated."""
    from sam_onnx.export.detector_cli import main
    from sam_onnx.runtime.text import Detector

    out = tmp_path / "onnx"
    assert main([str(grounding_dino_dir), "-o", str(out), "--canvas", "160", "--no-validate", "--quiet"]) == 0
    assert "not validated: --no-validate" in capsys.readouterr().out
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["validation"] is None and "validating against transformers" not in manifest["timings_s"]
    found = Detector(out).detect(noise_image((90, 120)), "cat.", box_threshold=0.0)
    assert found.boxes_xyxy.shape == (50, 4)  # the test shape's 50 queries


# -- parity with transformers ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("prompt", PROMPTS)
def test_parity_with_transformers(detector, reference, prompt, shape):
    """Same pixels, same boxes above the threshold, coordinates within 1e-4 of the image size,
    scores within 1e-4, the same phrase per box."""
    image = noise_image(shape, seed=len(prompt))
    inputs, _out, result, threshold = reference(image, prompt)
    from sam_onnx.runtime.text.detector import detector_pixels

    pixels, mask = detector_pixels(
        image, detector.canvas, detector.edges, detector.rescale, detector.mean, detector.std
    )
    np.testing.assert_allclose(pixels, inputs.pixel_values.numpy(), atol=1e-5)
    np.testing.assert_array_equal(mask, inputs.pixel_mask.numpy())
    found = detector.detect(image, prompt, box_threshold=threshold)
    assert 0 < len(found) == len(result["scores"])
    assert np.abs(found.boxes_xyxy - result["boxes"].numpy()).max() <= 1e-4 * max(shape)
    assert np.abs(found.scores - result["scores"].numpy()).max() <= 1e-4
    assert list(found.labels) == list(result["text_labels"])


def test_second_and_fifth_phrases_are_scored(detector, reference):
    """Every phrase's tokens get transformers' probabilities, the 2nd and 5th included; fed the
    structure of the first phrase alone (the public export's bug: the loop traced on one phrase),
    the graph gives other probabilities on those phrases, so this test would catch the bug."""
    prompt = PROMPTS[2]
    image = noise_image(SHAPES[0], seed=5)
    _inputs, out, _result, _threshold = reference(image, prompt, box_threshold=0.5)
    ref_probs = torch.sigmoid(out.logits[0]).numpy()
    logits, _boxes, ids, _hw = detector.run(image, prompt)
    probs = 1 / (1 + np.exp(-logits))
    phrase_of = np.cumsum(np.isin(ids[0], detector.tokenizer.separator_ids))  # 1 for phrase 1 ...
    buggy = _first_phrase_only_probs(detector, image, ids)
    for phrase in (2, 5):
        tokens = np.flatnonzero((phrase_of == phrase) & ~np.isin(ids[0], detector.tokenizer.separator_ids))
        assert len(tokens) == 1
        np.testing.assert_allclose(probs[:, tokens], ref_probs[:, tokens], atol=1e-4)
        assert np.abs(buggy[:, tokens] - ref_probs[:, tokens]).max() > 1e-2


def _first_phrase_only_probs(detector, image, ids):
    from sam_onnx.runtime.text.detector import detector_pixels

    mask, position_ids = phrase_structure(ids, detector.tokenizer.separator_ids)
    first_end = int(np.flatnonzero(np.isin(ids[0], detector.tokenizer.separator_ids))[1])
    eye = np.eye(ids.shape[1], dtype=bool)[None]
    mask[:, first_end + 1 :, :] = eye[:, first_end + 1 :, :]
    mask[:, :, first_end + 1 :] = eye[:, :, first_end + 1 :]
    position_ids[:, first_end + 1 :] = 0
    pixels = detector_pixels(
        image, detector.canvas, detector.edges, detector.rescale, detector.mean, detector.std
    )
    feeds = dict(zip(DETECTOR_GRAPH.input_names, (*pixels, ids, mask, position_ids), strict=True))
    logits = detector.graph.session.run(["logits"], feeds)[0][0]
    return 1 / (1 + np.exp(-logits))


# -- masks: SamPredictor's boxes ------------------------------------------------------------------


@pytest.mark.parametrize("sam", ["tiny_model_dir", "sam2_tiny_export"])
def test_masks_equal_predict_boxes(request, detector, sam):
    from sam_onnx.runtime import SamPredictor
    from sam_onnx.runtime.text import TextPredictor

    export = request.getfixturevalue(sam)
    predictor = SamPredictor.from_export(getattr(export, "output_dir", export))
    text = TextPredictor(detector, predictor)
    image = noise_image(SHAPES[1], seed=3)
    found = text.predict_text(image, "a cat. a remote control.", box_threshold=0.9)
    boxes = detector.detect(image, "a cat. a remote control.", box_threshold=0.9).boxes_xyxy
    expected = predictor.predict_boxes(boxes, embedding=predictor.embed(image))
    assert len(found) == len(boxes) > 1
    for i, item in enumerate(found):
        np.testing.assert_array_equal(item.box_xyxy, boxes[i])
        np.testing.assert_array_equal(item.mask, expected.masks[i, 0])
        assert item.mask.shape == SHAPES[1]


# -- hostile prompts and folders (docs/RELIABILITY.md) ---------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "says"),
    [
        ("", "at least one phrase"),
        ("   ", "at least one phrase"),
        (". ? .", "besides the separators"),
        ("cat. " * 200, "at most 256 tokens"),
        ("a 猫. a dog.", "'猫'"),
        ("a cat 🐈.", "'🐈'"),
    ],
)
def test_bad_prompts_refused(detector, prompt, says):
    with pytest.raises(InvalidPromptError, match=says) as info:
        detector.detect(noise_image((40, 60)), prompt)
    assert "text prompt" in str(info.value)


def test_accents_fold_as_transformers_does(detector):
    """Non-ASCII that the tokenizer normalises to known words is accepted (``cät`` is ``cat``)."""
    np.testing.assert_array_equal(detector.tokenizer.encode("a cät."), detector.tokenizer.encode("a cat."))


def test_nothing_found_names_the_best_score(detector, tiny_predictor):
    from sam_onnx.runtime.text import TextPredictor

    image = noise_image((40, 60))
    found = detector.detect(image, "a dog.", box_threshold=1.0)
    assert len(found) == 0 and 0 < found.best_score <= 1.0
    with pytest.raises(NothingFoundError, match=r"nothing found for 'a dog\.'.*best box scored") as info:
        TextPredictor(detector, tiny_predictor).predict_text(image, "a dog.", box_threshold=1.0)
    assert info.value.best_score == found.best_score


def test_tokenizer_of_another_model_refused(detector_export, tmp_path):
    from sam_onnx.runtime.text import Detector

    folder = tmp_path / "detector"
    shutil.copytree(detector_export.output_dir, folder)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["model"]["vocab"]["cat"], tokenizer["model"]["vocab"]["dog"] = (
        tokenizer["model"]["vocab"]["dog"],
        tokenizer["model"]["vocab"]["cat"],
    )
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(ModelMismatchError, match="not the tokenizer the detector was exported with"):
        Detector(folder)


def test_detector_export_given_as_sam_export(detector_export):
    from sam_onnx.runtime import SamPredictor

    with pytest.raises(ModelLoadError, match=r"detector export .* not a SAM export: give it as --detector"):
        SamPredictor.from_export(detector_export.output_dir)


def test_sam_export_given_as_detector(tiny_model_dir):
    from sam_onnx.runtime.text import Detector

    with pytest.raises(ModelLoadError, match="is a SAM export"):
        Detector(tiny_model_dir)


def test_export_refuses_other_folders(tmp_path, tiny_checkpoint, grounding_dino_dir):
    from sam_onnx.export.detector_export import export_detector

    with pytest.raises(CheckpointError, match="is a file"):
        export_detector(tiny_checkpoint, tmp_path / "out")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "sam"}))
    with pytest.raises(CheckpointError, match="model_type is 'sam'"):
        export_detector(other, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- sam-onnx predict --text ----------------------------------------------------------------------


def test_cli_predict_text(tmp_path, tiny_model_dir, tiny_predictor, detector, detector_export, capsys):
    from PIL import Image

    from sam_onnx.runtime.amg.rle import coco_decode, rle_to_mask
    from sam_onnx.runtime.cli import main
    from sam_onnx.runtime.text import TextPredictor

    image = noise_image(SHAPES[0], seed=7)
    Image.fromarray(image).save(tmp_path / "noise.png")
    prompt = "a cat. a remote control."
    argv = ["predict", str(tmp_path / "noise.png"), "-m", tiny_model_dir, "--detector"]
    argv += [str(detector_export.output_dir), "--text", prompt, "--box-threshold", "0.9", "-o"]
    assert main([*argv, str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "noise.json").read_text())
    expected = TextPredictor(detector, tiny_predictor).predict_text(image, prompt, box_threshold=0.9)
    assert [o["label"] for o in summary["objects"]] == [m.label for m in expected]
    for item, obj in zip(expected, summary["objects"], strict=True):
        written = np.asarray(Image.open(tmp_path / "out" / obj["file"])) > 0
        np.testing.assert_array_equal(written, item.mask)
        np.testing.assert_array_equal(rle_to_mask(coco_decode(obj["rle"])), item.mask)
        assert obj["score"] == pytest.approx(item.score, abs=1e-6)
    assert (tmp_path / "out" / "noise_overlay.png").is_file()
    # bad prompts fail before any image, and nothing is written
    for bad, says in (("", "at least one phrase"), (". .", "besides the separators")):
        assert main([*argv[:-5], "--text", bad, "-o", str(tmp_path / "bad")]) == 2
        assert says in capsys.readouterr().err
    assert main([*argv[:-1], "--box-threshold", "1", "-o", str(tmp_path / "none")]) == 2  # one image
    assert "nothing found for 'a cat. a remote control.'" in capsys.readouterr().err
    assert not list((tmp_path / "none").glob("*")) and not (tmp_path / "bad").exists()
    # the detector's folder as -m
    wrong = ["predict", str(tmp_path / "noise.png"), "-m", str(detector_export.output_dir), *argv[4:]]
    assert main([*wrong, str(tmp_path / "wrong")]) == 2
    assert "give it as --detector" in capsys.readouterr().err


def test_cli_predict_text_on_a_folder(tmp_path, tiny_model_dir, tiny_predictor, detector, capsys):
    """A folder of images, as amg takes one: one set of files per image, equal to predict_text's;
    an image that fails (not an image, nothing found) is reported and the others are written."""
    from PIL import Image

    from sam_onnx.runtime.cli import main
    from sam_onnx.runtime.text import TextPredictor

    folder = tmp_path / "images"
    folder.mkdir()
    images = {f"img{i}": noise_image(shape, seed=20 + i) for i, shape in enumerate(SHAPES)}
    for name, image in images.items():
        Image.fromarray(image).save(folder / f"{name}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    prompt = "cat. dog."
    argv = ["predict", str(folder), "-m", tiny_model_dir, "--detector", str(detector.graph.path.parent)]
    argv += ["--text", prompt, "--box-threshold", "0.9", "-o", str(tmp_path / "out")]
    assert main(argv) == 1  # one of three failed
    err = capsys.readouterr().err
    assert "broken.png" in err and "1 of 3 images failed" in err
    text = TextPredictor(detector, tiny_predictor)
    for name, image in images.items():
        summary = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        expected = text.predict_text(image, prompt, box_threshold=0.9)
        assert [o["label"] for o in summary["objects"]] == [m.label for m in expected]
        for item, obj in zip(expected[:3], summary["objects"], strict=False):
            written = np.asarray(Image.open(tmp_path / "out" / obj["file"])) > 0
            np.testing.assert_array_equal(written, item.mask)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.json")) == ["img0.json", "img1.json"]


# -- sam-onnx serve --detector: the page's text prompts --------------------------------------------


@pytest.fixture(scope="module")
def text_server(tiny_predictor, tiny_model_dir, detector, tmp_path_factory):
    """sam-onnx serve on the tiny SAM export with the detector (a stand-in page: the real one is
    driven by tests/test_demo_web.py), and one without a detector."""
    from sam_onnx.runtime.server.serve import ServeOptions
    from tests.test_serve import serving

    web = tmp_path_factory.mktemp("web")
    (web / "index.html").write_text("<!doctype html><title>demo</title>")
    options = ServeOptions(web_dir=web, port=0, timeout_s=10.0, max_pending=1)
    with (
        serving(tiny_predictor, tiny_model_dir, options, detector) as with_text,
        serving(tiny_predictor, tiny_model_dir, options) as without,
    ):
        yield with_text, without


def png_of(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def detect_request(server, query: dict, body: bytes):
    import urllib.parse

    from tests.test_serve import request

    path = "/api/detect?" + urllib.parse.urlencode(query)
    return request(server, "POST", path, body, {"Content-Type": "image/png", "X-File-Name": "noise.png"})


@pytest.mark.parametrize("shape", SHAPES)
def test_serve_detect_answers_the_detectors_boxes(text_server, detector, shape):
    server, _ = text_server
    from tests.test_serve import request

    assert json.loads(request(server, "GET", "/api/config")[2])["detector"] == "api/detect"
    image = noise_image(shape, seed=3)
    prompt = "a cat. a remote control."
    for query, thresholds in (
        ({"text": prompt}, {}),
        (
            {"text": prompt, "box_threshold": "0.99", "text_threshold": "0.3"},
            {"box_threshold": 0.99, "text_threshold": 0.3},
        ),
    ):
        status, _, body = detect_request(server, query, png_of(image))
        assert status == 200, body
        answer = json.loads(body)
        expected = detector.detect(image, prompt, **thresholds)
        assert len(expected) > 0
        np.testing.assert_array_equal(np.array(answer["boxes_xyxy"], np.float32), expected.boxes_xyxy)
        np.testing.assert_array_equal(np.array(answer["scores"], np.float32), expected.scores)
        assert answer["labels"] == list(expected.labels)
        assert answer["orig_hw"] == list(shape) and answer["prompt"] == prompt
        assert (answer["box_threshold"], answer["text_threshold"]) == (
            thresholds.get("box_threshold", 0.25),
            thresholds.get("text_threshold", 0.25),
        )


@pytest.mark.parametrize(
    ("query", "status", "kind", "says"),
    [
        ({"text": ""}, 400, "InvalidPromptError", "at least one phrase"),
        ({}, 400, "InvalidPromptError", "at least one phrase"),
        ({"text": ". ."}, 400, "InvalidPromptError", "besides the separators"),
        ({"text": "cat.", "box_threshold": "1"}, 422, "NothingFound", "nothing found for 'cat.'"),
        ({"text": "cat.", "box_threshold": "high"}, 400, "InvalidInputError", "box_threshold: expected"),
        ({"text": "cat.", "text_threshold": "1.5"}, 400, "InvalidInputError", "text_threshold"),
    ],
)
def test_serve_detect_errors_are_typed(text_server, query, status, kind, says):
    from tests.test_serve import error_of

    server, _ = text_server
    err = error_of(detect_request(server, query, png_of(noise_image((40, 60)))))
    assert (err["status"], err["type"]) == (status, kind), err
    assert says in err["message"]
    if kind == "NothingFound":
        assert "the best box scored 1.0000" in err["message"]  # random weights: every score saturates


def test_serve_detect_refusals(text_server):
    from tests.test_serve import error_of, request

    server, without = text_server
    assert json.loads(request(without, "GET", "/api/config")[2])["detector"] is None
    err = error_of(detect_request(without, {"text": "cat."}, png_of(noise_image((40, 60)))))
    assert (err["status"], err["type"]) == (404, "NoDetector") and "--detector DIR" in err["message"]
    err = error_of(detect_request(server, {"text": "cat."}, b"not an image"))
    assert err["status"] == 400 and "noise.png" in err["message"]
    server.pending.acquire()  # the one waiting slot taken: the detector is busy
    try:
        err = error_of(detect_request(server, {"text": "cat."}, png_of(noise_image((40, 60)))))
        assert (err["status"], err["type"]) == (429, "Busy")
    finally:
        server.pending.release()


def test_serve_cli_takes_the_detector(tiny_model_dir, tmp_path, capsys):
    """--detector is opened before the server starts: a SAM export given there is refused."""
    from sam_onnx.runtime.cli import main

    (tmp_path / "index.html").write_text("<!doctype html>")
    argv = ["serve", "-m", tiny_model_dir, "--port", "0", "--web", str(tmp_path)]
    assert main([*argv, "--detector", tiny_model_dir]) == 2
    assert "--detector takes the folder sam-export-detector wrote" in capsys.readouterr().err
