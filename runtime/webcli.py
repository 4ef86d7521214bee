"""``sam-onnx serve`` and ``sam-onnx bundle``: the command-line side of the web demo."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from sam_onnx.errors import InvalidInputError, SamOnnxError


def run_web_command(args, open_predictor: Callable, log: Callable[[str], None]) -> int:
    """Run ``serve`` or ``bundle`` from parsed arguments; returns the exit status."""
    try:
        if args.command == "serve":
            return _serve(args, open_predictor, log)
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
    from .cli import model_dir
    from .graphs import web_decoder_paths

    return web_decoder_paths(model_dir(args))


def _serve(args, open_predictor: Callable, log: Callable[[str], None]) -> int:
    from .serve import ServeOptions, make_server

    web_dir = _web_dir(args)
    predictor = open_predictor(args)
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
    server = make_server(predictor, decoders, options)
    server.quiet = args.quiet
    print(
        f"sam-onnx serve: {server.url} (model {predictor.variant}, decoders {', '.join(decoders)})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log("stopped")
    finally:
        server.server_close()
    return 0


def _bundle(args, open_predictor: Callable, log: Callable[[str], None]) -> int:
    from sam_onnx.images import load_image

    from .bundle import write_bundle
    from .embedding import ImageEmbedding

    path = args.images[0]
    web_dir = None if args.no_web else _web_dir(args)
    kwargs = {} if args.max_pixels is None else {"max_pixels": args.max_pixels}
    image = load_image(path, **kwargs)
    if args.embedding is not None:
        embedding = ImageEmbedding.load(args.embedding)
    else:
        embedding = open_predictor(args).embed(image)
    decoders = _decoders(args)
    target = write_bundle(args.output, image, embedding, decoders, name=path.name, web_dir=web_dir)
    page = "with the page" if web_dir else "without the page (--no-web)"
    log(f"bundle {target.parent} ({', '.join(decoders)} decoder(s), {page})")
    return 0
