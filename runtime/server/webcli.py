"""``sam-onnx serve``, ``sam-onnx bundle`` and ``sam-onnx demo``: the command-line side of the web demo."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from sam_onnx.errors import InvalidInputError, SamOnnxError

from ..core.graphs import model_dir_of


def run_web_command(
    args, open_predictor: Callable, log: Callable[[str], None], open_detector: Callable | None = None
) -> int:
    """Run ``serve``, ``bundle`` or ``demo`` from parsed arguments; returns the exit status.
    ``open_detector(args, predictor)``: the text detector of ``serve --detector``."""
    try:
        if args.command == "serve":
            return _serve(args, open_predictor, log, open_detector)
        if args.command == "demo":
            return _demo(args, log)
        return _bundle(args, open_predictor, log)
    except (SamOnnxError, OSError) as exc:
        print(f"sam-onnx: error: {exc}", file=sys.stderr)
        return 2


def _web_dir(args) -> Path:
    """The built page: ``--web``, else :func:`.bundle.default_web_dir`; refused loudly if none."""
    from . import bundle

    if args.web is not None:
        return bundle.check_web_dir(args.web)
    found = bundle.default_web_dir()
    if found is None:
        skip = "; or --no-web for a bundle without it" if args.command == "bundle" else ""
        raise InvalidInputError(
            "web page",
            f"the built page (index.html): --web, ${bundle.WEB_ENV}, the installed package or demo_web/dist",
            f"none; {bundle.build_page_hint()}{skip}",
        )
    return found


def _decoders(args) -> dict[str, Path]:
    """The export's official-contract decoders (``make_server`` and ``write_bundle`` check them)."""
    from ..core.graphs import web_decoder_paths

    return web_decoder_paths(model_dir_of(args.model))


def _serve(args, open_predictor: Callable, log: Callable[[str], None], open_detector: Callable | None) -> int:
    from .serve import ServeOptions, make_server

    web_dir = _web_dir(args)
    predictor = open_predictor(args)
    detector = None
    if getattr(args, "detector", None) is not None:
        if open_detector is None:
            raise InvalidInputError("--detector", "a command that opens detectors", "serve without one")
        detector = open_detector(args, predictor)
    decoders = _decoders(args)
    extra = {} if args.max_pixels is None else {"max_pixels": args.max_pixels}
    options = ServeOptions(
        web_dir=web_dir,
        bundle_dirs=tuple(args.bundle or ()),
        host=args.host,
        port=args.port,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pending=args.max_pending,
        **extra,
    )
    server = make_server(predictor, decoders, options, detector)
    return _serve_until_stopped(server, args, log)


def _serve_until_stopped(server, args, log: Callable[[str], None]) -> int:
    server.quiet = args.quiet
    decoders = ", ".join(server.decoders) + (", fast decoder pair" if server.fast else "")
    decoders += "" if getattr(server, "detector", None) is None else "; text prompts"
    print(f"sam-onnx serve: {server.url} (model {server.predictor.variant}, decoders {decoders})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log("stopped")
    finally:
        server.server_close()
    return 0


def add_demo_parser(commands) -> None:
    """The ``sam-onnx demo`` subcommand (see :mod:`sam_onnx.demo`)."""
    demo = commands.add_parser(
        "demo", help="one command to try the web demo offline: checkpoint, export, sample image, server"
    )
    demo.add_argument(
        "--checkpoint", type=Path, help="SAM weights (.pth or HF folder); default: random weights"
    )
    demo.add_argument(
        "--variant", choices=("vit_b", "vit_l", "vit_h", "tiny"), help="random-weight model (default vit_b)"
    )
    demo.add_argument("--dir", type=Path, default=Path("sam-onnx-demo"), help="work folder, reused")
    demo.add_argument("--web", type=Path, help="the built page (default: found as for serve)")
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    demo.add_argument("-q", "--quiet", action="store_true", help="print only errors")


def _demo(args, log: Callable[[str], None]) -> int:
    from sam_onnx.demo import RANDOM_WEIGHTS_NOTICE, make_demo_server, prepare_demo

    web_dir = _web_dir(args)  # before the minutes of export
    given = {} if args.variant is None else {"variant": args.variant}
    files = prepare_demo(args.dir, checkpoint=args.checkpoint, log=log, **given)
    server = make_demo_server(files, web_dir, host=args.host, port=args.port)
    if files.random_weights:
        print(RANDOM_WEIGHTS_NOTICE, flush=True)
    print(f"open {server.url} in a browser: the sample image is loaded; drop any image to segment it")
    return _serve_until_stopped(server, args, log)


def _bundle(args, open_predictor: Callable, log: Callable[[str], None]) -> int:
    from sam_onnx.images import load_image

    from ..core.embedding import ImageEmbedding
    from ..core.fast_decoder import fast_decoder_paths
    from ..core.graphs import export_graph_paths
    from .bundle import write_bundle

    path = args.images
    if path is None and not args.with_encoder:
        raise InvalidInputError(
            "bundle", "an IMAGE, or --with-encoder for a page that embeds images itself", "neither"
        )
    web_dir = None if args.no_web else _web_dir(args)
    decoders = _decoders(args)
    encoder = export_graph_paths(model_dir_of(args.model), "fp32")[0] if args.with_encoder else None
    fast = None if args.no_fast_decoder else fast_decoder_paths(model_dir_of(args.model))
    image = embedding = None
    if path is not None:
        image = load_image(path, **({} if args.max_pixels is None else {"max_pixels": args.max_pixels}))
        if args.embedding is not None:
            embedding = ImageEmbedding.load(args.embedding)
        else:
            embedding = open_predictor(args).embed(image)
    name = path.name if path is not None else "image"
    target = write_bundle(
        args.output,
        image,
        embedding,
        decoders,
        name=name,
        web_dir=web_dir,
        encoder=encoder,
        fast_decoder=fast,
    )
    page = "with the page" if web_dir else "without the page (--no-web)"
    parts = [f"{', '.join(decoders)} decoder(s)", page]
    if fast is not None:
        parts.append("the fast decoder pair")
    if encoder is not None:
        parts.append("the encoder: the page embeds images itself")
    log(f"bundle {target.parent} ({', '.join(parts)})")
    return 0
