"""Faults: processes killed at random points, disk full, ONNX external data that leads out of the
model folder, onnxruntime failures at run time. The previous good output always stays whole and
no partial file appears at an output path; every refusal is a typed error naming the file."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sam_onnx.contract import DECODER_INPUTS, DECODER_OUTPUTS
from sam_onnx.errors import InferenceError, ModelLoadError
from sam_onnx.runtime.core.embedding import ImageEmbedding
from sam_onnx.runtime.core.predictor import SamPredictor
from sam_onnx.runtime.core.session import SessionConfig, open_session

onnx = pytest.importorskip("onnx")


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def fsize_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


# --- ONNX external data that escapes the model folder --------------------------------------------
def _matmul_model(location: str, ir_version: int = 8):
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(4, dtype=np.float32).reshape(2, 2), "W")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 2])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = ir_version
    return model


@pytest.fixture
def escape_dirs(tmp_path):
    """model/ holds the graphs; secret.bin lies outside it."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    secret = tmp_path / "secret.bin"
    np.arange(4, dtype=np.float32).tofile(secret)
    return model_dir, secret


def _write(model, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def test_external_data_inside_the_folder_loads(escape_dirs):
    model_dir, _ = escape_dirs
    np.arange(4, dtype=np.float32).tofile(model_dir / "w.bin")
    session = open_session(
        _write(_matmul_model("w.bin"), model_dir / "ok.onnx"), SessionConfig(), role="decoder"
    )
    out = session.run(None, {"X": np.eye(2, dtype=np.float32)})[0]
    np.testing.assert_array_equal(out, np.arange(4, dtype=np.float32).reshape(2, 2))


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "dotdot-deep"])
def test_external_data_leading_out_of_the_folder_is_refused(escape_dirs, kind):
    model_dir, secret = escape_dirs
    location = {
        "dotdot": "../secret.bin",
        "absolute": str(secret),
        "symlink": "link.bin",
        "dotdot-deep": "sub/../../secret.bin",
    }[kind]
    if kind == "symlink":
        (model_dir / "link.bin").symlink_to(secret)
    path = _write(_matmul_model(location), model_dir / f"{kind}.onnx")
    with pytest.raises(ModelLoadError, match="outside the model's folder") as info:
        open_session(path, SessionConfig(), role="decoder")
    assert str(path) in str(info.value)


# --- onnxruntime failures at run time --------------------------------------------------------------
def test_onnxruntime_run_errors_name_the_graph_and_inputs(tiny_predictor, tmp_path):
    """A decoder that fails inside onnxruntime: InferenceError naming the file and the feeds."""
    from onnx import TensorProto, helper

    # a decoder with the contract's inputs that fails at run time (Reshape to an impossible shape)
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in DECODER_INPUTS]
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [7, 7])
    nodes = [helper.make_node("Reshape", ["point_coords", "shape"], [name]) for name in ("masks",)]
    nodes += [helper.make_node("Identity", ["point_labels"], ["iou_predictions"])]
    nodes += [helper.make_node("Identity", ["mask_input"], ["low_res_masks"])]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in DECODER_OUTPUTS]
    graph = helper.make_graph(nodes, "broken", inputs, outputs, [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = dict(tiny_predictor.decoder.metadata)
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    broken = tmp_path / "broken_decoder.onnx"
    broken.write_bytes(model.SerializeToString())
    predictor = SamPredictor(tiny_predictor.encoder.path, broken)
    emb = predictor.embed(np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(InferenceError) as info:
        predictor.predict(np.array([[5, 5]]), np.array([1]), embedding=emb)
    message = str(info.value)
    assert "broken_decoder.onnx" in message and "point_coords" in message


# --- processes killed at random points; disk full ---------------------------------------------------
def bundle_command(image: Path, model_dir: str, out: Path) -> list[str]:
    cli = "from sam_onnx.runtime.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", cli, "bundle", str(image), "-m", model_dir, "-o", str(out), "--no-web"]


@pytest.fixture
def bundle_setup(tiny_model_dir, tmp_path):
    from PIL import Image

    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), np.uint8)).save(image)
    out = tmp_path / "bundle"
    assert subprocess.run(bundle_command(image, tiny_model_dir, out), capture_output=True).returncode == 0
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 40, 3), np.uint8)).save(image)
    return image, out, snapshot(out)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_bundle_killed_at_a_random_point_keeps_a_whole_bundle(tiny_model_dir, bundle_setup, seed):
    """SIGKILL after a random delay: the bundle folder is the old one or the new one, whole; what
    the killed process could not clean up is a hidden staging sibling, which the next run removes."""
    from sam_onnx.runtime.server.bundle import STAGING_MARK

    image, out, before = bundle_setup
    proc = subprocess.Popen(bundle_command(image, tiny_model_dir, out), stderr=subprocess.DEVNULL)
    time.sleep(random.Random(seed).uniform(0.2, 2.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    after = snapshot(out)
    if after != before:  # it finished first: then the new bundle is complete
        assert set(after) == set(before)
        assert ImageEmbedding.load(out / "embedding.npy").orig_hw == (30, 40)
    others = {p.name for p in out.parent.iterdir()} - {"bundle", "photo.png"}
    assert all(name.startswith(f".bundle{STAGING_MARK}{proc.pid}-") for name in others), others
    assert subprocess.run(bundle_command(image, tiny_model_dir, out), capture_output=True).returncode == 0
    assert {p.name for p in out.parent.iterdir()} == {"bundle", "photo.png"}


def test_bundle_on_a_full_disk_changes_nothing(tiny_model_dir, bundle_setup):
    image, out, before = bundle_setup
    proc = subprocess.run(
        bundle_command(image, tiny_model_dir, out),
        preexec_fn=fsize_limit(1_000_000),  # the 4 MiB embedding cannot be written
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "could not write" in proc.stderr and "nothing was changed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["bundle", "photo.png"]


def test_embedding_save_on_a_full_disk_keeps_the_old_file(tmp_path):
    emb = ImageEmbedding(
        np.ones((1, 256, 64, 64), np.float32), (10, 10), variant="tiny", checkpoint_sha256="x"
    )
    npy, _ = emb.save(tmp_path / "e.npy")
    before = snapshot(tmp_path)
    code = (
        "import numpy as np, sys\n"
        "from sam_onnx.runtime.core.embedding import ImageEmbedding\n"
        "z = np.zeros((1, 256, 64, 64), np.float32)\n"
        "e = ImageEmbedding(z, (10, 10), variant='tiny', checkpoint_sha256='y')\n"
        "try:\n    e.save(sys.argv[1])\n"
        "except OSError as exc:\n    print('refused', type(exc).__name__, exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(npy)],
        preexec_fn=fsize_limit(100_000),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.startswith("refused OutputWriteError"), proc.stdout + proc.stderr
    assert "e.npy" in proc.stdout and "unchanged" in proc.stdout
    assert snapshot(tmp_path) == before  # old embedding whole, no temporary file left


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_export_killed_at_a_random_point_keeps_the_previous_export(tiny_checkpoint, tmp_path, seed):
    """sam-export SIGKILLed after a random delay: the output is the previous export or the new one."""
    from sam_onnx.export import ExportOptions, export_sam

    out = tmp_path / "out"
    export_sam(tiny_checkpoint, out, ExportOptions(encoder=False, batched_decoder=False))
    before = snapshot(out)
    cmd = [sys.executable, "-m", "sam_onnx.export.cli", str(tiny_checkpoint), "-o", str(out), "--int8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(random.Random(100 + seed).uniform(1.0, 12.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    after = snapshot(out)
    if after != before:
        # Swapped in before the kill (the process may still have been removing the previous
        # export or exiting, so its return code says nothing): a complete new export.
        assert {"encoder.onnx", "decoder.onnx", "export.json", "encoder.int8.onnx"} <= set(after)
        manifest = json.loads((out / "export.json").read_text())
        listed = {name for graph in manifest["graphs"].values() for name in graph["files"]}
        assert listed and listed <= set(after), sorted(listed - set(after))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "out"]
    assert all(name.startswith(f".out.sam-export-{proc.pid}-") for name in leftovers), leftovers
    export_sam(tiny_checkpoint, out, ExportOptions(encoder=False, batched_decoder=False))
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # the next export removed them
    assert os.listdir(out)
