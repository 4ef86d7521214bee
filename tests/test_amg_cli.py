"""``sam-onnx amg`` and the generator on the tiny export: files, COCO RLE, skipping, failures."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from sam_onnx.errors import InvalidInputError
from sam_onnx.runtime.amg import AmgOptions, AutomaticMaskGenerator
from sam_onnx.runtime.amg.rle import coco_decode, rle_to_mask
from sam_onnx.runtime.cli import main

# The tiny model's masks are not stable objects: keep every mask so that there is output to check.
KEEP_ALL = ["--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0"]
KEEP_ALL_OPTIONS = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "images"
    path.mkdir()
    for name, hw in (("a", (40, 64)), ("b", (70, 30))):
        Image.fromarray(rng.integers(0, 256, (*hw, 3), np.uint8)).save(path / f"{name}.png")
    return path


def expected_masks(predictor, path, **options) -> list[np.ndarray]:
    generator = AutomaticMaskGenerator(predictor, output_mode="binary_mask", **KEEP_ALL_OPTIONS, **options)
    return [ann["segmentation"] for ann in generator.generate(path)]


def test_json_decodes_with_pycocotools_to_the_generator_masks(
    tiny_model_dir, tiny_predictor, folder, tmp_path
):
    mask_api = pytest.importorskip("pycocotools.mask")
    out = tmp_path / "out"
    assert main(["amg", str(folder), "-m", tiny_model_dir, "-o", str(out), "-q", *KEEP_ALL]) == 0
    for name, hw in (("a", (40, 64)), ("b", (70, 30))):
        data = json.loads((out / f"{name}.json").read_text())
        assert data["image"]["file_name"] == f"{name}.png"
        assert (data["image"]["height"], data["image"]["width"]) == hw
        want = expected_masks(tiny_predictor, folder / f"{name}.png")
        assert len(data["annotations"]) == len(want) > 0
        for ann, mask in zip(data["annotations"], want, strict=True):
            rle = {"size": ann["segmentation"]["size"], "counts": ann["segmentation"]["counts"].encode()}
            np.testing.assert_array_equal(mask_api.decode(rle).astype(bool), mask)
            np.testing.assert_array_equal(rle_to_mask(coco_decode(ann["segmentation"])), mask)
            assert ann["area"] == int(mask.sum())
        assert Image.open(out / f"{name}_overlay.png").size == (hw[1], hw[0])


def test_png_folder_like_official_amg(tiny_model_dir, tiny_predictor, folder, tmp_path):
    out = tmp_path / "out"
    assert (
        main(
            [
                "amg",
                str(folder / "b.png"),
                "-m",
                tiny_model_dir,
                "-o",
                str(out),
                "--format",
                "png",
                "-q",
                *KEEP_ALL,
            ]
        )
        == 0
    )
    with open(out / "b" / "metadata.csv") as f:
        rows = list(csv.DictReader(f))
    want = expected_masks(tiny_predictor, folder / "b.png")
    assert len(rows) == len(want) > 0
    for i, (row, mask) in enumerate(zip(rows, want, strict=True)):
        np.testing.assert_array_equal(np.asarray(Image.open(out / "b" / f"{i}.png")) > 0, mask)
        assert int(row["area"]) == int(mask.sum())
    assert sorted(p.name for p in out.iterdir()) == ["b", "b_overlay.png"]


def test_rerun_skips_finished_images_and_overwrite_redoes_them(tiny_model_dir, folder, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["amg", str(folder), "-m", tiny_model_dir, "-o", str(out), *KEEP_ALL]
    assert main(args) == 0
    (out / "b.json").unlink()  # as if the first run had stopped before image b
    before = (out / "a.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert (
        "[1/2] a.png: done before, skipped" in err
        and "[2/2] b.png: " in err
        and "skipped" not in err.split("b.png")[1]
    )
    assert (out / "a.json").stat().st_mtime_ns == before and (out / "b.json").is_file()
    assert main([*args, "--overwrite"]) == 0
    assert (out / "a.json").stat().st_mtime_ns != before


def test_a_failing_image_is_reported_and_the_rest_done(tiny_model_dir, folder, tmp_path, capsys):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    out = tmp_path / "out"
    assert main(["amg", str(folder), "-m", tiny_model_dir, "-o", str(out), *KEEP_ALL]) == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "1 of 3 images failed" in err
    assert sorted(p.name for p in out.glob("*.json")) == ["a.json", "b.json"]


def test_bad_generator_options(tiny_model_dir, folder, tmp_path, capsys):
    status = main(
        ["amg", str(folder), "-m", tiny_model_dir, "-o", str(tmp_path / "o"), "--pred-iou-thresh", "1.5"]
    )
    assert status == 2
    assert "invalid pred_iou_thresh: expected a number from 0 to 1, got 1.5" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"points_per_side": 0}, "points_per_side"),
        ({"points_per_side": None}, "exactly one of the two"),
        ({"point_grids": (np.zeros((4, 2)),)}, "exactly one of the two"),
        ({"points_per_side": None, "point_grids": (np.full((4, 2), 1.5),)}, "in \\[0, 1\\]"),
        (
            {"points_per_side": None, "point_grids": (np.zeros((4, 2)),), "crop_n_layers": 1},
            "one grid per crop",
        ),
        ({"output_mode": "png"}, "output_mode"),
        ({"crop_overlap_ratio": 1.0}, "crop_overlap_ratio"),
        ({"min_mask_region_area": -1}, "min_mask_region_area"),
    ],
)
def test_options_are_checked(options, message):
    with pytest.raises(InvalidInputError, match=message):
        AmgOptions(**options)


def test_explicit_point_grid_equals_points_per_side(tiny_predictor, folder):
    from sam_onnx.runtime.amg.crops import point_grid

    grid = AutomaticMaskGenerator(
        tiny_predictor,
        points_per_side=None,
        point_grids=(point_grid(4),),
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        output_mode="binary_mask",
    )
    got = [a["segmentation"] for a in grid.generate(folder / "a.png")]
    want = expected_masks(tiny_predictor, folder / "a.png")
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_min_mask_region_area_fills_holes_and_drops_islands(tiny_predictor, folder):
    """With small-region removal no kept mask has a hole or island under the area (8-connected)."""
    import cv2

    area = 30
    anns = AutomaticMaskGenerator(
        tiny_predictor, output_mode="binary_mask", min_mask_region_area=area, **KEEP_ALL_OPTIONS
    ).generate(folder / "a.png")
    assert anns
    for ann in anns:
        mask = ann["segmentation"]
        assert ann["area"] == int(mask.sum())
        for region in (mask, ~mask):
            n, _, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=8)
            sizes = stats[1:, cv2.CC_STAT_AREA]
            if region is mask:  # islands: none small unless it is the only one left
                assert (sizes >= area).all() or n == 2
            else:  # holes: none small
                assert (sizes >= area).all()


def test_decoder_runs_stay_within_the_memory_bound_on_large_images(tiny_predictor):
    """On a 1500 x 2250 image a run of 64 prompts would hold 3.5 GB of logits alone; the runs
    shrink so that one run's estimated working memory (4-token logits at the original and the
    resized size, upscaled features: 73 MB a prompt) stays within DECODER_BYTES, and together they
    cover every prompt."""
    from sam_onnx.runtime.core.predictor import DECODER_BYTES, decoder_bytes

    assert decoder_bytes((1500, 2250)) == 16 * (1500 * 2250 + 683 * 1024) + 32 * 256 * 256 * 4
    image = np.random.default_rng(6).integers(0, 256, (1500, 2250, 3), np.uint8)
    emb = tiny_predictor.embed(image)
    points = np.random.default_rng(7).uniform((0, 0), (2250, 1500), (10, 2))
    runs = [
        (logits.shape, iou.shape) for logits, iou in tiny_predictor.iter_point_masks(points, emb, batch=64)
    ]
    assert [shape[0] for shape, _ in runs] == [3, 3, 3, 1]
    for (b, tokens, h, w), _ in runs:
        assert (tokens, h, w) == (3, 1500, 2250)
        assert b * decoder_bytes((h, w)) <= DECODER_BYTES


def test_no_fast_decoder_reaches_the_job_and_its_masks(tiny_model_dir, folder, tmp_path):
    """``amg --no-fast-decoder``: the job (local or on a Ray worker: the spec is all it sees) opens
    the predictor without the pair, and its masks are those of a predictor opened so."""
    from sam_onnx.runtime import SamPredictor
    from sam_onnx.runtime.batch import jobs
    from sam_onnx.runtime.cli import build_parser, job_spec

    labels = {}
    for flag in ([], ["--no-fast-decoder"]):
        argv = ["amg", str(folder), "-m", tiny_model_dir, "-o", str(tmp_path / "out"), *KEEP_ALL, *flag]
        spec = job_spec(build_parser().parse_args(argv), 2)
        assert spec.fast_decoder == (not flag)
        job = jobs.open_job(spec)
        labels[bool(flag)] = job.predictor.decoder_label
    plain = SamPredictor.from_export(tiny_model_dir, fast_decoder=None)
    assert labels == {False: "fast decoder pair", True: plain.decoder.path.name}
    got = [ann["segmentation"] for ann in job.generator.generate(folder / "a.png")]
    want = expected_masks(plain, folder / "a.png")
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(rle_to_mask(g), w)
