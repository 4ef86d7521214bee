"""``sam-onnx serve`` and ``sam-onnx bundle`` on the tiny export: routes, headers, uploads, limits,
errors and path safety (the browser side is in test_demo_web.py)."""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import threading
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam_onnx.errors import InvalidInputError, ModelMismatchError
from sam_onnx.runtime import SamPredictor
from sam_onnx.runtime.cli import main as cli_main
from sam_onnx.runtime.core.embedding import ImageEmbedding
from sam_onnx.runtime.core.fast_decoder import fast_decoder_paths
from sam_onnx.runtime.core.graphs import web_decoder_paths
from sam_onnx.runtime.server.bundle import write_bundle
from sam_onnx.runtime.server.serve import ServeOptions, make_server

ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


def png_bytes(h: int, w: int, seed: int = 0) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _flat_png(h: int, w: int) -> bytes:
    """A small file that decodes to many pixels."""
    buf = io.BytesIO()
    Image.new("RGB", (w, h)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def web_dir(tmp_path_factory) -> Path:
    """A stand-in for the built page (the real one is tested in Chromium)."""
    d = tmp_path_factory.mktemp("web")
    (d / "index.html").write_text("<!doctype html><title>demo</title>")
    (d / "assets").mkdir()
    (d / "assets" / "app.js").write_text("export {};")
    (d.parent / "secret.txt").write_text("outside the served folder")
    (d / "assets" / "link.txt").symlink_to(d.parent / "secret.txt")
    return d


@pytest.fixture(scope="module")
def bundle_dir(tiny_predictor, tiny_model_dir, tmp_path_factory) -> Path:
    image = np.random.default_rng(1).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    out = tmp_path_factory.mktemp("bundles") / "first"
    emb = tiny_predictor.embed(image)
    write_bundle(out, image, emb, web_decoder_paths(tiny_model_dir), name="first.png")
    return out


@pytest.fixture(scope="module")
def server(tiny_predictor, tiny_model_dir, web_dir, bundle_dir):
    options = ServeOptions(
        web_dir=web_dir,
        bundle_dirs=(bundle_dir,),
        port=0,
        max_upload_bytes=200_000,
        max_pixels=300_000,
        max_pending=2,
        timeout_s=2.0,
    )
    with serving(tiny_predictor, tiny_model_dir, options) as srv:
        yield srv


@contextlib.contextmanager
def serving(predictor, model_dir, options: ServeOptions, detector=None):
    """A quiet sam-onnx server on a background thread, shut down on exit."""
    srv = make_server(predictor, web_decoder_paths(model_dir), options, detector)
    srv.quiet = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def request(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One request; a body the server refuses to read may be cut short, the answer still counts."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.putrequest(method, path)
        for key, value in {**(headers or {}), "Content-Length": str(len(body or b""))}.items():
            conn.putheader(key, value)
        conn.endheaders()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.send(body or b"")
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def error_of(status_body) -> dict:
    status, headers, body = status_body
    assert headers["Content-Type"] == "application/json"
    err = json.loads(body)["error"]
    assert err["status"] == status
    assert "Traceback" not in err["message"] and "/site-packages/" not in err["message"]
    return err


def test_config_and_isolation_headers_on_every_answer(server, tiny_predictor):
    for path in ("/api/config", "/", "/assets/app.js", "/nope.txt", "/api/nothing"):
        status, headers, _ = request(server, "GET", path)
        for key, value in ISOLATION.items():
            assert headers[key] == value, (path, key)
    status, _, body = request(server, "GET", "/api/config")
    config = json.loads(body)
    assert status == 200
    assert config["checkpoint_sha256"] == tiny_predictor.checkpoint_sha256
    assert (config["family"], config["resize"]) == ("sam", "long_side")
    assert set(config["decoders"]) == {"fp32", "int8"}
    assert config["bundle"] == "bundles/first/bundle.json"
    assert config["random_weights"] is False  # the tiny checkpoint does not say it is random


def test_bundle_of_weights_not_noted_random_says_false(bundle_dir):
    assert json.loads((bundle_dir / "bundle.json").read_text())["random_weights"] is False


def test_static_files_and_decoder_downloads(server, tiny_model_dir):
    status, headers, body = request(server, "GET", "/")
    assert (status, body) == (200, b"<!doctype html><title>demo</title>")
    assert headers["Content-Type"] == "text/html"
    status, headers, _ = request(server, "GET", "/assets/app.js")
    assert status == 200 and headers["Content-Type"] == "text/javascript"
    status, _, body = request(server, "GET", "/api/decoder/fp32")
    assert status == 200 and body == web_decoder_paths(tiny_model_dir)["fp32"].read_bytes()
    status, _, body = request(server, "GET", "/bundles/first/bundle.json")
    assert status == 200 and json.loads(body)["decoders"]["fp32"] == "decoder.onnx"
    assert error_of(request(server, "GET", "/api/decoder/fp64"))["type"] == "NotFound"


def test_the_page_gets_the_pair_the_predictor_runs(server, tiny_predictor, web_dir, tiny_model_dir):
    """api/config names the fast decoder pair and serves its two graphs; a predictor without
    the pair gives null (the page then runs decoder.onnx)."""
    config = json.loads(request(server, "GET", "/api/config")[2])
    assert config["fast_decoder"] == {"image": "api/fast/image", "click": "api/fast/click"}
    pair = fast_decoder_paths(tiny_model_dir)
    for role, path in zip(("image", "click"), pair, strict=True):
        status, _, body = request(server, "GET", f"/api/fast/{role}")
        assert status == 200 and body == path.read_bytes(), role
    assert error_of(request(server, "GET", "/api/fast/decoder"))["type"] == "NotFound"
    plain = SamPredictor.from_export(tiny_model_dir, fast_decoder=None)
    with serving(plain, tiny_model_dir, ServeOptions(web_dir=web_dir, port=0)) as srv:
        assert json.loads(request(srv, "GET", "/api/config")[2])["fast_decoder"] is None
        assert error_of(request(srv, "GET", "/api/fast/click"))["type"] == "NotFound"


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
        "/assets/link.txt",  # a symlink leading out of the folder
        "/bundles/first/../../secret.txt",
        "/bundles/%2e%2e/secret.txt",
        "/index.html%00.png",
    ],
)
def test_nothing_outside_the_served_folders(server, path):
    status, _, body = request(server, "GET", path)
    assert status == 404
    assert b"outside the served folder" not in body and b"root:" not in body


def test_embed_upload_matches_the_runtime(server, tiny_predictor):
    data = png_bytes(30, 50)
    status, _, body = request(server, "POST", "/api/embed", data, {"Content-Type": "image/png"})
    assert status == 200
    answer = json.loads(body)
    assert answer["orig_hw"] == [30, 50] and answer["family"] == "sam"
    assert list(answer["features"]) == ["image_embeddings"]
    want = tiny_predictor.embed(Image.open(io.BytesIO(data))).embedding
    np.testing.assert_array_equal(decode_tensor(answer["features"]["image_embeddings"]), want)


def decode_tensor(tensor: dict) -> np.ndarray:
    """An ``api/embed`` tensor ({shape, dtype, data_b64}) as a numpy array."""
    assert tensor["dtype"] == "float32"
    return np.frombuffer(base64.b64decode(tensor["data_b64"]), "<f4").reshape(tensor["shape"])


@pytest.mark.parametrize(
    ("body", "headers", "status", "kind", "says"),
    [
        (b"x" * 300_000, {"Content-Type": "image/png"}, 413, "UploadTooLarge", "at most 200000"),
        (b"not an image at all", {"Content-Type": "image/png"}, 400, "InvalidImageError", "unrecognised"),
        (png_bytes(20, 20)[:60], {"Content-Type": "image/png"}, 400, "InvalidImageError", "readable"),
        (png_bytes(20, 20), {"Content-Type": "text/plain"}, 415, "UnsupportedMediaType", "text/plain"),
        (png_bytes(20, 20), {}, 415, "UnsupportedMediaType", "none"),
        (b"", {"Content-Type": "image/png"}, 400, "InvalidImageError", "0 bytes"),
        (_flat_png(600, 600), {"Content-Type": "image/png"}, 413, "ImageTooLarge", "300000"),
        (b"y" * 5_000_000, {"Content-Type": "image/png"}, 413, "UploadTooLarge", "at most 200000"),
    ],
    ids=[
        "oversized",
        "not-an-image",
        "truncated",
        "wrong-type",
        "no-type",
        "empty",
        "too-many-pixels",
        "huge",
    ],
)
def test_bad_uploads_get_clear_errors(server, body, headers, status, kind, says):
    err = error_of(request(server, "POST", "/api/embed", body, headers))
    assert (err["status"], err["type"]) == (status, kind)
    assert says in err["message"]
    # and the server goes on serving
    assert request(server, "GET", "/api/config")[0] == 200


def test_method_and_length_errors(server):
    assert (
        error_of(request(server, "POST", "/api/config", b"{}", {"Content-Type": "image/png"}))["status"]
        == 405
    )
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.putrequest("POST", "/api/embed")
    conn.putheader("Content-Type", "image/png")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    assert resp.status == 411 and json.loads(resp.read())["error"]["type"] == "LengthRequired"
    conn.close()


def test_busy_encoder_answers_429(server):
    for _ in range(server.options.max_pending):  # every waiting slot taken
        server.pending.acquire()
    try:
        err = error_of(request(server, "POST", "/api/embed", png_bytes(8, 8), {"Content-Type": "image/png"}))
        assert (err["status"], err["type"]) == (429, "Busy")
    finally:
        for _ in range(server.options.max_pending):
            server.pending.release()
    assert request(server, "POST", "/api/embed", png_bytes(8, 8), {"Content-Type": "image/png"})[0] == 200


def test_bundle_contents(bundle_dir, tiny_predictor):
    meta = json.loads((bundle_dir / "bundle.json").read_text())
    assert meta["format"] == "sam-onnx-bundle" and meta["version"] == 1
    assert (meta["family"], meta["resize"]) == ("sam", "long_side")
    assert meta["features"] == {"image_embeddings": "embedding.npy"}
    assert meta["orig_hw"] == [40, 70] and meta["decoders"] == {
        "fp32": "decoder.onnx",
        "int8": "decoder.int8.onnx",
    }
    emb = ImageEmbedding.load(bundle_dir / meta["embedding"])
    image = np.asarray(Image.open(bundle_dir / meta["image"]))
    np.testing.assert_array_equal(emb.embedding, tiny_predictor.embed(image).embedding)
    assert not [p for p in bundle_dir.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_bundle_refuses_mismatches(tiny_predictor, tiny_model_dir, tmp_path):
    image = np.zeros((10, 12, 3), np.uint8)
    emb = tiny_predictor.embed(image)
    decoders = web_decoder_paths(tiny_model_dir)
    with pytest.raises(InvalidInputError, match="the embedding of this image"):
        write_bundle(tmp_path / "b", np.zeros((11, 12, 3), np.uint8), emb, decoders)
    other = ImageEmbedding(emb.embedding, emb.orig_hw, variant=emb.variant, checkpoint_sha256="0" * 64)
    with pytest.raises(ModelMismatchError, match="checkpoint"):
        write_bundle(tmp_path / "b", image, other, decoders)
    sha = emb.checkpoint_sha256  # the export's checkpoint, but another variant in the sidecar
    claims = ImageEmbedding(emb.embedding, emb.orig_hw, variant="vit_b", checkpoint_sha256=sha)
    with pytest.raises(InvalidInputError, match=r"variant 'tiny'.*claims 'vit_b'"):
        write_bundle(tmp_path / "b", image, claims, decoders)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    with pytest.raises(InvalidInputError, match="other files"):
        write_bundle(tmp_path / "busy", image, emb, decoders)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "b").exists()


def test_bundle_cli_replaces_an_earlier_bundle(tiny_model_dir, tmp_path, capsys):
    img = tmp_path / "photo.png"
    img.write_bytes(png_bytes(24, 36))
    out = tmp_path / "bundle"
    argv = ["bundle", str(img), "-m", tiny_model_dir, "-o", str(out), "--no-web"]
    assert cli_main(argv) == 0
    first = (out / "embedding.npy").read_bytes()
    img.write_bytes(png_bytes(24, 36, seed=5))
    assert cli_main(argv) == 0
    assert (out / "embedding.npy").read_bytes() != first
    assert json.loads((out / "bundle.json").read_text())["name"] == "photo.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "photo.png"]


def test_serve_cli_errors(tiny_model_dir, tmp_path, capsys):
    assert cli_main(["serve", "-m", tiny_model_dir, "--web", str(tmp_path)]) == 2
    assert "index.html" in capsys.readouterr().err
    (tmp_path / "index.html").write_text("x")
    argv = ["serve", "-m", tiny_model_dir, "--web", str(tmp_path), "--bundle", str(tmp_path)]
    assert cli_main(argv) == 2
    assert "bundle.json" in capsys.readouterr().err


def test_serve_options_are_checked(web_dir):
    with pytest.raises(InvalidInputError, match="max_upload_bytes"):
        ServeOptions(web_dir=web_dir, max_upload_bytes=0)
    with pytest.raises(InvalidInputError, match="timeout_s"):
        ServeOptions(web_dir=web_dir, timeout_s=0)


def test_serve_refuses_decoders_of_another_checkpoint(tiny_model_dir, web_dir):
    other = types.SimpleNamespace(checkpoint_sha256="0" * 64, variant="tiny")
    with pytest.raises(ModelMismatchError, match="the encoder from 0000"):
        make_server(other, web_decoder_paths(tiny_model_dir), ServeOptions(web_dir=web_dir, port=0))


def test_serve_and_bundle_refuse_loudly_without_a_page(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """No page anywhere: serve and bundle fail (exit 2) naming the command that builds it, and
    nothing is written; a bundle without the page needs --no-web."""
    from sam_onnx.runtime.server import bundle

    monkeypatch.setattr(bundle, "default_web_dir", lambda: None)
    img = tmp_path / "photo.png"
    img.write_bytes(png_bytes(24, 36))
    out = tmp_path / "bundle"
    assert cli_main(["bundle", str(img), "-m", tiny_model_dir, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "npm ci && npm run build" in err and "--no-web" in err and not out.exists()
    assert cli_main(["serve", "-m", tiny_model_dir, "--port", "0"]) == 2
    assert "npm ci && npm run build" in capsys.readouterr().err
    # installed from a wheel built without npm: the hint is the reinstall that builds the page
    monkeypatch.setattr(bundle, "CHECKOUT", tmp_path)
    assert cli_main(["serve", "-m", tiny_model_dir, "--port", "0"]) == 2
    assert "pip install --force-reinstall --no-deps" in capsys.readouterr().err


def test_the_page_is_looked_up_env_then_package_then_checkout(tmp_path, monkeypatch):
    """$SAM_ONNX_WEB first, then the page installed with the wheel, then demo_web/dist."""
    from sam_onnx.runtime.server import bundle

    env, packaged, checkout = tmp_path / "env", tmp_path / "packaged", tmp_path / "checkout"
    monkeypatch.setattr(bundle, "PACKAGED_WEB_DIR", packaged)
    monkeypatch.setattr(bundle, "CHECKOUT", checkout)
    monkeypatch.setenv(bundle.WEB_ENV, str(env))
    assert bundle.default_web_dir() is None
    for page in (env, packaged, checkout / "demo_web" / "dist"):
        page.mkdir(parents=True)
        (page / "index.html").write_text("<!doctype html>")
    assert bundle.default_web_dir() == env
    monkeypatch.delenv(bundle.WEB_ENV)
    assert bundle.default_web_dir() == packaged
    (packaged / "index.html").unlink()
    assert bundle.default_web_dir() == checkout / "demo_web" / "dist"


def test_a_folder_of_exports_is_refused_naming_the_export(tiny_model_dir, web_dir, capsys):
    """``-m onnx/`` where sam-export wrote ``onnx/vit_b``: the error names the export to give."""
    parent = str(Path(tiny_model_dir).parent)
    assert cli_main(["serve", "-m", parent, "--web", str(web_dir), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "not a sam-export output folder" in err and f"-m {tiny_model_dir}" in err and "--fp16" not in err


# --- SAM 2: three image features through the embed endpoint and the bundle -----------------------


@pytest.fixture(scope="module")
def sam2_model_dir(sam2_tiny_export) -> Path:
    """The tiny SAM 2 export the SAM 2 export and runtime tests share (conftest)."""
    return sam2_tiny_export.output_dir


@pytest.fixture(scope="module")
def sam2_predictor(sam2_model_dir):
    return SamPredictor.from_export(sam2_model_dir)


@pytest.mark.slow
def test_sam2_embed_answers_the_three_features(sam2_predictor, sam2_model_dir, web_dir):
    """The page builds SAM 2's feeds from what api/embed sends: the three decoder inputs, by name,
    equal to the runtime's embedding; api/config names the family and its square frame."""
    options = ServeOptions(web_dir=web_dir, port=0)
    with serving(sam2_predictor, sam2_model_dir, options) as srv:
        config = json.loads(request(srv, "GET", "/api/config")[2])
        data = png_bytes(30, 50)
        status, _, body = request(srv, "POST", "/api/embed", data, {"Content-Type": "image/png"})
    assert (config["family"], config["resize"]) == ("sam2", "square")
    assert status == 200
    answer = json.loads(body)
    assert answer["family"] == "sam2" and answer["orig_hw"] == [30, 50]
    want = sam2_predictor.embed(Image.open(io.BytesIO(data))).decoder_inputs()
    assert list(answer["features"]) == ["image_embeddings", "high_res_feats_0", "high_res_feats_1"]
    for name, array in want.items():
        np.testing.assert_array_equal(decode_tensor(answer["features"][name]), array, err_msg=name)


@pytest.mark.slow
def test_sam2_bundle_names_its_three_feature_files(sam2_predictor, sam2_model_dir, tmp_path):
    image = np.random.default_rng(2).integers(0, 256, (33, 21, 3), dtype=np.uint8)
    emb = sam2_predictor.embed(image)
    write_bundle(tmp_path / "b", image, emb, web_decoder_paths(sam2_model_dir), name="p.png")
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert (meta["family"], meta["resize"], meta["input_hw"]) == ("sam2", "square", [1024, 1024])
    assert list(meta["features"]) == ["image_embeddings", "high_res_feats_0", "high_res_feats_1"]
    for name, array in emb.decoder_inputs().items():
        np.testing.assert_array_equal(np.load(tmp_path / "b" / meta["features"][name]), array, err_msg=name)
    # the runtime reads the bundle's embedding back, features included
    loaded = ImageEmbedding.load(tmp_path / "b" / meta["embedding"])
    np.testing.assert_array_equal(loaded.high_res_feats[1], emb.high_res_feats[1])


@pytest.mark.slow
def test_bundle_refuses_an_embedding_of_the_other_family(sam2_predictor, sam2_model_dir, tmp_path):
    image = np.zeros((10, 12, 3), np.uint8)
    emb = sam2_predictor.embed(image)
    sha = emb.checkpoint_sha256
    v1 = ImageEmbedding(emb.embedding, emb.orig_hw, variant=emb.variant, checkpoint_sha256=sha)
    with pytest.raises(InvalidInputError, match="family 'sam2'"):
        write_bundle(tmp_path / "b", image, v1, web_decoder_paths(sam2_model_dir))
    assert not (tmp_path / "b").exists()
