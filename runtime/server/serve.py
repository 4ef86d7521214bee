"""``sam-onnx serve``: the web demo over HTTP, with an endpoint that embeds uploaded images.

Routes (every response carries the cross-origin isolation headers the page's wasm threads need:
``Cross-Origin-Opener-Policy: same-origin``, ``Cross-Origin-Embedder-Policy: require-corp``)::

    GET  /api/config           JSON: family, resize, variant, checkpoint_sha256, random_weights
                               (true for an export of random weights: the page says so), decoder
                               URLs, upload limits, bundle
    GET  /api/decoder/<prec>   the official-contract decoder graph (fp32, and int8 if exported)
    GET  /api/fast/<role>      the fast decoder pair's graphs, ``image`` and ``click``, when the
                               predictor runs it (``fast_decoder`` in the config; else null)
    POST /api/embed            body: the image file, Content-Type image/*; answer: JSON with
                               orig_hw [H, W], input_hw, variant, checkpoint_sha256, family and
                               features: {decoder input name: {shape, dtype "float32", data_b64
                               (little-endian float32, base64)}}: image_embeddings (SAM 2 also
                               high_res_feats_0 and high_res_feats_1)
    POST /api/detect?text=PROMPT[&box_threshold=T&text_threshold=T]
                               with ``--detector`` (``detector`` in the config; else 404): body the
                               image file as for /api/embed; answer: JSON with prompt, orig_hw,
                               the thresholds, boxes_xyxy (original-image pixels), scores, labels,
                               best_score, best_label: ``Detector.detect``'s boxes, which the page
                               decodes as drawn boxes. A prompt the tokenizer refuses is a 400
                               (``InvalidPromptError``); no box above the threshold a 422
                               (``NothingFound``, the message names the best score seen)
    GET  /bundles/<name>/<file>  files of the ``sam-onnx bundle`` folders given with ``--bundle``
                               (``name``: the folder's name; the first one opens first)
    GET  /<file>               the built page

Errors are JSON ``{"error": {"type": ..., "message": ...}}`` with a 4xx status naming what was
wrong (413 body too large, 415 content type, 400 not an image or a refused prompt, 422 nothing
found, 429 encoder busy, 404, 405, 411);
unexpected failures are a 500 whose body says only that, the details go to the server's log.

Bounds: request bodies up to ``max_upload_bytes``; images up to ``max_pixels``; at most
``max_pending`` uploads waiting for the encoder or the detector (which run one image at a time,
one after the other), the rest get 429;
each connection times out after ``timeout_s`` of silence (slow clients). Files are served only from
inside the page and bundle folders (no ``..``, no symlinks leading out). Binds 127.0.0.1 unless
told otherwise.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import sys
import threading
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from sam_onnx.errors import ImageTooLargeError, InvalidInputError, NothingFoundError, SamOnnxError
from sam_onnx.images import read_image_bytes

from ..text.detector import BOX_THRESHOLD, TEXT_THRESHOLD
from .bundle import decoders_family, decoders_random_weights

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
UPLOAD_TYPES = ("image/png", "image/jpeg", "image/webp", "image/bmp", "image/tiff", "image/gif")
CONTENT_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm"}
CONTENT_TYPES |= {".onnx": "application/octet-stream", ".npy": "application/octet-stream"}


@dataclass(frozen=True)
class ServeOptions:
    """How ``sam-onnx serve`` runs.

    Attributes:
      web_dir: the built page (``demo_web/dist``).
      bundle_dirs: ``sam-onnx bundle`` folders to serve; the first is shown first.
      host, port: where to listen (port 0: any free port).
      max_upload_bytes: largest accepted request body.
      max_pixels: largest accepted image (H * W).
      max_pending: uploads that may wait for the encoder before new ones get 429.
      timeout_s: socket timeout per connection.
    """

    web_dir: Path
    bundle_dirs: tuple[Path, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 32 * 2**20
    max_pixels: int = 50_000_000
    max_pending: int = 4
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_pending"):
            if getattr(self, name) < 1:
                raise InvalidInputError(name, "a positive number", str(getattr(self, name)))
        if not self.timeout_s > 0:
            raise InvalidInputError("timeout_s", "a positive number of seconds", str(self.timeout_s))


class HttpError(Exception):
    """A request refused with ``status``; ``kind`` and ``message`` go to the client as JSON."""

    def __init__(self, status: HTTPStatus, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


class DemoServer(ThreadingHTTPServer):
    """The HTTP server: holds the predictor, the decoder files, the options and, for text prompts,
    the detector (a :class:`sam_onnx.runtime.text.Detector`, or None)."""

    daemon_threads = True
    request_queue_size = 128
    quiet = False  # True: no access log

    def __init__(self, predictor, decoders: dict[str, Path], options: ServeOptions, detector=None) -> None:
        self.predictor = predictor
        self.detector = detector
        self.decoders = decoders
        self.family = decoders_family(decoders)  # {"family", "resize"}: the page feeds by these
        self.random_weights = decoders_random_weights(decoders)  # the page says so: masks ignore clicks
        # the page runs the pair the predictor runs (opened and checked against its decoder there)
        fast = predictor.fast
        self.fast = {} if fast is None else {"image": fast.image.path, "click": fast.click.path}
        self.options = options
        self.web_root = options.web_dir.resolve()
        self.bundles = {p.resolve().name: p.resolve() for p in options.bundle_dirs}
        self.encoder_lock = threading.Lock()  # the encoder uses every core: one image at a time
        self.pending = threading.BoundedSemaphore(options.max_pending)
        super().__init__((options.host, options.port), DemoHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def config(self) -> dict:
        return {
            "format": "sam-onnx-serve",
            "version": 1,
            **self.family,
            "variant": self.predictor.variant,
            "checkpoint_sha256": self.predictor.checkpoint_sha256,
            "random_weights": self.random_weights,
            "decoders": {p: f"api/decoder/{p}" for p in self.decoders},
            "fast_decoder": {role: f"api/fast/{role}" for role in self.fast} or None,
            "max_upload_bytes": self.options.max_upload_bytes,
            "max_pixels": self.options.max_pixels,
            "upload_types": list(UPLOAD_TYPES),
            "bundles": {name: f"bundles/{name}/bundle.json" for name in self.bundles},
            "bundle": f"bundles/{next(iter(self.bundles))}/bundle.json" if self.bundles else None,
            "detector": None if self.detector is None else "api/detect",
        }

    def embed(self, body: bytes, name: str) -> dict:
        """Embed an uploaded image; the answer of ``POST /api/embed``."""
        emb = self._one_at_a_time(body, name, self.predictor.embed)
        features = {name: _tensor_json(array) for name, array in emb.decoder_inputs().items()}
        return {**emb.metadata(), "features": features}

    def detect(self, body: bytes, name: str, query: dict[str, list[str]]) -> dict:
        """The boxes of a text prompt on an uploaded image; the answer of ``POST /api/detect``.
        ``query``: the URL's parameters (``text``, and optionally the two thresholds)."""
        if self.detector is None:
            raise HttpError(
                HTTPStatus.NOT_FOUND,
                "NoDetector",
                "this server has no text detector: start sam-onnx serve with --detector DIR",
            )
        prompt = _query_value(query, "text") or ""
        thresholds = {
            key: _threshold(query, key)
            for key in ("box_threshold", "text_threshold")
            if _query_value(query, key) is not None
        }
        self.detector.tokenizer.encode(prompt)  # a refused prompt is answered before any graph runs
        found, orig_hw = self._one_at_a_time(
            body, name, lambda image: (self.detector.detect(image, prompt, **thresholds), image.shape[:2])
        )
        used = {"box_threshold": BOX_THRESHOLD, "text_threshold": TEXT_THRESHOLD, **thresholds}
        if not len(found):
            raise NothingFoundError(found.prompt, used["box_threshold"], found.best_score, found.best_label)
        return {
            "prompt": found.prompt,
            "orig_hw": list(orig_hw),
            **used,
            "boxes_xyxy": found.boxes_xyxy.astype(float).tolist(),  # float32 values, exactly
            "scores": found.scores.astype(float).tolist(),
            "labels": list(found.labels),
            "best_score": found.best_score,
            "best_label": found.best_label,
        }

    def _one_at_a_time(self, body: bytes, name: str, work):
        """``work(image)`` on the uploaded image, one image at a time (the encoder and the detector
        each use every core); 429 when ``max_pending`` uploads already wait."""
        if not self.pending.acquire(blocking=False):
            raise HttpError(
                HTTPStatus.TOO_MANY_REQUESTS,
                "Busy",
                f"{self.options.max_pending} images are already waiting for the encoder; try again shortly",
            )
        try:
            image = read_image_bytes(body, name, max_pixels=self.options.max_pixels)
            with self.encoder_lock:
                return work(image)
        finally:
            self.pending.release()


class DemoHandler(BaseHTTPRequestHandler):
    server: DemoServer
    server_version = "sam-onnx"

    def version_string(self) -> str:
        return self.server_version

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.timeout = self.server.options.timeout_s  # socket timeout: slow clients are dropped
        self.requests_served = 0
        super().setup()

    def handle_one_request(self) -> None:
        """As http.server's, but a keep-alive connection that stays idle after its requests is
        closed quietly: the browser keeps it open after an upload, and timing out there is not
        an error (http.server logs every timeout as "Request timed out"). Silence before the
        first request, or within a request, is still logged."""
        try:
            waiting = self.rfile.peek(1) if self.requests_served else b"?"
        except (TimeoutError, ConnectionError):
            waiting = b""
        if not waiting:
            self.close_connection = True
            return
        self.requests_served += 1
        super().handle_one_request()

    # --- routing -----------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._answer(self._get)

    def do_HEAD(self) -> None:
        self._answer(self._get, head=True)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _answer(self, route, head: bool = False) -> None:
        try:
            status, headers, body = route()
        except HttpError as exc:
            status, headers, body = _json_error(exc.status, exc.kind, exc.message)
            self.close_connection = True
        except ImageTooLargeError as exc:
            status, headers, body = _json_error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "ImageTooLarge", str(exc)
            )
        except InvalidInputError as exc:
            status, headers, body = _json_error(HTTPStatus.BAD_REQUEST, type(exc).__name__, str(exc))
        except NothingFoundError as exc:
            status, headers, body = _json_error(HTTPStatus.UNPROCESSABLE_ENTITY, "NothingFound", str(exc))
        except SamOnnxError as exc:
            self.log_error("embedding failed: %s", exc)
            status, headers, body = _json_error(
                HTTPStatus.INTERNAL_SERVER_ERROR, "InferenceFailed", "the model failed"
            )
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        except Exception as exc:
            self.log_error("internal error: %r", exc)
            status, headers, body = _json_error(
                HTTPStatus.INTERNAL_SERVER_ERROR, "Internal", "internal error"
            )
        self._send(status, headers, body, head=head)

    def _send(self, status: int, headers: dict, body: bytes, *, head: bool = False, reason=None) -> None:
        try:
            self.send_response(status, reason)
            for key, value in {**ISOLATION_HEADERS, **headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if not head:
                self.wfile.write(body)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, URL too long, too many headers, unknown
        method) as our JSON errors, with the isolation headers."""
        status = HTTPStatus(code)
        _, headers, body = _json_error(status, status.phrase.replace(" ", ""), message or status.description)
        self.close_connection = True
        self._send(code, headers, body, head=self.command == "HEAD", reason=message)

    def _path(self) -> str:
        path = urllib.parse.urlsplit(self.path).path
        return urllib.parse.unquote(path)

    def _get(self) -> tuple[int, dict, bytes]:
        path = self._path()
        if path == "/api/config":
            return _json(self.server.config())
        if path.startswith("/api/decoder/"):
            decoder = self.server.decoders.get(path.removeprefix("/api/decoder/"))
            if decoder is None:
                raise HttpError(HTTPStatus.NOT_FOUND, "NotFound", f"no decoder {path!r}")
            return _file(decoder)
        if path.startswith("/api/fast/"):
            graph = self.server.fast.get(path.removeprefix("/api/fast/"))
            if graph is None:
                raise HttpError(HTTPStatus.NOT_FOUND, "NotFound", f"no fast decoder graph {path!r}")
            return _file(graph)
        if path.startswith("/api/"):
            raise HttpError(HTTPStatus.NOT_FOUND, "NotFound", f"no endpoint {path!r}")
        if path.startswith("/bundles/"):
            name, _, rest = path.removeprefix("/bundles/").partition("/")
            if name not in self.server.bundles:
                raise HttpError(HTTPStatus.NOT_FOUND, "NotFound", "no such bundle")
            return _file(_inside(self.server.bundles[name], rest))
        return _file(_inside(self.server.web_root, path.lstrip("/") or "index.html"))

    def _post(self) -> tuple[int, dict, bytes]:
        path = self._path()
        if path not in ("/api/embed", "/api/detect"):
            only = "POST goes to /api/embed or /api/detect only"
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "MethodNotAllowed", only)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in UPLOAD_TYPES:
            raise HttpError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                f"expected the image file as the body, Content-Type one of {', '.join(UPLOAD_TYPES)}; "
                f"got {ctype or 'none'}",
            )
        body = self._read_body()
        name = f"upload {urllib.parse.unquote(self.headers.get('X-File-Name') or 'upload')[:200]!r}"
        if path == "/api/detect":
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query, keep_blank_values=True)
            return _json(self.server.detect(body, name, query))
        return _json(self.server.embed(body, name))

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "LengthRequired", "send Content-Length, not chunked")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "LengthRequired", "the upload needs a Content-Length")
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0:
            raise HttpError(HTTPStatus.BAD_REQUEST, "BadRequest", f"Content-Length {length_text[:40]!r}")
        limit = self.server.options.max_upload_bytes
        if length > limit:
            if length <= 4 * limit:  # read it away so the client sees the answer, not a reset
                left = length
                while left > 0 and (chunk := self.rfile.read(min(2**16, left))):
                    left -= len(chunk)
            raise HttpError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "UploadTooLarge",
                f"the upload is {length} bytes; this server accepts at most {limit}",
            )
        body = self.rfile.read(length)
        if len(body) != length:
            raise HttpError(
                HTTPStatus.BAD_REQUEST, "BadRequest", f"body ended after {len(body)} of {length} bytes"
            )
        return body

    def log_message(self, format: str, *args) -> None:
        if not self.server.quiet:
            sys.stderr.write(f"sam-onnx serve: {self.address_string()} {format % args}\n")


def _inside(root: Path, relative: str) -> Path:
    """``root / relative`` if that is a file inside ``root`` (symlinks resolved), else 404."""
    parts = Path(relative).parts
    if "\x00" in relative or any(p in ("..", "") for p in parts) or Path(relative).is_absolute():
        raise HttpError(HTTPStatus.NOT_FOUND, "NotFound", "no such file")
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HttpError(HTTPStatus.NOT_FOUND, "NotFound", "no such file")
    return target


def _file(path: Path) -> tuple[int, dict, bytes]:
    ctype = CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    cache = "no-cache" if path.suffix in (".html", ".json") else "max-age=3600"
    return HTTPStatus.OK, {"Content-Type": ctype, "Cache-Control": cache}, path.read_bytes()


def _json(data: dict, status: HTTPStatus = HTTPStatus.OK) -> tuple[int, dict, bytes]:
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    return status, headers, json.dumps(data).encode()


def _query_value(query: dict[str, list[str]], key: str) -> str | None:
    """The one value of ``key`` in the URL's query, None if absent; given twice is a 400."""
    values = query.get(key)
    if values is not None and len(values) > 1:
        twice = f"{key} given {len(values)} times; give it once"
        raise HttpError(HTTPStatus.BAD_REQUEST, "BadRequest", twice)
    return None if values is None else values[0]


def _threshold(query: dict[str, list[str]], key: str) -> float:
    text = _query_value(query, key)
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise InvalidInputError(key, "a number from 0 to 1", repr(text[:40]))
    return value


def _tensor_json(array: np.ndarray) -> dict:
    """A float32 array as ``{shape, dtype, data_b64}`` (little-endian bytes, C order, base64)."""
    data = np.ascontiguousarray(array, dtype="<f4")
    encoded = base64.b64encode(data.tobytes()).decode("ascii")
    return {"shape": list(data.shape), "dtype": "float32", "data_b64": encoded}


def _json_error(status: HTTPStatus, kind: str, message: str) -> tuple[int, dict, bytes]:
    return _json({"error": {"type": kind, "status": int(status), "message": message}}, status)


def make_server(predictor, decoders: dict[str, Path], options: ServeOptions, detector=None) -> DemoServer:
    """A bound (not yet running) server; call ``serve_forever()`` and ``shutdown()`` on it.
    ``detector``: a :class:`sam_onnx.runtime.text.Detector` for the page's text prompts, or None."""
    from ..core.graphs import check_decoders_belong
    from .bundle import check_web_dir

    check_web_dir(options.web_dir)
    check_decoders_belong(decoders, predictor.checkpoint_sha256, "the encoder")
    names = [p.resolve().name for p in options.bundle_dirs]
    for path in options.bundle_dirs:
        if not (path / "bundle.json").is_file():
            raise InvalidInputError(
                f"bundle folder {str(path)!r}", "a sam-onnx bundle (bundle.json)", "none there"
            )
        if names.count(path.resolve().name) > 1:
            raise InvalidInputError(
                f"bundle folder {str(path)!r}", "bundle folders with different names", "the same name twice"
            )
    try:
        return DemoServer(predictor, decoders, options, detector)
    except OSError as exc:
        raise InvalidInputError(
            "--host/--port", "an address this machine can listen on", f"{options.host}:{options.port}: {exc}"
        ) from None
