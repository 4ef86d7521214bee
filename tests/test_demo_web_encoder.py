"""The whole model in the browser: a page-only bundle (``sam-onnx bundle --with-encoder``) of a
SlimSAM-77-shaped random-weight export, served statically with the cross-origin isolation headers.
In headless Chromium the page embeds a kit image itself, in its encoder worker on wasm with 2
threads, after a first image that the second cancels; its embedding and a click's mask are held
to the Python runtime's; served by ``sam-onnx serve --bundle`` the page still encodes itself. A
bundle claiming ViT-B's cost is refused on wasm. WebGPU runs on the
tiny export through Chromium's software adapter (SwiftShader), which proves the path, not its speed.

Needs what tests/test_demo_web.py needs (the built page, playwright-core, Chromium; ``SAM_REQUIRE_WEB=1``
turns a missing piece into a failure). Figures go to ``figures.json`` in ``$SAM_E2E_ARTIFACTS``.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from sam_onnx.runtime.cli import main as cli_main
from sam_onnx.runtime.core.graphs import web_decoder_paths
from sam_onnx.runtime.core.predictor import SamPredictor
from sam_onnx.runtime.server.serve import ServeOptions, make_server
from tests.test_demo_web import (  # noqa: F401 (fixtures)
    DEMO,
    IMAGE_FILES,
    MIN_AGREEMENT,
    QuietStaticHandler,
    artifacts,
    artifacts_note,
    require_web,
    run_browser,
)

pytestmark = pytest.mark.slow

THREADS = 2
EMBEDDING_ATOL = 1e-3
CLICK = [210.0, 330.0]  # on the portrait image, (x, y) pixels
# What runtime/server/bundle.py's encoder_gmacs gives ViT-B: over wasm's limit of 200, within WebGPU's 600.
VIT_B_GMACS = 470.9
WEBGPU_FLAGS = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-unsafe-swiftshader"]


class IsolatedStaticHandler(QuietStaticHandler):
    """A plain static server that sends COOP/COEP, so that the page gets its wasm threads."""

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()


def page_only_site(model_dir: Path, site: Path) -> Path:
    """``sam-onnx bundle -m MODEL -o SITE --with-encoder`` as the README says, with the built page."""
    args = [
        "bundle",
        "-m",
        str(model_dir),
        "-o",
        str(site),
        "--with-encoder",
        "--web",
        str(DEMO / "dist"),
        "-q",
    ]
    assert cli_main(args) == 0
    return site


@pytest.fixture(scope="module")
def serve_static():
    """Serve folders statically with the isolation headers; yields a function folder -> URL."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(IsolatedStaticHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def slim_site(slimsam_77_export, serve_static, tmp_path_factory):
    """The SlimSAM-77 page-only bundle, and beside its bundle.json a heavy.json claiming ViT-B's cost."""
    require_web()
    model_dir = slimsam_77_export[1].output_dir
    site = page_only_site(model_dir, tmp_path_factory.mktemp("web_encoder") / "site")
    meta = json.loads((site / "bundle.json").read_text())
    meta["encoder"] |= {"gmacs": VIT_B_GMACS, "variant": "vit_b"}
    (site / "heavy.json").write_text(json.dumps(meta))
    # the README's other way to serve it: sam-onnx serve --bundle SITE (the page still encodes)
    options = ServeOptions(web_dir=DEMO / "dist", bundle_dirs=(site,), port=0)
    server = make_server(SamPredictor.from_export(model_dir), web_decoder_paths(model_dir), options)
    server.quiet = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"url": serve_static(site), "model_dir": model_dir, "serve": server.url}
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def encoder_e2e(slim_site, reference_dir, artifacts):  # noqa: F811 (the imported fixture)
    images = reference_dir / "images"
    url = slim_site["url"]
    cases = [
        {
            "name": "encode-in-page",
            "url": f"{url}?threads={THREADS}",
            "upload": str(images / IMAGE_FILES["landscape"]),
            "upload2": str(images / IMAGE_FILES["portrait"]),  # cancels the landscape
            "click": CLICK,
            "embedding": str(artifacts / "encode-in-page.embedding.npy"),
            "screenshot": str(artifacts / "encode-in-page.png"),
        },
        {
            "name": "encoder-too-heavy",
            "url": f"{url}?bundle=heavy.json&threads={THREADS}",
            "expectError": True,
        },
        {
            "name": "encode-in-served-page",
            "url": f"{slim_site['serve']}?threads={THREADS}",
            "upload": str(images / IMAGE_FILES["portrait"]),
            "click": CLICK,
        },
    ]
    for c in cases:
        c["mask"] = str(artifacts / f"{c['name']}.mask.bin")
    return run_browser(cases, artifacts, "result-encoder")


@pytest.fixture(scope="module")
def slim_predictor(slim_site):
    return SamPredictor.from_export(slim_site["model_dir"])


def test_page_embedding_matches_the_python_runtime(
    encoder_e2e,
    slim_predictor,
    reference_dir,
    artifacts,  # noqa: F811
    artifacts_note,  # noqa: F811
):
    """The page's own embedding of the second image (the first was cancelled) against
    ``SamPredictor.embed`` of the same file, and far from the first image's."""
    r = encoder_e2e["encode-in-page"]
    assert r["hw"] == [700, 525] and IMAGE_FILES["portrait"] in r["status"]
    page = np.load(artifacts / "encode-in-page.embedding.npy")
    want = slim_predictor.embed(reference_dir / "images" / IMAGE_FILES["portrait"]).embedding
    first = slim_predictor.embed(reference_dir / "images" / IMAGE_FILES["landscape"]).embedding
    assert page.shape == want.shape == (1, 256, 64, 64) and page.dtype == np.float32
    max_abs = float(np.abs(page - want).max())
    artifacts_note("encode-in-page", embedding_max_abs=max_abs, embedding_max=float(np.abs(want).max()))
    assert max_abs <= EMBEDDING_ATOL
    assert np.abs(page - first).max() > 100 * EMBEDDING_ATOL, "the page kept the cancelled image's embedding"


def test_page_mask_matches_the_python_runtime(
    encoder_e2e,
    slim_predictor,
    reference_dir,
    artifacts,  # noqa: F811
    artifacts_note,  # noqa: F811
):
    """A click on the page's own embedding gives the Python runtime's mask for the same click (the
    page's single-mask decoder with one click picks the best of the multimask tokens)."""
    r = encoder_e2e["encode-in-page"]
    h, w = r["hw"]
    assert r["kind"] == "committed"
    page_mask = np.fromfile(artifacts / "encode-in-page.mask.bin", np.uint8).reshape(h, w).astype(bool)
    slim_predictor.set_image(reference_dir / "images" / IMAGE_FILES["portrait"])
    pred = slim_predictor.predict(point_coords=np.array([r["clicked"]]), point_labels=np.array([1]))
    want = pred.masks[int(np.argmax(pred.iou_predictions))]
    assert 0.01 < want.mean() < 0.99, "the reference mask is trivial; the comparison would prove nothing"
    agreement = float((page_mask == want).mean())
    artifacts_note("encode-in-page", mask_agreement=agreement, differing=int((page_mask != want).sum()))
    assert agreement >= MIN_AGREEMENT, f"{agreement:.5f} of pixels agree"


def test_encode_runs_off_the_ui_thread_and_its_time_is_recorded(encoder_e2e, artifacts_note):  # noqa: F811
    """wasm with 2 threads (the page is cross-origin isolated); the running clock advanced while
    the encoder worked and the page answered every poll meanwhile (a blocked UI thread would
    answer only when the encode is over)."""
    r = encoder_e2e["encode-in-page"]
    enc, polls = r["encoder"], r["polls"]
    assert r["crossOriginIsolated"] is True and r["threads"] == THREADS
    assert enc["engine"] == "wasm" and f"wasm, {THREADS} threads" in enc["text"]
    assert enc["encodeMs"] > 0 and enc["totalMs"] >= enc["encodeMs"]
    assert len(polls["elapsedMs"]) >= 2 and polls["elapsedMs"] == sorted(polls["elapsedMs"])
    assert polls["elapsedMs"][-1] > polls["elapsedMs"][0]
    artifacts_note(
        "encode-in-page",
        engine=enc["engine"],
        threads=THREADS,
        encode_ms=enc["encodeMs"],
        total_ms=enc["totalMs"],
        polls=len(polls["answerMs"]),
        slowest_poll_answer_ms=max(polls["answerMs"]),
    )
    assert max(polls["answerMs"]) < 2000


def test_sam_onnx_serve_of_the_bundle_leaves_the_encoding_to_the_page(
    encoder_e2e,
    artifacts,  # noqa: F811
):
    """Served by ``sam-onnx serve --bundle``, the bundle's encoder still embeds the upload in the
    page (the server's own encoder is not asked), and the mask is the static site's."""
    r = encoder_e2e["encode-in-served-page"]
    assert r["encoder"]["engine"] == "wasm" and r["encoder"]["encodeMs"] > 0
    assert r["hw"] == [700, 525] and r["crossOriginIsolated"] is True
    served = np.fromfile(artifacts / "encode-in-served-page.mask.bin", np.uint8)
    static = np.fromfile(artifacts / "encode-in-page.mask.bin", np.uint8)
    assert r["clicked"] == encoder_e2e["encode-in-page"]["clicked"] and (served == static).all()


def test_an_encoder_too_heavy_for_the_engine_is_refused(encoder_e2e):
    shown = encoder_e2e["encoder-too-heavy"]["errorShown"]
    assert "encoder vit_b: 471 GMACs per image is too heavy for wasm (at most 200)" in shown
    assert "WebGPU could run it" in shown


@pytest.fixture(scope="module")
def tiny_uint8(tiny_checkpoint, serve_static, tmp_path_factory):
    """The tiny model exported with ``--encoder-input uint8`` (the page resizes, the graph normalises
    and pads), its page-only bundle served, and the runtime's predictor on it."""
    from sam_onnx.export import ExportOptions, export_sam

    require_web()
    root = tmp_path_factory.mktemp("web_encoder_tiny")
    model_dir = export_sam(tiny_checkpoint, root / "onnx", ExportOptions(encoder_input="uint8")).output_dir
    site = page_only_site(model_dir, root / "site")
    assert json.loads((site / "bundle.json").read_text())["encoder"]["input"] == "resized_image"
    return serve_static(site), SamPredictor.from_export(model_dir)


def test_webgpu_encoder_on_a_software_adapter(
    tiny_uint8,
    reference_dir,
    artifacts,  # noqa: F811
    artifacts_note,  # noqa: F811
):
    """``?engine=webgpu`` on Chromium's SwiftShader adapter (the page would not pick a software
    adapter by itself): onnxruntime-web's WebGPU engine embeds the image as the Python runtime does.
    The tiny export, because SwiftShader runs WebGPU on the CPU (about a minute even so), with the
    uint8 encoder input, the page's other way of feeding an encoder."""
    site, predictor = tiny_uint8
    image = reference_dir / "images" / IMAGE_FILES["portrait"]
    case = {
        "name": "encode-webgpu",
        "url": f"{site}?engine=webgpu&threads={THREADS}",
        "upload": str(image),
        "click": CLICK,
        "mask": str(artifacts / "encode-webgpu.mask.bin"),
        "embedding": str(artifacts / "encode-webgpu.embedding.npy"),
    }
    r = run_browser([case], artifacts, "result-encoder-webgpu", args=WEBGPU_FLAGS)["encode-webgpu"]
    assert r["encoder"]["engine"] == "webgpu" and "WebGPU" in r["encoder"]["text"]
    page = np.load(case["embedding"])
    want = predictor.embed(image).embedding
    max_abs = float(np.abs(page - want).max())
    artifacts_note("encode-webgpu", embedding_max_abs=max_abs, encode_ms=r["encoder"]["encodeMs"])
    assert max_abs <= EMBEDDING_ATOL
