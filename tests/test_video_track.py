"""``sam-onnx track`` and :mod:`sam_onnx.runtime.video.track`: what is written equals what the
predictor yields (DAVIS-style PNGs, COCO RLE JSON), both directions, the overlay video, nothing
half-written, and bad prompts refused. The predictor runs our PyTorch Sam2Video (tiny, random)
behind the model interface; the exported graphs' tracking is tested in test_video_predictor_golden."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam_onnx.errors import InvalidInputError
from sam_onnx.runtime import cli
from sam_onnx.runtime.amg.rle import coco_decode, rle_to_mask
from sam_onnx.runtime.video import VideoPredictor
from sam_onnx.runtime.video.track import (
    FramePrompt,
    TrackSummary,
    label_map,
    load_prompt_file,
    merge_prompts,
    palette,
    track_video,
    write_overlay,
)

H, W, FRAMES = 24, 36, 4


@pytest.fixture(scope="module")
def predictor():
    pytest.importorskip("torch")
    from tests.video_torch_model import tiny_torch_video_model

    return VideoPredictor(tiny_torch_video_model())


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A folder of <index>.jpg frames, as the official loader takes them."""
    folder = tmp_path_factory.mktemp("clip")
    rng = np.random.default_rng(3)
    for i in range(FRAMES):
        Image.fromarray(rng.integers(0, 256, (H, W, 3), np.uint8)).save(folder / f"{i:05d}.jpg")
    return folder


PROMPTS = [
    FramePrompt(1, 1, points=((10.0, 12.0),), labels=(1,)),
    FramePrompt(1, 1, points=((30.0, 5.0),), labels=(0,)),  # joins the first: one call
    FramePrompt(2, 4, box=(3.0, 4.0, 20.0, 18.0)),
]


@pytest.fixture(scope="module")
def both_ways(predictor, clip) -> list[tuple[int, list, np.ndarray]]:
    """The same prompts given to the predictor by hand, forward then backward: what track_video
    must write (the forward frames first)."""
    state = predictor.init_state(str(clip))
    predictor.add_new_points_or_box(state, 1, 1, points=[[10, 12], [30, 5]], labels=[1, 0])
    predictor.add_new_points_or_box(state, 2, 4, box=[3, 4, 20, 18])
    return list(predictor.propagate_in_video(state)) + list(predictor.propagate_in_video(state, reverse=True))


@pytest.fixture(scope="module")
def forward(both_ways):
    return both_ways[: FRAMES - 1]  # frames 1..3


@pytest.fixture(scope="module")
def png_run(predictor, clip, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("png") / "out"
    summary = track_video(predictor, str(clip), PROMPTS, out)
    assert summary.frames == [1, 2, 3] and summary.obj_ids == [1, 4]
    return out


def test_png_frames_are_the_predictors_masks(png_run, forward):
    assert [f for f, _, _ in forward] == [1, 2, 3]
    for frame, ids, logits in forward:
        image = Image.open(png_run / f"{frame:05d}.png")
        assert image.mode == "P" and image.size == (W, H)
        labels = np.asarray(image)
        np.testing.assert_array_equal(labels, label_map(ids, logits))
        assert set(np.unique(labels)) <= {0, 1, 4}
    assert not (png_run / "00000.png").exists()  # not reached going forward
    meta = json.loads((png_run / "track.json").read_text())
    assert meta["frames"] == [1, 2, 3] and meta["obj_ids"] == [1, 4] and len(meta["prompts"]) == 2


def test_label_map_takes_the_highest_logit_above_zero():
    logits = np.array([[[[1.0, -1.0, 3.0, -2.0]]], [[[2.0, -0.5, 0.5, -3.0]]]], np.float32)
    np.testing.assert_array_equal(label_map([3, 9], logits), [[9, 0, 3, 0]])
    colours = palette()
    assert len(colours) == 768 and colours[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]  # DAVIS / VOC


def test_coco_frames_both_ways(predictor, clip, tmp_path, both_ways):
    out = tmp_path / "out"
    summary = track_video(predictor, str(clip), PROMPTS, out, output_format="coco", direction="both")
    assert summary.frames == [1, 2, 3, 0]
    last = {frame: (ids, logits) for frame, ids, logits in both_ways}  # the backward pass rewrites 1..2
    for frame, (ids, logits) in last.items():
        data = json.loads((out / f"{frame:05d}.json").read_text())
        assert data["frame"] == frame and [o["obj_id"] for o in data["objects"]] == ids
        for obj, mask in zip(data["objects"], logits[:, 0] > 0, strict=True):
            np.testing.assert_array_equal(rle_to_mask(coco_decode(obj["segmentation"])), mask)
            assert obj["area"] == int(mask.sum())


def test_overlay_video_has_every_frame_tinted(tmp_path):
    """write_overlay on flat grey frames and a written label map: each object's pixels half its
    palette colour, other pixels and unwritten frames the frame itself (mp4v is lossy: means)."""
    cv2 = pytest.importorskip("cv2")
    h, w = 48, 64
    frames_dir, masks_dir = tmp_path / "frames", tmp_path / "masks"
    frames_dir.mkdir()
    masks_dir.mkdir()
    for i in range(3):
        Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(frames_dir / f"{i:05d}.jpg")
    labels = np.zeros((h, w), np.uint8)
    labels[:, :32] = 1
    labels[:, 32:48] = 4
    image = Image.fromarray(labels, mode="P")
    image.putpalette(palette())
    image.save(masks_dir / "00001.png")
    summary = TrackSummary(frames=[1], obj_ids=[1, 4])
    write_overlay(str(frames_dir), masks_dir, tmp_path / "overlay.mp4", summary, "png")
    assert not list(tmp_path.glob(".overlay*"))
    capture = cv2.VideoCapture(str(tmp_path / "overlay.mp4"))
    got = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        got.append(frame[..., ::-1].astype(np.float32))  # BGR -> RGB
    assert len(got) == 3 and got[0].shape == (h, w, 3)
    colours = np.asarray(palette(), np.float32).reshape(256, 3)
    for frame, region, want in [
        (got[0], np.s_[:, :], np.full(3, 100.0)),
        (got[1], np.s_[4:-4, 4:28], 50 + 0.5 * colours[1]),
        (got[1], np.s_[4:-4, 36:44], 50 + 0.5 * colours[4]),
        (got[1], np.s_[4:-4, 52:60], np.full(3, 100.0)),
        (got[2], np.s_[:, :], np.full(3, 100.0)),
    ]:
        np.testing.assert_allclose(frame[region].mean(axis=(0, 1)), want, atol=8)


def test_output_is_replaced_whole_or_not_at_all(predictor, clip, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "00000.png").write_bytes(b"an earlier run")
    with pytest.raises(InvalidInputError, match="does not exist yet"):
        track_video(predictor, str(clip), PROMPTS[:1], out)

    class Failing:
        """The predictor, failing on the second tracked frame."""

        def __getattr__(self, name):
            return getattr(predictor, name)

        def propagate_in_video(self, state, **kwargs):
            for i, item in enumerate(predictor.propagate_in_video(state, **kwargs)):
                if i == 1:
                    raise OSError("disk gone")
                yield item

    with pytest.raises(OSError, match="disk gone"):
        track_video(Failing(), str(clip), PROMPTS[:1], out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["00000.png"]  # the earlier folder, untouched
    assert (out / "00000.png").read_bytes() == b"an earlier run"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: FramePrompt(0, 1), "points, a box or a mask"),
        (lambda: FramePrompt(0, 0, box=(0, 0, 1, 1)), "obj_id"),
        (lambda: FramePrompt(-1, 1, box=(0, 0, 1, 1)), "frame"),
        (lambda: FramePrompt(0, 1, points=((1.0, 2.0),), labels=()), "one per point"),
        (lambda: FramePrompt(0, 1, box=(0, 0, 1, 1), mask=Path("m.png")), "a mask with points or a box"),
        (
            lambda: merge_prompts([FramePrompt(0, 1, box=(0, 0, 1, 1)), FramePrompt(0, 1, box=(0, 0, 2, 2))]),
            "two boxes",
        ),
    ],
)
def test_bad_prompts_are_refused(make, match):
    with pytest.raises(InvalidInputError, match=match):
        make()


def test_prompt_file(tmp_path, clip, predictor):
    mask = np.zeros((H, W), np.uint8)
    mask[5:15, 8:20] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    good = [{"frame": 0, "obj_id": 2, "mask": "m.png"}, {"frame": 3, "obj_id": 5, "points": [[4, 5]]}]
    (tmp_path / "p.json").write_text(json.dumps(good))
    prompts = load_prompt_file(tmp_path / "p.json")
    assert prompts[0].mask == tmp_path / "m.png" and prompts[1].labels == (1,)
    summary = track_video(predictor, str(clip), prompts, tmp_path / "out", max_frames=1)
    assert summary.frames == [0, 1] and summary.obj_ids == [2, 5]
    # frame 0: object 2's mask prompt is its output (logits +-10); object 5, prompted on frame 3,
    # is tracked there from that later memory (as officially) and may win where it is above 10
    labels = np.asarray(Image.open(tmp_path / "out" / "00000.png"))
    inside = mask > 0
    assert set(np.unique(labels[inside])) <= {2, 5} and 2 not in labels[~inside]
    for text, match in [
        ("{", "readable JSON"),
        ("[]", "non-empty JSON list"),
        ('[{"frame": 0}]', '"frame" and "obj_id"'),
        ('[{"frame": 0, "obj_id": 1, "pointz": [[1, 2]]}]', "keys frame, obj_id"),
        ('[{"frame": 0, "obj_id": 1, "box": [1, 2, 3]}]', "four numbers"),
        ('[{"frame": 0, "obj_id": 1, "points": [[1, 2]], "labels": [1, 0]}]', "one per point"),
    ]:
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(InvalidInputError, match=match):
            load_prompt_file(tmp_path / "bad.json")


def test_bad_runs_are_refused_before_anything_is_written(predictor, clip, tmp_path):
    out = tmp_path / "out"
    cases = [
        ({"prompts": [FramePrompt(0, 300, box=(0, 0, 5, 5))]}, "at most 255"),
        ({"output_format": "gif"}, "output format"),
        ({"direction": "sideways"}, "direction"),
        ({"overlay": tmp_path / "o.avi"}, "ending in .mp4"),
        ({"prompts": [FramePrompt(9, 1, box=(0, 0, 5, 5))]}, "frame"),
        ({"prompts": [FramePrompt(0, 1, mask=tmp_path / "missing.png")]}, "missing.png"),
    ]
    for kwargs, match in cases:
        kwargs = {"prompts": PROMPTS, **kwargs}
        with pytest.raises(InvalidInputError, match=match):
            track_video(predictor, str(clip), kwargs.pop("prompts"), out, **kwargs)
        assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_command_line(predictor, clip, tmp_path, monkeypatch, capsys, forward):
    monkeypatch.setattr(VideoPredictor, "from_export", classmethod(lambda cls, *a, **k: predictor))
    out = tmp_path / "out"
    argv = [
        "track",
        str(clip),
        "-m",
        str(tmp_path),
        "-o",
        str(out),
        "--point",
        "1:1:10,12",
        "--point",
        "1:1:30,5,0",
    ]
    assert cli.main([*argv, "--box", "2:4:3,4,20,18", "-q"]) == 0
    for frame, ids, logits in forward:
        np.testing.assert_array_equal(
            np.asarray(Image.open(out / f"{frame:05d}.png")), label_map(ids, logits)
        )
    assert cli.main([*argv, "-q"]) == 2  # the folder exists
    assert "does not exist yet" in capsys.readouterr().err
    assert cli.main(["track", str(clip), "-m", str(tmp_path), "-o", str(tmp_path / "o2"), "-q"]) == 2
    assert "at least one --point" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["track", str(clip), "-o", str(out), "--point", "1:10,12"])
    assert "F:OBJ:X,Y" in capsys.readouterr().err
