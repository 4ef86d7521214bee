"""The ``sam-onnx`` command line on the tiny export: files written, numbers equal to the library."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sam_onnx.runtime import ImageEmbedding, SamPredictor
from sam_onnx.runtime.cli import main


@pytest.fixture
def images(tmp_path):
    """A folder with two PNG images of different shapes."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "images"
    folder.mkdir()
    arrays = {
        "wide": rng.integers(0, 256, (60, 90, 3), np.uint8),
        "tall": rng.integers(0, 256, (80, 50, 3), np.uint8),
    }
    for name, array in arrays.items():
        Image.fromarray(array).save(folder / f"{name}.png")
    return folder, arrays


def test_predict_writes_mask_overlay_and_json(tiny_model_dir, tiny_predictor, images, tmp_path, capsys):
    folder, arrays = images
    out = tmp_path / "out"
    status = main(
        [
            "predict",
            str(folder / "wide.png"),
            "-m",
            tiny_model_dir,
            "--point",
            "40,30",
            "--point",
            "10,5,0",
            "--box",
            "5,5,80,55",
            "-o",
            str(out),
        ]
    )
    assert status == 0, capsys.readouterr().err
    expected = tiny_predictor.predict(
        np.array([[40, 30], [10, 5]]),
        np.array([1, 0]),
        np.array([5, 5, 80, 55]),
        multimask_output=False,
        embedding=tiny_predictor.embed(arrays["wide"]),
    )
    mask = np.asarray(Image.open(out / "wide_mask.png"))
    np.testing.assert_array_equal(mask > 0, expected.masks[0])
    assert set(np.unique(mask)) <= {0, 255}
    summary = json.loads((out / "wide.json").read_text())
    assert summary["masks"][0]["score"] == pytest.approx(float(expected.iou_predictions[0]), abs=1e-6)
    assert summary["masks"][0]["area"] == int(expected.masks[0].sum())
    assert summary["size_hw"] == [60, 90]
    assert summary["prompt"] == {
        "point_coords": [[40, 30], [10, 5]],
        "point_labels": [1, 0],
        "box": [5, 5, 80, 55],
    }
    overlay = np.asarray(Image.open(out / "wide_overlay.png")).astype(np.float64)
    assert overlay.shape == (60, 90, 3)
    # away from the drawn points and box edges: the image, tinted half-way to blue inside the mask
    yy, xx = np.mgrid[:60, :90]
    away = ((xx - 40) ** 2 + (yy - 30) ** 2 > 25) & ((xx - 10) ** 2 + (yy - 5) ** 2 > 25)
    away &= (np.abs(xx - 5) > 2) & (np.abs(xx - 80) > 2) & (np.abs(yy - 5) > 2) & (np.abs(yy - 55) > 2)
    tinted = np.where(
        expected.masks[0][..., None], (arrays["wide"] + np.array([30, 144, 255])) / 2, arrays["wide"]
    )
    np.testing.assert_allclose(overlay[away], tinted[away], atol=0.5 + 1e-9)
    assert expected.masks[0][away].any() and (~expected.masks[0][away]).any()


def test_multimask_writes_three_masks(tiny_model_dir, images, tmp_path):
    folder, _ = images
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                str(folder / "tall.png"),
                "-m",
                tiny_model_dir,
                "--point",
                "20,40",
                "--multimask",
                "-o",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    summary = json.loads((out / "tall.json").read_text())
    assert [m["file"] for m in summary["masks"]] == [f"tall_mask{i}.png" for i in range(3)]
    assert summary["best"] == int(np.argmax([m["score"] for m in summary["masks"]]))


def test_folder_goes_on_after_a_bad_image(tiny_model_dir, images, tmp_path, capsys):
    folder, _ = images
    (folder / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    status = main(["predict", str(folder), "-m", tiny_model_dir, "--point", "20,20", "-o", str(out)])
    err = capsys.readouterr().err
    assert status == 1
    assert "[1/3] broken.png" in err or "broken.png" in err.split("error:")[1]
    assert "1 of 3 images failed" in err
    assert "[2/3] tall.png" in err and "[3/3] wide.png" in err  # progress lines
    assert sorted(p.name for p in out.glob("*.json")) == ["tall.json", "wide.json"]
    assert not list(out.glob("broken*")) and not list(out.glob(".*.tmp"))


def test_embed_then_predict_from_the_saved_embedding(tiny_model_dir, tiny_predictor, images, tmp_path):
    folder, arrays = images
    emb_path = tmp_path / "wide.npy"
    assert main(["embed", str(folder / "wide.png"), "-m", tiny_model_dir, "-o", str(emb_path), "-q"]) == 0
    loaded = ImageEmbedding.load(emb_path)
    np.testing.assert_array_equal(loaded.embedding, tiny_predictor.embed(arrays["wide"]).embedding)
    assert json.loads(emb_path.with_suffix(".json").read_text())["image"] == "wide.png"
    out = tmp_path / "out"
    args = [
        "predict",
        str(folder / "wide.png"),
        "-m",
        tiny_model_dir,
        "--point",
        "40,30",
        "-o",
        str(out),
        "-q",
    ]
    assert main([*args, "--embedding", str(emb_path)]) == 0
    with_saved = np.asarray(Image.open(out / "wide_mask.png"))
    assert main(args) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out / "wide_mask.png")), with_saved)


def test_embedding_of_another_image_is_refused(tiny_model_dir, images, tmp_path, capsys):
    folder, _ = images
    emb_path = tmp_path / "tall.npy"
    assert main(["embed", str(folder / "tall.png"), "-m", tiny_model_dir, "-o", str(emb_path), "-q"]) == 0
    status = main(
        [
            "predict",
            str(folder / "wide.png"),
            "-m",
            tiny_model_dir,
            "--point",
            "1,1",
            "--embedding",
            str(emb_path),
            "-o",
            str(tmp_path / "out"),
        ]
    )
    assert status == 2
    assert "an image of 80 x 50 pixels" in capsys.readouterr().err


def test_predict_never_writes_over_its_embedding(tiny_model_dir, images, tmp_path, capsys):
    """``predict x.png --embedding out/x.npy -o out`` would write its x.json over the embedding's
    sidecar (the next reuse then failed: "not a sam-onnx embedding sidecar"): refused before any
    work, naming both paths; with another -o folder it runs, and the embedding still loads."""
    folder, _ = images
    out = tmp_path / "out"
    out.mkdir()
    emb_path = out / "wide.npy"
    assert main(["embed", str(folder / "wide.png"), "-m", tiny_model_dir, "-o", str(emb_path), "-q"]) == 0
    sidecar = (out / "wide.json").read_bytes()
    args = ["predict", str(folder / "wide.png"), "-m", tiny_model_dir, "--point", "40,30"]
    args += ["--embedding", str(emb_path), "-q", "-o"]
    assert main([*args, str(out)]) == 2
    err = capsys.readouterr().err
    assert f"output '{out / 'wide.json'}'" in err
    assert f"the same file as its input embedding sidecar '{out / 'wide.json'}'" in err
    assert (out / "wide.json").read_bytes() == sidecar and not list(out.glob("wide_*"))
    assert main([*args, str(tmp_path / "masks")]) == 0
    assert ImageEmbedding.load(emb_path).orig_hw == (60, 90)


def test_predict_never_writes_over_an_input_image(tiny_model_dir, images, capsys):
    """An image named like another one's overlay, predicted into its own folder, is refused."""
    folder, arrays = images
    Image.fromarray(arrays["tall"]).save(folder / "wide_overlay.png")
    before = (folder / "wide_overlay.png").read_bytes()
    args = ["predict", str(folder), "-m", tiny_model_dir, "--point", "1,1", "-o", str(folder), "-q"]
    assert main(args) == 2
    assert f"its input image '{folder / 'wide_overlay.png'}'" in capsys.readouterr().err
    assert (folder / "wide_overlay.png").read_bytes() == before and not list(folder.glob("*.json"))


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        ("predict", [], "predict needs at least one --point, a --box or --text"),
        ("embed", ["--workers", "2"], "--workers needs --engine ray"),
    ],
)
def test_errors_after_parsing_show_the_commands_usage(
    tiny_model_dir, images, tmp_path, capsys, command, extra, message
):
    """A bare ``predict`` printed the top-level usage (``sam-onnx [-h] [--version] {embed,...}``)."""
    folder, _ = images
    with pytest.raises(SystemExit) as info:
        main([command, str(folder / "wide.png"), "-m", tiny_model_dir, "-o", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.startswith(f"usage: sam-onnx {command} ") and "{embed," not in err
    assert f"sam-onnx {command}: error: {message}" in err


def test_embed_folder(tiny_model_dir, images, tmp_path):
    folder, _ = images
    out = tmp_path / "embeddings"
    assert main(["embed", str(folder), "-m", tiny_model_dir, "-o", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["tall.json", "tall.npy", "wide.json", "wide.npy"]
    assert ImageEmbedding.load(out / "tall").orig_hw == (80, 50)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--point", "1,2,3,4"], "X,Y or X,Y,LABEL"),
        (["--point", "1,2,5"], "LABEL must be 1"),
        (["--box", "1,2,3"], "X0,Y0,X1,Y1"),
        ([], "at least one --point, a --box or --text"),
    ],
)
def test_bad_prompt_arguments(tiny_model_dir, images, tmp_path, capsys, args, message):
    folder, _ = images
    with pytest.raises(SystemExit) as info:
        main(["predict", str(folder / "wide.png"), "-m", tiny_model_dir, "-o", str(tmp_path / "o"), *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--box", "50,5,10,40"], "x0 <= x1"),
        (["--point", "nan,3"], "finite"),
    ],
)
def test_bad_prompt_values_exit_2(tiny_model_dir, images, tmp_path, capsys, args, message):
    folder, _ = images
    status = main(
        ["predict", str(folder / "wide.png"), "-m", tiny_model_dir, "-o", str(tmp_path / "o"), *args]
    )
    assert status == 2
    assert message in capsys.readouterr().err


def test_model_from_environment_or_missing(images, tiny_model_dir, tmp_path, monkeypatch, capsys):
    folder, _ = images
    args = ["embed", str(folder / "wide.png"), "-o", str(tmp_path / "e.npy"), "-q"]
    monkeypatch.delenv("SAM_ONNX_MODEL", raising=False)
    assert main(args) == 2
    assert "-m MODEL_DIR" in capsys.readouterr().err
    monkeypatch.setenv("SAM_ONNX_MODEL", tiny_model_dir)
    assert main(args) == 0


@pytest.mark.parametrize("target", ["missing.png", "empty_dir"])
def test_no_images(tiny_model_dir, tmp_path, capsys, target):
    (tmp_path / "empty_dir").mkdir()
    status = main(["embed", str(tmp_path / target), "-m", tiny_model_dir, "-o", str(tmp_path / "o")])
    assert status == 2
    assert target in capsys.readouterr().err


def test_model_directory_without_graphs(tmp_path, images, capsys):
    folder, _ = images
    status = main(["embed", str(folder), "-m", str(tmp_path), "-o", str(tmp_path / "o")])
    assert status == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "not a sam-export output folder" in err


def test_no_fast_decoder_predicts_with_the_contract_decoder(tiny_model_dir, images, tmp_path, capsys):
    """The first line names the decoder; with ``--no-fast-decoder`` it is the export's contract
    decoder, and the mask and score are those of a predictor opened without the pair."""
    folder, arrays = images
    logs = {}
    for flag in ([], ["--no-fast-decoder"]):
        out = tmp_path / ("plain" if flag else "pair")
        argv = ["predict", str(folder / "wide.png"), "-m", tiny_model_dir, "--point", "40,30", "-o", str(out)]
        assert main([*argv, *flag]) == 0
        logs[bool(flag)] = capsys.readouterr().err
    plain = SamPredictor.from_export(tiny_model_dir, fast_decoder=None)
    assert "decoder: fast decoder pair" in logs[False]
    assert f"decoder: {plain.decoder.path.name}," in logs[True] and "fast decoder pair" not in logs[True]
    expected = plain.predict(
        np.array([[40, 30]]), np.array([1]), multimask_output=False, embedding=plain.embed(arrays["wide"])
    )
    mask = np.asarray(Image.open(tmp_path / "plain" / "wide_mask.png")) > 0
    np.testing.assert_array_equal(mask, expected.masks[0])
    score = json.loads((tmp_path / "plain" / "wide.json").read_text())["masks"][0]["score"]
    assert score == pytest.approx(float(expected.iou_predictions[0]), abs=1e-6)


@pytest.mark.parametrize("command", ["serve", "bundle"])
def test_no_fast_decoder_leaves_the_pair_closed_for_the_page_commands(tiny_model_dir, tmp_path, command):
    """``serve`` hands the page the pair only when its predictor runs it (see ``sam_onnx.runtime.
    serve``); ``bundle`` embeds with the same predictor."""
    from sam_onnx.runtime.cli import _open_predictor, build_parser

    extra = ["-o", str(tmp_path / "site")] if command == "bundle" else []
    for flag, has_pair in (([], True), (["--no-fast-decoder"], False)):
        args = build_parser().parse_args([command, "-m", tiny_model_dir, *extra, *flag])
        assert (_open_predictor(args).fast is not None) is has_pair
