"""``sam-onnx``: a thin command line over :class:`~sam_onnx.runtime.SamPredictor` (no torch).

    sam-onnx embed IMAGE|FOLDER... -m MODEL_DIR -o EMB.npy|OUT_DIR
    sam-onnx predict IMAGE|FOLDER... -m MODEL_DIR --point X,Y[,LABEL]... [--box X0,Y0,X1,Y1] -o OUT_DIR
    sam-onnx amg IMAGE|FOLDER... -m MODEL_DIR -o OUT_DIR [--format json|png] [generator options]
    sam-onnx amg|embed ... --engine ray [--address ADDR] [--workers N] [--threads-per-worker T]
    sam-onnx track VIDEO -m MODEL_DIR -o OUT_DIR --point F:OBJ:X,Y... (SAM 2.x: :mod:`.video.trackcli`)
    sam-onnx track VIDEOS -m MODEL_DIR -o OUT_DIR --prompts PROMPTS_DIR [--engine ray ...]

``MODEL_DIR`` is a ``sam-export`` output directory (or set ``SAM_ONNX_MODEL``). ``predict`` writes
per image ``NAME_mask.png`` (``NAME_mask0..2.png`` with ``--multimask``), ``NAME_overlay.png`` (the
best mask and the prompt drawn on the image) and ``NAME.json`` (scores, areas, boxes, timings).
``amg`` writes per image ``NAME.json`` (SA-1B style: image info and annotations with COCO RLE) or
``NAME/0.png ... + metadata.csv`` (the official ``amg.py`` layout), and ``NAME_overlay.png``;
images whose outputs exist are skipped unless ``--overwrite`` (``embed`` too). ``--engine ray``
runs ``amg`` and ``embed`` on Ray Data (:mod:`sam_onnx.runtime.batch.distributed`), here or on a cluster.

Exit status: 0 done; 1 some images of a batch failed (each reported, the others done);
2 bad arguments, model, or a single image that could not be processed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from sam_onnx import __version__
from sam_onnx.errors import InvalidInputError, SamOnnxError
from sam_onnx.images import DEFAULT_MAX_PIXELS
from sam_onnx.progress import bar as progress_bar
from sam_onnx.progress import plural
from sam_onnx.progress import write as write_progress

from .batch.jobs import IMAGE_SUFFIXES, AmgJob, EmbedJob, JobSpec, find_images, plan_items
from .core.graphs import MODEL_ENV, PRECISIONS, model_dir_of
from .core.session import OPENVINO_PRECISIONS, SessionConfig
from .text.textcli import add_text_options, check_text_args, text_task
from .video.trackcli import add_track_command, run_track

__all__ = ["IMAGE_SUFFIXES", "build_parser", "find_images", "main", "run_batch"]


def build_parser() -> argparse.ArgumentParser:
    has_page, page_line = web_page_line()
    p = argparse.ArgumentParser(
        prog="sam-onnx",
        description="Segment Anything on onnxruntime: embed images and predict masks.",
        epilog=None if has_page else page_line,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the version's two lines stay two
    )
    version = f"%(prog)s {__version__}\n{page_line.replace('%', '%%')}"
    p.add_argument("--version", action="version", version=version)
    commands = p.add_subparsers(dest="command", required=True)
    embed = commands.add_parser("embed", help="run the image encoder and save embeddings (.npy + .json)")
    predict = commands.add_parser("predict", help="masks for point and box prompts: PNGs and JSON")
    for sub in (embed, predict):
        sub.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or globs")
        _model_options(sub)
    embed.add_argument(
        "-o", "--output", type=Path, required=True, help="EMB.npy for one image, else an output folder"
    )
    predict.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    predict.add_argument(
        "--point",
        type=_point,
        action="append",
        metavar="X,Y[,LABEL]",
        help="a click in image pixels; LABEL 1 positive (default) or 0 negative; repeat for more",
    )
    predict.add_argument("--box", type=_box, metavar="X0,Y0,X1,Y1", help="a box in image pixels")
    predict.add_argument("--multimask", action="store_true", help="three masks instead of one")
    predict.add_argument(
        "--embedding", type=Path, metavar="EMB.npy", help="a saved embedding of the (single) image"
    )
    add_text_options(predict)
    amg = commands.add_parser("amg", help="segment everything: SA-1B JSON or mask PNGs, and an overlay")
    amg.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or globs")
    _model_options(amg)
    amg.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    amg.add_argument(
        "--format",
        choices=("json", "png"),
        default="json",
        help="json: NAME.json, SA-1B style with COCO RLE (default); png: NAME/0.png... + metadata.csv",
    )
    for name, kind, text in AMG_FLAGS:
        amg.add_argument(f"--{name.replace('_', '-')}", type=kind, help=text)
    amg.add_argument(
        "--use-m2m",
        action="store_const",
        const=True,
        help="SAM 2: refine each mask once with its own low-res logits (official use_m2m)",
    )
    amg.add_argument(
        "--single-mask",
        dest="multimask_output",
        action="store_const",
        const=False,
        help="SAM 2: one mask per click (SAM 2's single-mask rule) instead of three",
    )
    for sub in (embed, amg):
        sub.add_argument("--overwrite", action="store_true", help="redo images whose outputs exist")
        _engine_options(sub)
    _web_commands(commands)
    add_track_command(commands, partial(_model_options, images=False), _engine_options)
    for sub in commands.choices.values():  # errors found after parsing show the command's own usage
        sub.set_defaults(command_parser=sub)
    return p


def web_page_line() -> tuple[bool, str]:
    """(whether the web page is there, a line saying so) for ``--version`` and, when it is missing,
    ``--help``: pip shows nothing of what the build says (setup.py's warning) unless run with -v,
    so a wheel built without npm would otherwise be found out only when serve/bundle/demo refuse."""
    from .server.bundle import build_page_hint, default_web_dir

    page = default_web_dir()
    if page is not None:
        return True, f"web page: {page}"
    return False, f"web page: not installed, so serve, bundle and demo cannot run; {build_page_hint()}"


def _web_commands(commands) -> None:
    serve = commands.add_parser(
        "serve", help="serve the web demo; uploads are embedded here, decoded in the browser"
    )
    bundle = commands.add_parser("bundle", help="write a static web bundle: image, embedding, decoders, page")
    bundle.add_argument(
        "images", type=Path, nargs="?", metavar="IMAGE", help="the image (optional with --with-encoder)"
    )
    for sub in (serve, bundle):
        _model_options(sub)
        sub.add_argument("--web", type=Path, help="the built page (default: $SAM_ONNX_WEB or demo_web/dist)")
    bundle.add_argument(
        "-o", "--output", type=Path, required=True, help="bundle folder (new, or an earlier bundle)"
    )
    bundle.add_argument("--embedding", type=Path, metavar="EMB.npy", help="a saved embedding of the image")
    bundle.add_argument("--no-web", action="store_true", help="leave the page out (bundle files only)")
    bundle.add_argument(
        "--with-encoder",
        action="store_true",
        help="copy the fp32 encoder in too: the page embeds dropped images itself, offline",
    )
    serve.add_argument(
        "--bundle", type=Path, action="append", metavar="DIR", help="a sam-onnx bundle to serve (repeatable)"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    serve.add_argument("--max-upload-mb", type=float, default=32.0, help="largest upload in MiB (default 32)")
    serve.add_argument(
        "--max-pending", type=int, default=4, help="uploads waiting for the encoder before 429"
    )
    serve.add_argument(
        "--detector",
        type=Path,
        metavar="DIR",
        help="the folder sam-export-detector wrote: the page gets a text field (docs/TEXT.md)",
    )
    from .server.webcli import add_demo_parser

    add_demo_parser(commands)


# Generator options on the command line; None (not given) keeps AmgOptions' default.
AMG_FLAGS = (
    ("points_per_side", int, "grid of n x n clicks (default 32)"),
    ("points_per_batch", int, "clicks per decoder run (default 64)"),
    ("pred_iou_thresh", float, "keep masks with predicted IoU above (default 0.88; SAM 2: 0.8)"),
    ("stability_score_thresh", float, "keep masks with stability at least (default 0.95)"),
    ("stability_score_offset", float, "logit offset of the stability score (default 1.0)"),
    ("box_nms_thresh", float, "box IoU for NMS within a crop (default 0.7)"),
    ("crop_n_layers", int, "layers of crops (default 0)"),
    ("crop_nms_thresh", float, "box IoU for NMS across crops (default 0.7)"),
    ("crop_overlap_ratio", float, "crop overlap (default 512/1500)"),
    ("crop_n_points_downscale_factor", int, "points per side shrink per layer (default 1)"),
    ("min_mask_region_area", int, "fill holes / drop islands under this area (default 0: off)"),
)


def _engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: one image after another here (default); ray: Ray Data workers (the [ray] extra)",
    )
    p.add_argument(
        "--address", help="Ray cluster to join (ray start --head prints it; default: start one here)"
    )
    p.add_argument(
        "--workers", type=int, help="Ray workers, one model each (default: CPUs / threads per worker)"
    )
    p.add_argument(
        "--threads-per-worker",
        type=int,
        help="onnxruntime threads and CPUs per Ray worker (default 4, at most the CPUs)",
    )


def _model_options(p: argparse.ArgumentParser, *, images: bool = True) -> None:
    """The options that open an export (``images``: also the image predictor's own)."""
    p.add_argument("-m", "--model", type=Path, help=f"sam-export output directory (default: ${MODEL_ENV})")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="encoder graph to use (ov-int8: python -m sam_onnx.export.openvino_int8 writes it)",
    )
    p.add_argument(
        "--providers",
        default="auto",
        help="comma-separated, best first: auto, cpu, openvino, cuda, tensorrt (default auto: openvino "
        "where onnxruntime-openvino is installed, else cpu; the engine that runs is printed)",
    )
    p.add_argument(
        "--openvino-precision",
        choices=OPENVINO_PRECISIONS,
        default="auto",
        help="OpenVINO's compute precision (default auto: bf16 where the CPU has native bf16)",
    )
    p.add_argument("--strict", action="store_true", help="fail if a requested provider is not in use")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (default: one per core)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors, no progress bars")
    if not images:
        return
    p.add_argument("--max-pixels", type=int, help="refuse larger images (default: Pillow's limit)")
    p.add_argument(
        "--no-fast-decoder",
        action="store_true",
        help="leave the export's fast decoder pair out: every prompt through the official-contract "
        "decoder (decoder_batched.onnx or decoder.onnx), the page's clicks too (serve, bundle)",
    )


def _numbers(text: str, counts: tuple[int, ...], what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in counts:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return values


def _point(text: str) -> tuple[float, float, int]:
    values = _numbers(text, (2, 3), "X,Y or X,Y,LABEL (numbers)")
    label = values[2] if len(values) == 3 else 1
    if label not in (0, 1):
        raise argparse.ArgumentTypeError(f"LABEL must be 1 (positive) or 0 (negative), got {text!r}")
    return values[0], values[1], int(label)


def _box(text: str) -> list[float]:
    return _numbers(text, (4,), "X0,Y0,X1,Y1 (four numbers)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "predict" and not (args.point or args.box or args.text is not None):
        args.command_parser.error("predict needs at least one --point, a --box or --text")
    log = (lambda msg: None) if args.quiet else write_progress  # lines above any progress bar
    if args.command == "track":
        return run_track(args, log, _progress(args))
    if args.command in ("serve", "bundle", "demo"):
        from .server.webcli import run_web_command

        return run_web_command(args, _open_predictor, log, _open_detector)
    if getattr(args, "engine", "local") == "ray":
        return _run_on_ray(args, log)
    for flag in ("address", "workers", "threads_per_worker"):  # silently ignored, they would mislead
        if getattr(args, flag, None) is not None:
            args.command_parser.error(
                f"--{flag.replace('_', '-')} needs --engine ray (local runs here, in turn)"
            )
    try:
        if args.command == "predict":
            check_text_args(args)
        images = find_images(args.images)
        if args.command == "predict" and args.embedding and len(images) != 1:
            raise InvalidInputError("--embedding", "one image to go with it", f"{len(images)} images")
        predictor = _open_predictor(args)
        model = f"{predictor.variant} ({predictor.rules.label})"
        decoder = "" if args.command == "embed" else f", decoder: {predictor.decoder_label}"
        note = f" ({predictor.decoder_note})" if predictor.decoder_note and decoder else ""
        log(f"model {model} on {predictor.engine}{decoder}, {plural(len(images), 'image')}{note}")
        make_task = {"embed": _embed_task, "predict": _predict_task, "amg": _amg_task}[args.command]
        if args.command == "predict" and args.text is not None:
            task = text_task(args, predictor, _output_names(images), session_config(args))
        else:
            task = make_task(args, predictor, images)
    except SamOnnxError as exc:
        print(f"sam-onnx: error: {exc}", file=sys.stderr)
        return 2
    return run_batch(images, task, log, progress=_progress(args))


def _run_on_ray(args, log: Callable[[str], None]) -> int:
    """``amg`` / ``embed`` on Ray Data; the summary line at the end, each failure on its own line."""
    try:
        from .batch.distributed import RayOptions, list_inputs, run_job

        options = RayOptions(args.address, args.workers, args.threads_per_worker)
        spec = job_spec(args)
        summary = run_job(spec, list_inputs(args.images), options, log=log)
    except SamOnnxError as exc:
        print(f"sam-onnx: error: {exc}", file=sys.stderr)
        return 2
    return summary.report(log)


def job_spec(args, num_images: int = 0) -> JobSpec:
    """The :class:`JobSpec` of an ``amg`` or ``embed`` command line (of ``num_images`` images)."""
    names = [name for name, _, _ in AMG_FLAGS] + ["use_m2m", "multimask_output"]
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    return JobSpec.from_args(
        args,
        max_pixels=DEFAULT_MAX_PIXELS if args.max_pixels is None else args.max_pixels,
        output_format=getattr(args, "format", "json"),
        fast_decoder=not args.no_fast_decoder,
        single_file=args.command == "embed" and num_images == 1 and args.output.suffix == ".npy",
        amg_options=given,
    )


def run_batch(
    images: list[Path],
    task: Callable[[Path], str],
    log: Callable[[str], None],
    *,
    progress: bool | None = False,
) -> int:
    """Run ``task`` on each image; report each failure and go on. Returns the exit status.
    ``progress``: a bar over the images (see :mod:`sam_onnx.progress`), for folders."""
    failed = 0
    several = len(images) > 1
    with progress_bar(
        total=len(images), desc="images", unit="image", progress=progress if several else False
    ) as bar:
        for i, path in enumerate(images, 1):
            start = time.perf_counter()
            try:
                summary = task(path)
            except (SamOnnxError, OSError) as exc:
                failed += 1
                write_progress(f"sam-onnx: error: [{i}/{len(images)}] {path}: {exc}")
                continue
            finally:
                bar.update()
            log(f"[{i}/{len(images)}] {path.name}: {summary} ({time.perf_counter() - start:.2f} s)")
    if failed:
        print(f"sam-onnx: {failed} of {plural(len(images), 'image')} failed", file=sys.stderr)
        return 2 if len(images) == 1 else 1
    return 0


def _progress(args) -> bool | None:
    """Bars when stderr is a terminal, none with ``-q``."""
    return False if args.quiet else None


def _open_predictor(args):
    from .core.predictor import SamPredictor

    model = model_dir(args)
    config = session_config(args)
    kwargs = {} if args.max_pixels is None else {"max_pixels": args.max_pixels}
    # a saved embedding needs no encoder: a --decoder-only export will do
    encoder = getattr(args, "embedding", None) is None
    return SamPredictor.from_export(
        model,
        precision=args.precision,
        config=config,
        encoder=encoder,
        progress=_progress(args),
        use_fast_decoder=not args.no_fast_decoder,
        **kwargs,
    )


def _open_detector(args, predictor):
    """``serve --detector``: the text detector, on the predictor's providers and threads."""
    from .text.detector import Detector

    return Detector(args.detector, config=session_config(args), max_pixels=predictor.max_pixels)


def session_config(args) -> SessionConfig:
    """Providers, strictness, threads and OpenVINO precision of a command line."""
    return SessionConfig(
        providers=tuple(p.strip() for p in args.providers.split(",") if p.strip()),
        strict=args.strict,
        intra_op_threads=args.threads,
        openvino_precision=args.openvino_precision,
    )


def model_dir(args) -> Path:
    """The model directory: ``-m`` or ``$SAM_ONNX_MODEL`` (:func:`.graphs.model_dir_of`)."""
    return model_dir_of(args.model)


def _output_names(images: list[Path]) -> dict[Path, str]:
    """Output base name per image: the stem, or the file name where two stems collide."""
    return {path: item.name for path, item in zip(images, plan_items(images), strict=True)}


def _embed_task(args, predictor, images: list[Path]) -> Callable[[Path], str]:
    spec = job_spec(args, len(images))
    if not spec.single_file:
        _make_dir(args.output)
    return _job_task(EmbedJob(spec, predictor), images)


def _job_task(job: AmgJob | EmbedJob, images: list[Path]) -> Callable[[Path], str]:
    """One image of ``images`` at a time through ``job``, skipping those whose outputs exist."""
    items = dict(zip(images, plan_items(images), strict=True))

    def run(path: Path) -> str:
        if job.spec.is_done(items[path]):
            return "done before, skipped"
        return job.run(items[path], path.read_bytes()).summary

    return run


def _predict_task(args, predictor, images: list[Path]) -> Callable[[Path], str]:
    from sam_onnx.images import load_image

    from .batch.outputs import save_prediction
    from .core.embedding import ImageEmbedding
    from .core.prompts import check_prompt

    names = _output_names(images)
    points = np.array([p[:2] for p in args.point], np.float64) if args.point else None
    labels = np.array([p[2] for p in args.point], np.int64) if args.point else None
    box = np.array(args.box, np.float64) if args.box else None
    # once, before any image is encoded: a swapped box fails at once, not after each encoder run
    check_prompt(points, labels, box, None, None, max_points=predictor.max_points)
    saved = ImageEmbedding.load(args.embedding, family=predictor.family) if args.embedding else None
    _check_predict_inputs_kept(args, images, names, saved)
    _make_dir(args.output)

    def predict(path: Path) -> str:
        t0 = time.perf_counter()
        image = load_image(path, max_pixels=predictor.max_pixels)
        if saved is not None and saved.orig_hw != image.shape[:2]:
            (h, w), (saved_h, saved_w) = image.shape[:2], saved.orig_hw
            raise InvalidInputError(
                f"embedding {str(args.embedding)!r}",
                f"the embedding of this image ({h} x {w} pixels, H x W)",
                f"the embedding of an image of {saved_h} x {saved_w} pixels",
            )
        # the range check needs the image's size; it too comes before the encoder
        check_prompt(points, labels, box, None, image.shape[:2], max_points=predictor.max_points)
        emb = saved if saved is not None else predictor.embed(image)
        t1 = time.perf_counter()
        pred = predictor.predict(points, labels, box, multimask_output=args.multimask, embedding=emb)
        timings = {"embed": round(t1 - t0, 4), "decode": round(time.perf_counter() - t1, 4)}
        prompt = {"point_coords": points, "point_labels": labels, "box": box}
        info = {"image": str(path), "model": _model_info(args, predictor), "seconds": timings}
        summary = save_prediction(args.output, names[path], image, pred, prompt, info)
        best = summary["masks"][summary["best"]]
        return (
            f"{plural(len(summary['masks']), 'mask')}, best score {best['score']:.3f}, area {best['area']} px"
        )

    return predict


def _check_predict_inputs_kept(args, images: list[Path], names: dict[Path, str], saved) -> None:
    """Refuse (:class:`~sam_onnx.errors.OutputOverwritesInputError`) before any work when a file
    ``predict`` would write is one of its inputs: an image, or the ``--embedding``'s files
    (``predict x.png --embedding out/x.npy -o out`` would write its JSON over ``out/x.json``)."""
    from .batch.outputs import check_inputs_kept, prediction_files
    from .core.embedding import embedding_paths, feature_paths

    inputs = {path: "image" for path in images}
    if saved is not None:
        npy, sidecar = embedding_paths(args.embedding)
        inputs |= {path: "embedding" for path in feature_paths(npy, saved.rules)}
        inputs[sidecar] = "embedding sidecar"
    num_masks = 3 if args.multimask else 1
    outputs = []
    for path in images:
        masks, overlay, summary = prediction_files(names[path], num_masks)
        outputs += [args.output / file for file in (*masks, overlay, summary)]
    check_inputs_kept(outputs, inputs)


def _amg_task(args, predictor, images: list[Path]) -> Callable[[Path], str]:
    _make_dir(args.output)
    return _job_task(AmgJob(job_spec(args), predictor), images)


def _model_info(args, predictor) -> dict:
    return {
        "family": predictor.family,
        "variant": predictor.variant,
        "checkpoint_sha256": predictor.checkpoint_sha256,
        "precision": args.precision,
        "providers": predictor.providers,
        "engine": predictor.engine,  # with OpenVINO's compute precision (bf16 is never silent)
    }


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(
            f"output folder {str(path)!r}", "a folder that can be created", exc.strerror or str(exc)
        ) from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
