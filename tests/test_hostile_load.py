"""Load and hostile clients: one predictor shared by 8 threads, ``sam-onnx serve`` under 200
concurrent requests and slow clients, malformed HTTP, and a 20000 x 20000 image with bounded memory."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from sam_onnx.errors import ImageTooLargeError
from sam_onnx.runtime.server.serve import ServeOptions
from tests.test_serve import error_of, png_bytes, request, serving

THREADS, REQUESTS = 8, 50


def png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header says ``w x h`` (RGB) with one tiny IDAT: a bomb by its header alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


# --- one predictor, many threads --------------------------------------------------------------------
@pytest.mark.slow
def test_eight_threads_fifty_requests_each_equal_sequential(tiny_predictor):
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for hw in ((30, 50), (64, 20), (17, 17), (80, 120))
    ]
    jobs = [
        (i % len(images), (int(rng.integers(0, 16)), int(rng.integers(0, 16))))
        for i in range(THREADS * REQUESTS)
    ]

    def run(job):
        index, point = job
        emb = tiny_predictor.embed(images[index])
        pred = tiny_predictor.predict(np.array([point]), np.array([1]), embedding=emb)
        return pred.masks, pred.iou_predictions, pred.low_res_logits

    sequential = [run(job) for job in jobs]
    with ThreadPoolExecutor(THREADS) as pool:
        threaded = list(pool.map(run, jobs))
    for (m1, i1, l1), (m2, i2, l2) in zip(sequential, threaded, strict=True):
        assert np.array_equal(m1, m2) and np.array_equal(i1, i2) and np.array_equal(l1, l2)


# --- the server under load and hostile clients ----------------------------------------------------
@pytest.fixture(scope="module")
def server(tiny_predictor, tiny_model_dir, tmp_path_factory):
    web = tmp_path_factory.mktemp("web_load")
    (web / "index.html").write_text("<!doctype html>")
    options = ServeOptions(web_dir=web, port=0, max_pending=4, timeout_s=2.0, max_upload_bytes=1_000_000)
    with serving(tiny_predictor, tiny_model_dir, options) as srv:
        yield srv


@pytest.mark.slow
def test_200_concurrent_requests_are_answered_or_rejected_and_serving_goes_on(server):
    bodies = [png_bytes(20 + i % 7, 30 + i % 5, seed=i) for i in range(8)]

    def one(i: int) -> int:
        if i % 4 == 3:
            return request(server, "GET", "/api/config")[0]
        return request(server, "POST", "/api/embed", bodies[i % 8], {"Content-Type": "image/png"})[0]

    start = time.monotonic()
    with ThreadPoolExecutor(200) as pool:
        statuses = list(pool.map(one, range(200)))
    elapsed = time.monotonic() - start
    counts = {s: statuses.count(s) for s in set(statuses)}
    assert set(counts) <= {200, 429}, counts
    assert counts.get(200, 0) >= 50  # the 50 GETs at least, and the embeds that found a slot
    assert elapsed < 120
    assert request(server, "POST", "/api/embed", bodies[0], {"Content-Type": "image/png"})[0] == 200


def test_slow_clients_time_out_and_do_not_block_others(server):
    stalled = []
    for _ in range(20):  # headers promise a body that never comes
        s = socket.create_connection(server.server_address[:2])
        s.sendall(
            b"POST /api/embed HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n"
        )
        s.sendall(b"\x89PNG")
        stalled.append(s)
    half = socket.create_connection(server.server_address[:2])
    half.sendall(b"GET /api/con")  # and one that never finishes its request line
    t0 = time.monotonic()
    assert request(server, "GET", "/api/config")[0] == 200  # served while they stall
    assert time.monotonic() - t0 < 2.0
    for s in [*stalled, half]:
        s.settimeout(10)
        data = s.recv(65536)  # the server gives up on them after timeout_s and closes
        assert b"Traceback" not in data
        s.close()
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize(
    ("body", "ctype", "status", "kind"),
    [
        (
            b'--b\r\nContent-Disposition: form-data; name="f"\r\n\r\nx\r\n--b--',
            "multipart/form-data; boundary=b",
            415,
            None,
        ),
        (b'{"image": "...', "application/json", 415, None),
        (png_header_only(20000, 20000), "image/png", 413, "ImageTooLarge"),
        (png_header_only(1, 1)[:40], "image/png", 400, "InvalidImageError"),
    ],
    ids=["multipart", "malformed-json", "bomb-20000x20000", "truncated-png"],
)
def test_hostile_bodies(server, body, ctype, status, kind):
    err = error_of(request(server, "POST", "/api/embed", body, {"Content-Type": ctype}))
    assert err["status"] == status and (kind is None or err["type"] == kind)


def raw(server, data: bytes) -> tuple[int, dict, bytes]:
    with socket.create_connection(server.server_address[:2], timeout=10) as s:
        s.sendall(data)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    if reply.startswith(b"{"):  # http.server answers an unparsable request line HTTP/0.9 style: body only
        return json.loads(reply)["error"]["status"], {}, reply
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"PUT /api/embed HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 501),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n", 431),
        (b"NONSENSE\r\n\r\n", 400),
        (b"POST /api/embed HTTP/1.1\r\nContent-Type: image/png\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /api/embed HTTP/1.1\r\nContent-Type: image/png\r\nContent-Length: -5\r\n\r\n", 400),
        (b"POST /api/embed HTTP/1.1\r\nContent-Type: image/png\r\n\r\n", 411),
    ],
    ids=[
        "unknown-method",
        "url-too-long",
        "too-many-headers",
        "bad-request-line",
        "length-not-a-number",
        "negative-length",
        "no-length",
    ],
)
def test_malformed_http_gets_json_errors(server, data, status):
    got, headers, body = raw(server, data)
    assert got == status
    assert not headers or headers.get("Cross-Origin-Embedder-Policy") == "require-corp"
    err = json.loads(body)["error"]
    assert err["status"] == status and "Traceback" not in err["message"]
    assert request(server, "GET", "/api/config")[0] == 200


# --- a 20000 x 20000 image: refused from its header, memory bounded ---------------------------------
def test_20000_square_image_is_refused_with_bounded_memory(tiny_model_dir, tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(20000, 20000))
    code = (
        "import resource, sys\n"
        "from sam_onnx.runtime import SamPredictor\n"
        "p = SamPredictor.from_export(sys.argv[1])\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for limit in ({}, {'max_pixels': None}):\n"
        "    try:\n"
        "        SamPredictor.from_export(sys.argv[1], **limit).embed(sys.argv[2])\n"
        "    except Exception as exc:\n"
        "        print(type(exc).__name__, str(exc).replace(chr(10), ' '))\n"
        "print('grew_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, tiny_model_dir, str(path)], capture_output=True, text=True
    )
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in lines[:2]] == [ImageTooLargeError.__name__] * 2, lines
    assert "20000 x 20000" in lines[0] or "400000000" in lines[0]
    grew_kib = int(lines[2].split()[1])
    assert grew_kib < 100 * 1024, f"peak memory grew by {grew_kib} KiB"  # an RGB decode would be 1.2 GB


def test_huge_image_bound_in_the_docs():
    text = (Path(__file__).resolve().parents[1] / "docs" / "RELIABILITY.md").read_text()
    assert "20000" in text and "178,956,970" in text
