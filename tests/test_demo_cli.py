"""``sam-onnx demo``: random checkpoint -> export -> sample bundle -> server, on the tiny variant;
the export is reused on a second run, and without torch the demo names the extra to install."""

from __future__ import annotations

import http.client
import json
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from sam_onnx.demo import make_demo_server, prepare_demo, sample_image
from sam_onnx.errors import MissingDependencyError
from sam_onnx.modeling.checkpoint import checkpoint_weights
from sam_onnx.runtime.cli import main as cli_main
from sam_onnx.runtime.core.embedding import ImageEmbedding
from sam_onnx.runtime.core.predictor import SamPredictor

pytestmark = pytest.mark.slow  # one tiny export with validation: ~20 s alone, longer on a busy machine


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    return prepare_demo(work, variant="tiny", log=lines.append), work, lines


@pytest.fixture
def page(tmp_path):
    """A stand-in for the built page (the real one is tested in Chromium)."""
    (tmp_path / "index.html").write_text("<!doctype html><title>demo</title>")
    return tmp_path


def get(server, path: str) -> tuple[int, bytes]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_demo_makes_a_random_checkpoint_exports_and_embeds_the_sample(demo):
    files, work, lines = demo
    assert files.random_weights
    assert (work / "sam_tiny_random.pth").is_file()
    manifest = json.loads((files.model_dir / "export.json").read_text())
    assert files.model_dir == work / "onnx" / "tiny_random" and manifest["variant"] == "tiny"
    assert [line[:5] for line in lines if line.startswith("[")] == ["[1/3]", "[2/3]", "[3/3]"]
    # the bundle's embedding is the runtime's embedding of the sample image saved beside it
    meta = json.loads((files.bundle_dir / "bundle.json").read_text())
    sample = np.asarray(Image.open(work / "sample.png"))
    np.testing.assert_array_equal(sample, sample_image())
    emb = ImageEmbedding.load(files.bundle_dir / meta["embedding"])
    want = SamPredictor.from_export(files.model_dir).embed(sample).embedding
    np.testing.assert_array_equal(emb.embedding, want)
    assert meta["orig_hw"] == [480, 640] and meta["checkpoint_sha256"] == manifest["checkpoint_sha256"]
    # the page runs the fast decoder pair for this sample
    assert meta["fast_decoder"] == {"image": "decoder_image.onnx", "click": "decoder_click.onnx"}
    assert (files.bundle_dir / "decoder_click.onnx").is_file()


def test_demo_export_bundle_and_config_say_random_weights(demo, page):
    """The page reads ``random_weights`` from the bundle and from api/config: the demo's masks
    ignore the click, and the person is told why."""
    files, work, _ = demo
    assert checkpoint_weights(work / "sam_tiny_random.pth") == "random"
    assert json.loads((files.model_dir / "export.json").read_text())["weights"] == "random"
    assert json.loads((files.bundle_dir / "bundle.json").read_text())["random_weights"] is True
    server = make_demo_server(files, page, port=0)
    server.quiet = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status, body = get(server, "/api/config")
        assert status == 200 and json.loads(body)["random_weights"] is True
    finally:
        server.shutdown()
        server.server_close()


def test_demo_reuses_its_export(demo):
    files, work, _ = demo
    before = (files.model_dir / "export.json").stat().st_mtime_ns
    lines: list[str] = []
    again = prepare_demo(work, variant="tiny", log=lines.append)
    assert again == files and (files.model_dir / "export.json").stat().st_mtime_ns == before
    assert any("reusing the export" in line for line in lines)


def test_demo_server_opens_on_the_sample(demo, page):
    files, _, _ = demo
    server = make_demo_server(files, page, port=0)
    server.quiet = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert get(server, "/") == (200, (page / "index.html").read_bytes())
        status, body = get(server, "/api/config")
        config = json.loads(body)
        assert status == 200 and config["bundle"] == "bundles/sample/bundle.json"
        status, body = get(server, "/bundles/sample/bundle.json")
        assert status == 200 and json.loads(body)["name"] == "sample.png"
    finally:
        server.shutdown()
        server.server_close()


def test_sample_image_has_distinct_regions():
    image = sample_image()
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    assert len(np.unique(image.reshape(-1, 3)[::97], axis=0)) > 50  # textures, not a flat fill
    np.testing.assert_array_equal(image, sample_image())  # deterministic


def test_demo_without_torch_names_the_extra(tmp_path, page, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails as if not installed
    hint = r"pip install '\.\[export,cpu\]' \(in a sam-onnx clone\)"
    with pytest.raises(MissingDependencyError, match=hint):
        prepare_demo(tmp_path / "work", variant="tiny")
    assert not (tmp_path / "work" / "sam_tiny_random.pth").exists()
    argv = ["demo", "--variant", "tiny", "--dir", str(tmp_path / "cli"), "--web", str(page), "--port", "0"]
    assert cli_main(argv) == 2
    assert "pip install '.[export,cpu]' (in a sam-onnx clone)" in capsys.readouterr().err
