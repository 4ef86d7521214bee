"""The web demo end to end in headless Chromium: the built page, served by ``sam-onnx serve`` (and
by a plain static server), decodes golden clicks with the exported seed-0 decoder in wasm, and the
masks read back from the page agree with the official ONNX outputs. The bundles carry the fast
decoder pair, which the page then runs (its click graph, the token pick and the upscaling in
TypeScript); one bundle without it keeps the page's ``decoder.onnx`` path under test.

Needs the built page (``demo_web/dist``), ``demo_web/node_modules`` (playwright-core) and Debian's
Chromium at ``/usr/bin/chromium`` (or ``$SAM_CHROMIUM``); ``.ci/run`` provides all three and sets
``SAM_REQUIRE_WEB=1``, which turns a missing piece into a failure instead of a skip. Screenshots
and figures go to ``$SAM_E2E_ARTIFACTS`` (default: the test's temporary folder).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sam_onnx.runtime.core.embedding import ImageEmbedding
from sam_onnx.runtime.core.fast_decoder import fast_decoder_paths
from sam_onnx.runtime.core.graphs import decoder_identity, web_decoder_paths
from sam_onnx.runtime.core.predictor import SamPredictor
from sam_onnx.runtime.server.bundle import write_bundle
from sam_onnx.runtime.server.serve import ServeOptions, make_server
from tests.conftest import REPO, case_meta, unpack_masks

pytestmark = pytest.mark.slow

DEMO = REPO / "demo_web"
CHROMIUM = Path(os.environ.get("SAM_CHROMIUM", "/usr/bin/chromium"))
IMAGE_FILES = {"landscape": "landscape_480x640.png", "portrait": "portrait_700x525.png"}
MIN_AGREEMENT = 0.999
REPEATS = 7
PAIR, OFFICIAL = "fast decoder pair", "decoder.onnx"  # the page's data-decoder
# cases whose clicks are repeated for latency, and the decoder each must have run
TIMED = {"serve-landscape": PAIR, "serve-portrait": PAIR, "serve-landscape-official": OFFICIAL}


def require_web() -> None:
    missing = [
        what
        for what, ok in (
            (
                "the built page demo_web/dist (npm ci && npm run build)",
                (DEMO / "dist" / "index.html").is_file(),
            ),
            (
                "demo_web/node_modules/playwright-core (npm ci)",
                (DEMO / "node_modules" / "playwright-core").is_dir(),
            ),
            (f"Chromium at {CHROMIUM} (apt-get install chromium)", CHROMIUM.is_file()),
            ("node", shutil.which("node") is not None),
        )
        if not ok
    ]
    if missing:
        reason = "web end-to-end test needs " + "; ".join(missing)
        if os.environ.get("SAM_REQUIRE_WEB") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def golden_mask(golden, image: str, case: str = "one_point_single") -> np.ndarray:
    """The official SamOnnxModel(return_single_mask=True) mask of one of the image's cases."""
    w = golden[f"{image}/image"].shape[1]
    return unpack_masks(golden[f"{image}/{case}/onnx_out/masks_packed"], w)[0, 0]


@pytest.fixture(scope="module")
def site(vit_b_export, golden, reference_dir, tmp_path_factory):
    """Bundles of the golden embeddings, served by sam-onnx serve and by a plain static server;
    ``landscape_official`` is the landscape one without the fast decoder pair."""
    require_web()
    model_dir = vit_b_export.output_dir
    decoders = web_decoder_paths(model_dir)
    pair = fast_decoder_paths(model_dir)
    assert pair is not None, "the ViT-B export has no fast decoder pair"
    meta = decoder_identity(decoders["fp32"])
    root = tmp_path_factory.mktemp("web")
    bundles = {}
    for image, fast in (*((image, pair) for image in IMAGE_FILES), ("landscape", None)):
        pixels = golden[f"{image}/image"]
        emb = ImageEmbedding(
            golden[f"{image}/embedding"].astype(np.float32),
            pixels.shape[:2],
            variant=meta["variant"],
            checkpoint_sha256=meta["checkpoint_sha256"],
        )
        out = root / (image if fast else f"{image}_official")
        write_bundle(
            out, pixels, emb, decoders, name=IMAGE_FILES[image], web_dir=DEMO / "dist", fast_decoder=fast
        )
        bundles[out.name] = out
    predictor = SamPredictor.from_export(model_dir)
    options = ServeOptions(web_dir=DEMO / "dist", bundle_dirs=tuple(bundles.values()), port=0)
    server = make_server(predictor, decoders, options)
    server.quiet = True
    # a static server with no special headers, on the landscape bundle (page included)
    handler = functools.partial(QuietStaticHandler, directory=str(bundles["landscape"]))
    static = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (server, static)]
    for t in threads:
        t.start()
    yield {"serve": server.url, "static": f"http://127.0.0.1:{static.server_address[1]}/", "root": root}
    for s in (server, static):
        s.shutdown()
        s.server_close()


class QuietStaticHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    """Where screenshots, masks and figures.json go: ``$SAM_E2E_ARTIFACTS`` (CI keeps it)."""
    folder = Path(os.environ.get("SAM_E2E_ARTIFACTS") or tmp_path_factory.mktemp("e2e_artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def e2e(site, golden, reference_dir, artifacts):
    """Run the browser once over every case; returns (result JSON, artifacts folder)."""
    bad = site["root"] / "notes.png"
    bad.write_text("these are notes, not a picture")

    def click(image):
        return case_meta(golden, image, "one_point_single")["points"][0]

    def box(image):
        return case_meta(golden, image, "box")["box"]

    serve = site["serve"]
    cases = [
        {"name": "serve-landscape", "url": serve, "click": click("landscape"), "screenshot": "landscape.png"},
        {
            "name": "serve-portrait",
            "url": f"{serve}?bundle=bundles/portrait/bundle.json",
            "click": click("portrait"),
        },
        {
            "name": "upload-portrait",
            "url": serve,
            "upload": str(reference_dir / "images" / IMAGE_FILES["portrait"]),
            "click": click("portrait"),
            "screenshot": "upload-portrait.png",
        },
        {
            "name": "serve-portrait-box",
            "url": f"{serve}?bundle=bundles/portrait/bundle.json",
            "drag": box("portrait"),
        },
        {
            "name": "serve-landscape-official",
            "url": f"{serve}?bundle=bundles/landscape_official/bundle.json",
            "click": click("landscape"),
        },
        {"name": "upload-not-an-image", "url": serve, "upload": str(bad), "expectError": True},
        {
            "name": "static-landscape",
            "url": site["static"],
            "click": click("landscape"),
            "screenshot": "static.png",
        },
    ]
    for c in cases:
        c["mask"] = str(artifacts / f"{c['name']}.mask.bin")
        c["repeats"] = REPEATS if c["name"] in TIMED else 0
        if "screenshot" in c:
            c["screenshot"] = str(artifacts / c["screenshot"])
    return run_browser(cases, artifacts, "result"), artifacts


def run_browser(
    cases: list[dict], artifacts: Path, stem: str, args: tuple[str, ...] | list[str] = ()
) -> dict[str, dict]:
    """Run ``e2e/run.mjs`` over ``cases`` (spec and result JSON named ``stem`` in ``artifacts``;
    ``args``: more Chromium flags); returns the result of each case by name. Fails the test if the
    run fails."""
    spec = artifacts / f"{stem}.spec.json"
    spec.write_text(json.dumps({"chromium": str(CHROMIUM), "cases": cases, "args": list(args)}, indent=1))
    out = artifacts / f"{stem}.json"
    proc = subprocess.run(
        ["node", "e2e/run.mjs", str(spec), str(out)], cwd=DEMO, capture_output=True, text=True, timeout=900
    )
    result = json.loads(out.read_text()) if out.is_file() else {}
    assert proc.returncode == 0, f"e2e run failed: {result.get('error') or proc.stderr[-3000:]}"
    return {c["name"]: c for c in result["cases"]}


@pytest.mark.parametrize(
    ("case", "image", "golden_case"),
    [
        ("serve-landscape", "landscape", "one_point_single"),
        ("serve-portrait", "portrait", "one_point_single"),
        ("serve-portrait-box", "portrait", "box"),
        ("static-landscape", "landscape", "one_point_single"),
        ("serve-landscape-official", "landscape", "one_point_single"),  # decoder.onnx, no pair
        # the server's own embedding of the uploaded PNG, within 1e-3 of the golden one
        ("upload-portrait", "portrait", "one_point_single"),
    ],
)
def test_page_mask_matches_the_golden_onnx_output(e2e, golden, artifacts_note, case, image, golden_case):
    results, artifacts = e2e
    r = results[case]
    h, w = golden[f"{image}/image"].shape[:2]
    assert r["hw"] == [h, w]
    assert r["kind"] == "committed"
    mask = np.fromfile(artifacts / f"{case}.mask.bin", np.uint8).reshape(h, w).astype(bool)
    want = golden_mask(golden, image, golden_case)
    agreement = float((mask == want).mean())
    artifacts_note(
        case,
        agreement=agreement,
        differing=int((mask != want).sum()),
        clicked=r["clicked"],
        box=r["box"],
        decoder=r["decoder"],
    )
    assert r["decoder"] == (OFFICIAL if case.endswith("-official") else PAIR)
    assert agreement >= MIN_AGREEMENT, f"{case}: {agreement:.5f} of pixels agree"


def note_decode_times(artifacts_note, case: str, r: dict) -> None:
    """Record a timed case's medians: ``decode_ms`` the whole decode (the pair: click graph, token
    pick and upscaling), ``click_ms`` the graph run alone (``decoder.onnx``: the same run)."""
    ms, click_ms = r["runMs"], r["clickMs"]
    assert len(ms) == len(click_ms) == REPEATS and all(v > 0 for v in ms + click_ms)
    assert all(c <= m for c, m in zip(click_ms, ms, strict=True))
    artifacts_note(
        case,
        decoder=r["decoder"],
        decode_ms_median=float(np.median(ms)),
        decode_ms_range=[min(ms), max(ms)],
        click_ms_median=float(np.median(click_ms)),
        round_trip_ms_median=float(np.median(r["roundTripMs"])),
        threads=r["threads"],
        load_average=os.getloadavg()[0],
    )


def test_served_page_is_isolated_and_multithreaded(e2e, artifacts_note):
    results, artifacts = e2e
    for case in ("serve-landscape", "serve-portrait", "upload-portrait"):
        assert results[case]["crossOriginIsolated"] is True, case
        assert results[case]["threads"] > 1, case
    # a plain static server sends no COOP/COEP: the page works on one thread and says so
    static = results["static-landscape"]
    assert static["crossOriginIsolated"] is False and static["threads"] == 1
    assert "not cross-origin isolated" in static["status"]
    assert (artifacts / "landscape.png").stat().st_size > 10_000  # the screenshot was written
    for case, decoder in TIMED.items():
        assert results[case]["decoder"] == decoder, case
        note_decode_times(artifacts_note, case, results[case])


def test_a_refused_upload_is_shown_on_the_page(e2e):
    results, _ = e2e
    shown = results["upload-not-an-image"]["errorShown"]
    assert "notes.png" in shown and "unrecognised content" in shown


@pytest.fixture(scope="module")
def artifacts_note(artifacts):
    """Collect figures into figures.json next to the screenshots (printed with -s)."""
    path = artifacts / "figures.json"

    def note(case: str, **figures) -> None:
        data = json.loads(path.read_text()) if path.is_file() else {}
        data.setdefault(case, {}).update(figures)
        path.write_text(json.dumps(data, indent=1))
        print(case, figures)

    return note


@pytest.fixture(scope="module")
def readme_server(tiny_model_dir, tmp_path_factory):
    """``sam-onnx serve -m EXPORT`` run as the README says (no bundle, the page found by itself),
    in its own process from this environment's entry point; ``--port 0`` only so that parallel runs
    never collide on 8000. Yields the URL it prints."""
    require_web()
    exe = Path(sys.executable).with_name("sam-onnx")
    yield from _serve([str(exe), "serve", "-m", tiny_model_dir], tmp_path_factory.mktemp("readme_serve"))


def _serve(argv: list[str], logs: Path):
    """Run ``argv --port 0`` in ``logs``; yield (the URL it prints, its stderr file), then stop it."""
    with (logs / "out.txt").open("w") as out, (logs / "err.txt").open("w") as err:
        proc = subprocess.Popen([*argv, "--port", "0"], stdout=out, stderr=err, cwd=logs)
    try:
        deadline = time.monotonic() + 120
        while not (url := re.search(r"http://\S+/", (logs / "out.txt").read_text())):
            assert proc.poll() is None, f"serve exited: {(logs / 'err.txt').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "serve printed no URL in 120 s"
            time.sleep(0.2)
        yield url.group(0), logs / "err.txt"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_readme_serve_segments_a_dropped_image(readme_server, tiny_model_dir, reference_dir, tmp_path):
    """The README's "drop any image" flow: upload a kit image to the served page, click, and get the
    Python runtime's mask for the same click, through the fast decoder pair the server offers
    (the page's single-mask rule with one click and its padding point picks the best of the three
    multimask tokens, as the official rule does)."""
    url, server_log = readme_server
    image_path = reference_dir / "images" / IMAGE_FILES["portrait"]
    case = {"name": "readme-serve-upload", "url": url, "upload": str(image_path), "click": [210.0, 330.0]}
    case["mask"] = str(tmp_path / "mask.bin")
    try:
        r = run_browser([case], tmp_path, "readme-serve")[case["name"]]
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nserver log:\n{server_log.read_text()[-2000:]}") from None
    h, w = r["hw"]
    page_mask = np.fromfile(case["mask"], np.uint8).reshape(h, w).astype(bool)
    predictor = SamPredictor.from_export(tiny_model_dir)
    predictor.set_image(image_path)
    pred = predictor.predict(point_coords=np.array([r["clicked"]]), point_labels=np.array([1]))
    want = pred.masks[int(np.argmax(pred.iou_predictions))]
    assert (h, w) == want.shape and r["kind"] == "committed"
    assert r["decoder"] == PAIR  # api/config offered the pair the server's predictor runs
    assert 0.01 < want.mean() < 0.99, "the reference mask is trivial; the comparison would prove nothing"
    agreement = float((page_mask == want).mean())
    print(f"readme-serve-upload: {agreement:.5f} of pixels agree, mask area {want.mean():.3f}")
    assert agreement >= MIN_AGREEMENT, f"{agreement:.5f} of pixels agree"


# --- text prompts: sam-onnx serve --detector ---------------------------------------------------

TEXT_PROMPT = "a cat. a remote control."


@pytest.fixture(scope="module")
def text_server(tiny_model_dir, detector_export, tmp_path_factory):
    """``sam-onnx serve -m EXPORT --detector DETECTOR`` as docs/TEXT.md says, in its own process;
    yields the URL it prints."""
    pytest.importorskip("tokenizers")
    require_web()
    exe = Path(sys.executable).with_name("sam-onnx")
    argv = [str(exe), "serve", "-m", tiny_model_dir, "--detector", str(detector_export.output_dir)]
    yield from _serve(argv, tmp_path_factory.mktemp("text_serve"))


def test_text_prompt_masks_equal_predict_boxes(
    text_server, tiny_model_dir, detector_export, reference_dir, artifacts
):
    """Upload a kit image, type a prompt: the server's boxes are the detector's, and each mask the
    page decodes for them is SamPredictor.predict_boxes' on the same box (by the page's single-mask
    rule for a drawn box). Then the errors the page shows: nothing above the box threshold (with the
    best score seen) and a refused prompt."""
    from sam_onnx.images import load_image
    from sam_onnx.runtime.text import Detector

    url, server_log = text_server
    image_path = reference_dir / "images" / IMAGE_FILES["portrait"]
    found_case = {"name": "text-found", "url": url, "upload": str(image_path), "text": TEXT_PROMPT}
    found_case |= {"mask": str(artifacts / "text-found.masks.bin"), "screenshot": str(artifacts / "text.png")}
    nothing = {"name": "text-nothing", "url": f"{url}?box_threshold=1", "upload": str(image_path)}
    nothing |= {"text": "cat.", "expectError": True}
    refused = {
        "name": "text-refused",
        "url": url,
        "upload": str(image_path),
        "text": ". .",
        "expectError": True,
    }
    try:
        results = run_browser([found_case, nothing, refused], artifacts, "text")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nserver log:\n{server_log.read_text()[-2000:]}") from None
    r = results["text-found"]
    h, w = r["hw"]
    predictor = SamPredictor.from_export(tiny_model_dir)
    rgb = load_image(image_path)
    found = Detector(detector_export.output_dir).detect(rgb, TEXT_PROMPT)
    assert (h, w) == rgb.shape[:2] and len(found) > 0
    assert [f["label"] for f in r["found"]] == list(found.labels)
    np.testing.assert_array_equal(np.array(r["boxes"], np.float32), found.boxes_xyxy)
    page = np.fromfile(found_case["mask"], np.uint8).reshape(len(found), h, w).astype(bool)
    # the page decodes each box as a drawn one: decoder.onnx's single-mask rule, which for a box
    # alone (two points) takes the best multimask token by predicted IoU, as the official ONNX does
    pred = predictor.predict_boxes(found.boxes_xyxy, multimask_output=True, embedding=predictor.embed(rgb))
    want = pred.masks[np.arange(len(found)), pred.iou_predictions.argmax(axis=1)]
    agreement = (page == want).mean(axis=(1, 2))
    print(f"text-found: {len(found)} boxes, agreement min {agreement.min():.5f}, mean area {want.mean():.3f}")
    assert 0.01 < want.mean() < 0.99, "the reference masks are trivial; the comparison would prove nothing"
    assert agreement.min() >= MIN_AGREEMENT, f"{agreement.min():.5f} of pixels agree on the worst box"
    shown = results["text-nothing"]["errorShown"]
    assert "nothing found for 'cat.'" in shown and "the best box scored" in shown
    assert results["text-nothing"]["found"] == 0
    assert "besides the separators" in results["text-refused"]["errorShown"]


# --- SAM 2.1: the same page on the kit's hiera_t export ------------------------------------------


@pytest.fixture(scope="module")
def sam2_site(hiera_t_export, sam2_golden, tmp_path_factory):
    """``sam-onnx serve`` on the kit's hiera_t export, with bundles of the SAM 2.1 golden features
    (``image_embed`` and the two high-res maps) of the landscape and portrait images, with the fast
    decoder pair."""
    require_web()
    model_dir = hiera_t_export.output_dir
    decoders = web_decoder_paths(model_dir)
    pair = fast_decoder_paths(model_dir)
    assert pair is not None, "the hiera_t export has no fast decoder pair"
    meta = decoder_identity(decoders["fp32"])
    root = tmp_path_factory.mktemp("web_sam2")
    bundles = []
    for image in IMAGE_FILES:
        pixels = sam2_golden[f"{image}/image"]
        high_res = tuple(sam2_golden[f"{image}/high_res_feats_{i}"] for i in (0, 1))
        emb = ImageEmbedding(
            sam2_golden[f"{image}/image_embed"],
            pixels.shape[:2],
            variant=meta["variant"],
            checkpoint_sha256=meta["checkpoint_sha256"],
            family="sam2",
            high_res_feats=high_res,
        )
        out = root / f"sam2_{image}"
        write_bundle(out, pixels, emb, decoders, name=IMAGE_FILES[image], fast_decoder=pair)
        bundles.append(root / f"sam2_{image}")
    predictor = SamPredictor.from_export(model_dir)
    options = ServeOptions(web_dir=DEMO / "dist", bundle_dirs=tuple(bundles), port=0)
    server = make_server(predictor, decoders, options)
    server.quiet = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.url
    server.shutdown()
    server.server_close()


SAM2_CASES = {  # browser case -> (image, golden case); the page's decoder is the single-mask graph
    "sam2-landscape": ("landscape", "one_point_single"),
    "sam2-portrait": ("portrait", "one_point_single"),
    "sam2-landscape-box": ("landscape", "box"),
    "sam2-portrait-box": ("portrait", "box"),
    # the server's own encoder on the uploaded PNG (features within 1e-3 of the golden ones)
    "sam2-upload-portrait": ("portrait", "one_point_single"),
}


@pytest.fixture(scope="module")
def sam2_e2e(sam2_site, sam2_golden, sam2_reference_dir, artifacts):
    """The browser over the SAM 2.1 cases (clicks at the golden points, drags along the golden boxes)."""
    cases = []
    for name, (image, golden_case) in SAM2_CASES.items():
        prompt = case_meta(sam2_golden, image, golden_case)
        c = {"name": name, "url": f"{sam2_site}?bundle=bundles/sam2_{image}/bundle.json"}
        if prompt["box"] is not None:
            c["drag"] = prompt["box"]
        else:
            c["click"] = prompt["points"][0]
        if name.startswith("sam2-upload"):
            c["url"] = sam2_site  # the first bundle opens, then the upload replaces it
            c["upload"] = str(sam2_reference_dir.parent / "images" / IMAGE_FILES[image])
        c["mask"] = str(artifacts / f"{name}.mask.bin")
        c["repeats"] = REPEATS if name in ("sam2-landscape", "sam2-portrait") else 0
        if name in ("sam2-landscape", "sam2-upload-portrait"):
            c["screenshot"] = str(artifacts / f"{name}.png")
        cases.append(c)
    return run_browser(cases, artifacts, "result-sam2")


@pytest.mark.parametrize("case", list(SAM2_CASES))
def test_sam2_page_mask_matches_the_golden_output(sam2_e2e, sam2_golden, artifacts, artifacts_note, case):
    """The page's SAM 2.1 masks (three features fed, square-frame coordinates, the graph's padding
    point and stability rule) against the official predictor's single-mask output."""
    image, golden_case = SAM2_CASES[case]
    r = sam2_e2e[case]
    h, w = sam2_golden[f"{image}/image"].shape[:2]
    assert r["hw"] == [h, w] and r["kind"] == "committed"
    assert "wasm threads" in r["status"] and r["crossOriginIsolated"] is True and r["threads"] > 1
    assert r["decoder"] == PAIR
    mask = np.fromfile(artifacts / f"{case}.mask.bin", np.uint8).reshape(h, w).astype(bool)
    want = unpack_masks(sam2_golden[f"{image}/{golden_case}/masks_packed"], w)[0]
    assert 0.01 < want.mean() < 0.99, "the golden mask is trivial; the comparison would prove nothing"
    agreement = float((mask == want).mean())
    artifacts_note(
        case, agreement=agreement, differing=int((mask != want).sum()), clicked=r["clicked"], box=r["box"]
    )
    assert agreement >= MIN_AGREEMENT, f"{case}: {agreement:.5f} of pixels agree"


def test_sam2_decode_time_is_recorded(sam2_e2e, artifacts_note):
    """Median whole decode per click (the pair's click graph, SAM 2's single-mask rule, upscaling)
    and its click graph alone, in wasm."""
    for case in ("sam2-landscape", "sam2-portrait"):
        note_decode_times(artifacts_note, case, sam2_e2e[case])
