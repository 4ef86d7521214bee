"""``--engine ray``: the Ray Data job against the local command, on a local Ray the tests start.

One Ray instance (2 CPUs, no dashboard) serves every test here; each job runs the tiny export with
a 4 x 4 grid, keeping every mask, so the files compared hold annotations.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sam_onnx.errors import InvalidInputError
from sam_onnx.runtime.batch.jobs import JobSpec
from sam_onnx.runtime.cli import main
from tests.conftest import REPO

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install '.[ray]')")
KEEP_ALL = ["--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0"]
KEEP_ALL_OPTIONS = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
SIZES_HW = {"a": (40, 64), "b": (70, 30), "c": (50, 50), "d": (33, 90)}


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(8)
    path = tmp_path / "images"
    path.mkdir()
    for name, hw in SIZES_HW.items():
        Image.fromarray(rng.integers(0, 256, (*hw, 3), np.uint8)).save(path / f"{name}.png")
    return path


def amg_spec(model_dir, out) -> JobSpec:
    return JobSpec("amg", str(model_dir), str(out), amg_options=KEEP_ALL_OPTIONS)


def run(spec, folder, **options):
    from sam_onnx.runtime.batch.distributed import RayOptions, list_inputs, run_job

    return run_job(spec, list_inputs([folder]), RayOptions(**options))


def snapshot(out) -> dict[str, int]:
    """Every file under ``out`` (hidden temporaries too) and its modification time."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in sorted(out.rglob("*")) if p.is_file()}


@needs_ray
@pytest.mark.slow
def test_ray_job_writes_what_the_local_command_writes(ray_session, tiny_model_dir, folder, tmp_path):
    """Same files, same JSON: image ids, sizes, and every annotation's COCO RLE, box and scores."""
    local, distributed = tmp_path / "local", tmp_path / "ray"
    common = ["amg", str(folder), "-m", tiny_model_dir, "-q", "--threads", "1", *KEEP_ALL]
    assert main([*common, "-o", str(local)]) == 0
    ray_args = ["--engine", "ray", "--workers", "2", "--threads-per-worker", "1"]
    assert main([*common, "-o", str(distributed), *ray_args]) == 0
    assert sorted(snapshot(distributed)) == sorted(snapshot(local))
    annotations = 0
    for name, hw in SIZES_HW.items():
        want = json.loads((local / f"{name}.json").read_text())
        got = json.loads((distributed / f"{name}.json").read_text())
        assert (got["image"]["height"], got["image"]["width"]) == hw
        segmentations = [a["segmentation"] for a in want["annotations"]]
        assert [a["segmentation"] for a in got["annotations"]] == segmentations
        assert got == want
        annotations += len(got["annotations"])
        overlay = [np.asarray(Image.open(o / f"{name}_overlay.png")) for o in (distributed, local)]
        np.testing.assert_array_equal(*overlay)
    assert annotations >= len(SIZES_HW)


@needs_ray
@pytest.mark.slow
def test_corrupt_image_fails_alone_and_a_rerun_writes_nothing_new(
    ray_session, tiny_model_dir, folder, tmp_path
):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    out = tmp_path / "out"
    first = run(amg_spec(tiny_model_dir, out), folder, workers=2, threads_per_worker=1)
    assert (first.total, first.done, first.failed, first.skipped) == (5, 4, 1, 0)
    (failure,) = first.failures
    assert failure.path == str(folder / "broken.png") and failure.status == "failed"
    assert failure.error.startswith("InvalidImageError: invalid image file") and "broken.png" in failure.error
    written = [json.loads((out / f"{n}.json").read_text()) for n in SIZES_HW]
    assert first.masks == sum(len(data["annotations"]) for data in written)
    before = snapshot(out)
    assert sorted(before) == sorted(f"{n}{s}" for n in SIZES_HW for s in (".json", "_overlay.png"))

    second = run(amg_spec(tiny_model_dir, out), folder, workers=1, threads_per_worker=1)
    assert (second.done, second.failed, second.skipped) == (0, 1, 4)  # the broken image is tried again
    assert snapshot(out) == before
    (folder / "broken.png").unlink()
    third = run(amg_spec(tiny_model_dir, out), folder, workers=1, threads_per_worker=1)
    assert (third.total, third.skipped, third.done, third.workers) == (4, 4, 0, 0)  # no worker started
    assert snapshot(out) == before


@needs_ray
@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_and_every_image_done_once(
    ray_session, tiny_model_dir, folder, tmp_path, monkeypatch
):
    """The worker that meets image c exits (os._exit) once; Ray restarts it and reruns the block."""
    from sam_onnx.runtime.batch.distributed import EXIT_ONCE_ENV

    marker = tmp_path / "exited"
    monkeypatch.setenv(EXIT_ONCE_ENV, f"c:{marker}")
    out = tmp_path / "out"
    summary = run(amg_spec(tiny_model_dir, out), folder, workers=2, threads_per_worker=1)
    assert marker.exists()  # the worker did die
    assert (summary.total, summary.done, summary.failed) == (4, 4, 0)  # each image counted once
    assert sorted(snapshot(out)) == sorted(f"{n}{s}" for n in SIZES_HW for s in (".json", "_overlay.png"))
    for name in SIZES_HW:
        assert json.loads((out / f"{name}.json").read_text())["image"]["file_name"] == f"{name}.png"


@needs_ray
@pytest.mark.slow
def test_an_image_that_kills_every_worker_is_given_up_and_the_rest_done(
    ray_session, tiny_model_dir, folder, tmp_path, monkeypatch
):
    from sam_onnx.runtime.batch.distributed import EXIT_ONCE_ENV

    monkeypatch.setenv(EXIT_ONCE_ENV, "b:")  # no marker: exit at b every time
    out = tmp_path / "out"
    summary = run(amg_spec(tiny_model_dir, out), folder, workers=2, threads_per_worker=1, block_retries=1)
    assert (summary.done, summary.failed) == (3, 1)
    (failure,) = summary.failures
    assert failure.name == "b" and failure.error.startswith("WorkerDied: ") and "2 run(s)" in failure.error
    assert not (out / "b.json").exists() and (out / "a.json").is_file()


@needs_ray
@pytest.mark.slow
def test_embed_on_ray_equals_the_local_embeddings(ray_session, tiny_model_dir, folder, tmp_path):
    from sam_onnx.runtime import ImageEmbedding

    local, distributed = tmp_path / "local", tmp_path / "ray"
    common = ["embed", str(folder), "-m", tiny_model_dir, "-q", "--threads", "1"]
    assert main([*common, "-o", str(local)]) == 0
    assert main([*common, "-o", str(distributed), "--engine", "ray", "--threads-per-worker", "1"]) == 0
    for name, hw in SIZES_HW.items():
        got, want = (ImageEmbedding.load(o / f"{name}.npy") for o in (distributed, local))
        assert got.orig_hw == hw and got.checkpoint_sha256 == want.checkpoint_sha256
        np.testing.assert_array_equal(got.embedding, want.embedding)
        assert json.loads((distributed / f"{name}.json").read_text())["image"] == f"{name}.png"


@needs_ray
def test_more_worker_cpus_than_the_cluster_has_is_refused(ray_session, tiny_model_dir, folder, tmp_path):
    with pytest.raises(InvalidInputError, match="at most the 2 CPUs"):
        run(amg_spec(tiny_model_dir, tmp_path / "out"), folder, workers=2, threads_per_worker=2)


@needs_ray
def test_uri_folders_list_their_images_and_read_back(folder):
    from sam_onnx.runtime.batch.distributed import list_inputs, read_bytes

    uris = list_inputs([f"file://{folder}"])
    assert uris == [f"file://{folder}/{n}.png" for n in sorted(SIZES_HW)]
    assert read_bytes(uris[0]) == (folder / "a.png").read_bytes()


def test_engine_ray_without_ray_names_the_extra(tiny_model_dir, folder, tmp_path):
    """With ray unimportable the CLI exits 2 with MissingDependencyError's install hint."""
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from sam_onnx.runtime.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    args = ["amg", str(folder), "-m", tiny_model_dir, "-o", str(tmp_path / "o"), "--engine", "ray"]
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert "--engine ray needs Ray Data" in result.stderr
    assert "pip install '.[ray]' (in a sam-onnx clone)" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flag", [["--workers", "2"], ["--threads-per-worker", "1"], ["--address", "auto"]])
def test_ray_flags_without_the_ray_engine_are_refused(tiny_model_dir, folder, tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as exit_info:
        main(["amg", str(folder), "-m", tiny_model_dir, "-o", str(tmp_path / "o"), *flag])
    assert exit_info.value.code == 2
    assert f"{flag[0]} needs --engine ray" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@needs_ray
def test_a_missing_model_fails_in_the_driver_before_any_worker_starts(folder, tmp_path):
    from sam_onnx.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="not a directory"):
        run(amg_spec(tmp_path / "no_model", tmp_path / "out"), folder)
    assert not (tmp_path / "out").exists()


def test_an_unreachable_address_is_refused_at_once():
    """A closed port on this machine: a typed error within the connect timeout, no Ray started."""
    import socket
    import time

    from sam_onnx.runtime.batch.distributed import check_reachable

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(InvalidInputError, match="--address"):
        check_reachable(f"127.0.0.1:{port}", timeout_s=2.0)
    assert time.perf_counter() - start < 5.0
    check_reachable("auto")  # left to Ray


def test_ray_workers_open_the_engine_the_command_line_names(tiny_model_dir, folder, tmp_path, monkeypatch):
    """The engine flags reach the workers' sessions (the spec is all a worker sees)."""
    from sam_onnx.runtime.batch import jobs
    from sam_onnx.runtime.cli import build_parser, job_spec
    from sam_onnx.runtime.core.predictor import SamPredictor

    flags = ["--providers", "openvino,cpu", "--openvino-precision", "f32", "--threads", "1", "--strict"]
    args = build_parser().parse_args(["amg", str(folder), "-m", tiny_model_dir, "-o", str(tmp_path), *flags])
    spec = job_spec(args, 2)
    opened = {}

    def from_export(model_dir, *, config, **kwargs):
        opened["config"] = config
        raise InvalidInputError("model", "not opened in this test", "stopped")

    monkeypatch.setattr(SamPredictor, "from_export", staticmethod(from_export))
    with pytest.raises(InvalidInputError):
        jobs.open_job(spec)
    config = opened["config"]
    assert (config.providers, config.openvino_precision) == (("openvino", "cpu"), "f32")
    assert (config.intra_op_threads, config.strict) == (1, True)
