"""``sam-onnx track`` over a folder of videos, one prompt file each, as a batch job: each video
tracked into its own folder as ``track`` tracks one, a broken video or prompt file a failure
record naming it while the others complete, re-runs resuming, and the Ray engine writing what the
local engine writes. The tiny SAM 2 video export, clips of two 24 x 32 frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam_onnx.errors import InvalidInputError, ModelLoadError
from sam_onnx.runtime import cli
from sam_onnx.runtime.batch.jobs import JobSpec, find_videos
from sam_onnx.runtime.batch.local import run_local
from sam_onnx.runtime.video.track import TrackOptions
from tests.test_distributed import needs_ray, snapshot

H, W = 24, 32
PROMPTS = {
    "a": [{"frame": 0, "obj_id": 1, "points": [[10, 12]]}],
    "b": [{"frame": 1, "obj_id": 2, "box": [4, 3, 20, 18]}, {"frame": 1, "obj_id": 5, "points": [[28, 20]]}],
    "c": [{"frame": 0, "obj_id": 1, "points": [[5, 5]]}],
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """``clips/``: ``a/`` (two JPEG frames), ``b.mp4`` (two frames), ``c.mp4`` (not a video) and a
    text file that is no video; ``prompts/NAME.json`` for each (b is tracked backwards from 1)."""
    cv2 = pytest.importorskip("cv2")
    root = tmp_path_factory.mktemp("videos")
    clips, prompts = root / "clips", root / "prompts"
    (clips / "a").mkdir(parents=True)
    prompts.mkdir()
    rng = np.random.default_rng(5)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (H, W, 3), np.uint8)).save(clips / "a" / f"{i:05d}.jpg")
    writer = cv2.VideoWriter(str(clips / "b.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (W, H))
    for _ in range(2):
        writer.write(rng.integers(0, 256, (H, W, 3), np.uint8))
    writer.release()
    (clips / "c.mp4").write_bytes(b"not a video")
    (clips / "notes.txt").write_text("not a video either")
    for name, items in PROMPTS.items():
        (prompts / f"{name}.json").write_text(json.dumps(items))
    return root


def track_spec(model_dir, out, prompts, **options) -> JobSpec:
    track = TrackOptions(str(prompts), **options)
    return JobSpec("track", str(model_dir), str(out), threads=1, track=track)


def clip_paths(videos: Path) -> list[str]:
    return [str(p) for p in find_videos([videos / "clips"])]


def labels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


@pytest.fixture(scope="module")
def local_run(tiny_video_export, videos, tmp_path_factory):
    """The local engine over the folder: b backwards, with an overlay in each video's folder."""
    out = tmp_path_factory.mktemp("local") / "out"
    spec = track_spec(tiny_video_export, out, videos / "prompts", direction="both", overlay="overlay.mp4")
    return out, run_local(spec, clip_paths(videos))


def test_each_video_is_tracked_into_its_folder_and_a_broken_one_fails_alone(
    local_run, videos, tiny_video_export, tmp_path
):
    out, summary = local_run
    assert (summary.total, summary.done, summary.failed, summary.skipped) == (3, 2, 1, 0)
    assert summary.masks == 2 * 1 + 2 * 2  # a: 2 frames x 1 object, b: 2 frames x 2 objects
    (failure,) = summary.failures
    assert failure.name == "c" and failure.path == str(videos / "clips" / "c.mp4")
    assert failure.error.startswith("InvalidVideoError: ") and "c.mp4" in failure.error
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"]  # no staging left, nothing for c
    for name, objects in [("a", [1]), ("b", [2, 5])]:
        files = sorted(p.name for p in (out / name).iterdir())
        assert files == ["00000.png", "00001.png", "overlay.mp4", "track.json"]
        meta = json.loads((out / name / "track.json").read_text())
        assert meta["obj_ids"] == objects and sorted(meta["frames"]) == [0, 1]
        found = set(np.unique(np.concatenate([m.ravel() for m in labels(out / name).values()])))
        assert set(objects) <= found <= {0, *objects}  # every object on some frame
    # video a is written as the single-video command writes it
    single = tmp_path / "single"
    argv = ["track", str(videos / "clips" / "a"), "-m", str(tiny_video_export), "-o", str(single)]
    argv += ["--prompts", str(videos / "prompts" / "a.json"), "--direction", "both", "-q", "--threads", "1"]
    assert cli.main(argv) == 0
    for name, image in labels(single).items():
        np.testing.assert_array_equal(labels(out / "a")[name], image)


def test_a_rerun_skips_finished_videos_and_retries_the_failed_one(local_run, videos, tiny_video_export):
    out, _ = local_run
    before = snapshot(out)
    spec = track_spec(tiny_video_export, out, videos / "prompts", direction="both", overlay="overlay.mp4")
    again = run_local(spec, clip_paths(videos))
    assert (again.done, again.failed, again.skipped) == (0, 1, 2)  # c is tried again
    assert again.failures[0].name == "c"
    assert snapshot(out) == before  # nothing rewritten
    without_c = [p for p in clip_paths(videos) if not p.endswith("c.mp4")]
    assert run_local(spec, without_c).skipped == 2
    assert snapshot(out) == before


@needs_ray
@pytest.mark.slow
def test_ray_writes_what_the_local_engine_writes(
    ray_session, local_run, videos, tiny_video_export, tmp_path, capsys
):
    """The same files: PNGs equal, track.json equal but for its timings, overlays both there; the
    broken video a failure record; a re-run on Ray skips the finished videos and retries c."""
    local, _ = local_run
    out = tmp_path / "ray"
    argv = ["track", str(videos / "clips"), "-m", str(tiny_video_export), "-o", str(out), "-q"]
    argv += ["--prompts", str(videos / "prompts" / "{name}.json"), "--direction", "both"]
    argv += ["--overlay", "overlay.mp4", "--engine", "ray", "--workers", "2", "--threads-per-worker", "1"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert f"{videos / 'clips' / 'c.mp4'}: InvalidVideoError" in err and "1 of 3 video(s) failed" in err
    assert sorted(snapshot(out)) == sorted(snapshot(local))
    for name in ("a", "b"):
        got, want = labels(out / name), labels(local / name)
        assert sorted(got) == sorted(want) == ["00000.png", "00001.png"]
        for frame in got:
            np.testing.assert_array_equal(got[frame], want[frame])
        meta = [json.loads((o / name / "track.json").read_text()) for o in (out, local)]
        for data in meta:
            del data["seconds"], data["frames_per_second"]
        assert meta[0] == meta[1]

    from sam_onnx.runtime.batch.distributed import RayOptions, run_job

    before = snapshot(out)
    spec = track_spec(tiny_video_export, out, videos / "prompts", direction="both", overlay="overlay.mp4")
    again = run_job(spec, clip_paths(videos), RayOptions(workers=1, threads_per_worker=1))
    assert (again.done, again.failed, again.skipped) == (0, 1, 2)
    assert again.failures[0].error.startswith("InvalidVideoError: ")
    assert snapshot(out) == before


def test_bad_prompt_files_and_foreign_folders_fail_their_video_naming_them(tiny_video_export, tmp_path):
    """No tracking runs: each video fails before its first frame, with the file or folder named."""
    clips, prompts, out = tmp_path / "clips", tmp_path / "prompts", tmp_path / "out"
    for name in ("bad", "missing", "foreign"):
        (clips / name).mkdir(parents=True)
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(clips / name / "0.jpg")
    prompts.mkdir()
    (prompts / "bad.json").write_text('[{"frame": 0, "obj_id": 1, "box": [1, 2, 3]}]')
    (prompts / "foreign.json").write_text(json.dumps(PROMPTS["a"]))
    (out / "foreign").mkdir(parents=True)
    (out / "foreign" / "mine.txt").write_text("someone's")
    summary = run_local(track_spec(tiny_video_export, out, prompts), [str(p) for p in find_videos([clips])])
    assert (summary.done, summary.failed) == (0, 3)
    errors = {record.name: record.error for record in summary.failures}
    assert errors["bad"].startswith("InvalidInputError: invalid prompt file")
    assert str(prompts / "bad.json") in errors["bad"] and "four numbers" in errors["bad"]
    assert str(prompts / "missing.json") in errors["missing"] and "readable JSON" in errors["missing"]
    assert str(out / "foreign") in errors["foreign"] and "an earlier track result" in errors["foreign"]
    assert [p.name for p in (out / "foreign").iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in out.iterdir()) == ["foreign"]


def test_options_and_inputs_are_checked_before_any_work(tmp_path):
    (tmp_path / "p.json").write_text("[]")
    for kwargs, match in [
        ({"prompts": str(tmp_path / "p.json")}, "a folder of NAME.json prompt files"),
        ({"prompts": str(tmp_path), "overlay": "sub/o.mp4"}, "a file name ending in .mp4"),
        ({"prompts": str(tmp_path), "overlay": "o.avi"}, "a file name ending in .mp4"),
        ({"prompts": str(tmp_path), "direction": "up"}, "direction"),
        ({"prompts": str(tmp_path), "output_format": "gif"}, "output format"),
    ]:
        with pytest.raises(InvalidInputError, match=match):
            TrackOptions(**kwargs)
    assert TrackOptions("p/{name}.json").prompt_file("cat") == Path("p/cat.json")
    assert TrackOptions(str(tmp_path)).prompt_file("cat") == tmp_path / "cat.json"
    with pytest.raises(InvalidInputError, match="TrackOptions for the track command"):
        JobSpec("track", "m", "o")
    with pytest.raises(ModelLoadError, match="not a directory"):
        run_local(track_spec(tmp_path / "no_model", tmp_path / "out", tmp_path), [str(tmp_path)])
    assert not (tmp_path / "out").exists()
    clips = tmp_path / "clips"
    for name in ("a", ".hidden"):
        (clips / name).mkdir(parents=True)
    for name in ("b.MP4", "c.avi", "d.json", ".e.mp4"):
        (clips / name).write_bytes(b"")
    assert [p.name for p in find_videos([clips])] == ["a", "b.MP4", "c.avi"]
    assert [p.name for p in find_videos([str(clips / "*.avi")])] == ["c.avi"]
    with pytest.raises(InvalidInputError, match="none in"):
        find_videos([clips / "a"])  # a folder given is a folder of videos: a has none


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--point", "0:1:5,5"], "--point goes with one video"),
        (["--workers", "2"], "need --engine ray"),
    ],
)
def test_folder_command_line_refusals(tmp_path, capsys, extra, message):
    (tmp_path / "clips").mkdir()
    (tmp_path / "prompts").mkdir()
    argv = ["track", str(tmp_path / "clips"), "-m", str(tmp_path), "-o", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--prompts", str(tmp_path / "prompts"), *extra])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_one_video_refuses_the_engine_flags(tmp_path, capsys):
    """``--engine ray`` without a folder of prompt files is not silently run here."""
    (tmp_path / "p.json").write_text(json.dumps(PROMPTS["a"]))
    argv = ["track", str(tmp_path), "-m", str(tmp_path), "-o", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--prompts", str(tmp_path / "p.json"), "--engine", "ray"])
    assert exit_info.value.code == 2
    assert "--engine needs a folder of videos" in capsys.readouterr().err
