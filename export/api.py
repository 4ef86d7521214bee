"""``export_sam``: a checkpoint in, a directory of validated ONNX graphs out.

The output directory (see :mod:`.staging` for how it is written atomically):

=========================  ===============================================================
``encoder.onnx``           image encoder, fp32 (``encoder.onnx.data`` beside it over 2 GiB)
``decoder.onnx``           the official decoder contract (single mask unless ``multimask``)
``decoder_batched.onnx``   the batched extension, all 4 mask tokens
``decoder_image.onnx``     the fast decoder pair (:mod:`.fast_decoder_graph`): per-image tensors
``decoder_click.onnx``     ... and the per-click graph over them (4 tokens, low-res logits)
``video_heads.onnx`` ...   SAM 2.1: the video graphs (``video_heads``, ``video_mask_prompt``,
                           ``memory_attention``, ``memory_encoder``; :mod:`.sam2_video_plan`)
``encoder.fp16.onnx``      with ``fp16``
``*.int8.onnx``            with ``int8``: encoder, decoder and batched decoder
``export.json``            manifest: options, files, metadata, validation report, timings
=========================  ===============================================================

The family (SAM v1 or SAM 2 / 2.1) is read off the checkpoint; what differs per family (the
graphs planned, their metadata, the validator) is its record in :mod:`.families`; the steps here
are shared.

Every graph carries ``metadata_props`` (see :func:`.plan.graph_metadata`) that the runtime reads to
refuse an encoder and a decoder from different checkpoints. A checkpoint of random weights
(:mod:`sam_onnx.modeling.random_weights`) adds ``weights`` = ``random`` to every graph's metadata
and to ``export.json``; other checkpoints' exports have no ``weights`` key.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx

from .. import __version__
from ..contract import FAST_FILES, VIDEO_FILES
from ..errors import ExportValidationError, ExportWriteError
from ..modeling.checkpoint import checkpoint_weights
from ..modeling.load import load_model
from ..progress import stage as progress_stage
from .anylabeling import CONFIG_FILE, anylabeling_config
from .families import export_family
from .fast_decoder_graph import fast_decoder_pair, fast_metadata
from .fast_validate import check_fast_pair
from .onnx_file import save_model, set_metadata, simplify, trace_to_onnx
from .options import ExportOptions
from .plan import GraphSpec, graph_metadata, layout_metadata
from .precision import to_fp16, to_int8
from .staging import MANIFEST, TOOL_NAME, check_output_dir, staged_output
from .validate import ValidationReport, Validator

_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


@dataclass
class ExportResult:
    output_dir: Path
    files: dict[str, list[Path]]  # graph key -> its files (the .onnx first)
    manifest: dict
    report: ValidationReport


class Progress:
    """Step reporting: a line when a step starts and one with its duration when it ends; between
    them, with ``bars`` (see :mod:`sam_onnx.progress`), a line whose clock runs."""

    def __init__(self, log: Callable[[str], None] | None, bars: bool | None = False) -> None:
        self.log = log or (lambda _msg: None)
        self.bars = bars
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, what: str, *, clock: bool = True) -> Iterator[None]:
        """``clock=False`` for a step that shows its own bar."""
        self.log(f"{what} ...")
        start = time.perf_counter()
        with progress_stage(what, progress=self.bars if clock else False):
            yield
        self.timings[what] = elapsed = time.perf_counter() - start
        self.log(f"{what}: done in {elapsed:.1f} s")


def checkpoint_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a checkpoint file; of a directory, over its weight files' names and bytes."""
    path = Path(path)
    digest = hashlib.sha256()
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.iterdir() if p.suffix in {".safetensors", ".bin"})
    )
    for file in files:
        if path.is_dir():
            digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def fast_decoder_specs(model, common: Mapping[str, str]) -> list[GraphSpec]:
    """The fast decoder pair of ``model`` (SAM v1 or SAM 2), with its metadata."""
    graphs = fast_decoder_pair(model)
    return [
        GraphSpec(key, FAST_FILES[key], wrapper, fast_metadata(common, key, wrapper))
        for key, wrapper in zip(FAST_FILES, graphs, strict=True)
    ]


class _Writer:
    """Writes graphs into the staging directory and remembers each one's files and metadata."""

    def __init__(self, stage: Path, out: Path) -> None:
        self.stage = stage
        self.out = out
        self.files: dict[str, list[Path]] = {}
        self.metadata: dict[str, dict[str, str]] = {}

    def write(self, key: str, model: onnx.ModelProto, filename: str, metadata: dict[str, str]) -> None:
        set_metadata(model, metadata)
        try:
            self.files[key] = save_model(model, self.stage / filename)
        except OSError as exc:
            raise _write_error(exc, self.out / filename) from exc
        self.metadata[key] = metadata


def export_sam(
    checkpoint: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    options: ExportOptions | None = None,
    *,
    images: Mapping[str, np.ndarray] | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool | None = False,
) -> ExportResult:
    """Export ``checkpoint`` (official ``.pth`` or Hugging Face directory) into ``output_dir``.

    Arguments:
      options: see :class:`ExportOptions`.
      images: name -> ``H x W x 3`` uint8 RGB images to validate on (default: three synthetic
        ones, landscape, portrait and tiny).
      log: called with one line per progress step and with the validation table.
      progress: bars for the slow steps and the validation cases on stderr (``None``: when
        stderr is a terminal; see :mod:`sam_onnx.progress`).
    Raises :class:`~sam_onnx.errors.CheckpointError`, :class:`~sam_onnx.errors.OutputDirectoryError`,
    :class:`~sam_onnx.errors.ExportWriteError` or :class:`~sam_onnx.errors.ExportValidationError`;
    in every case nothing is written at ``output_dir``.
    """
    options = options or ExportOptions()
    out = Path(output_dir)
    progress = Progress(log, bars=progress)
    check_output_dir(out)  # fail before the slow steps
    with progress.step(f"loading checkpoint {os.fspath(checkpoint)}"):
        sam = load_model(checkpoint, options.model_type)  # SAM v1 or SAM 2, as the weights say
    with progress.step("hashing checkpoint"):
        sha256 = checkpoint_sha256(checkpoint)
    weights = checkpoint_weights(checkpoint)  # "random" for random_weights' files, else None
    family = export_family(sam.variant)
    common = family.metadata(
        graph_metadata(family.family, sam.variant.name, sha256, options.opset), sam.variant
    )
    if weights is not None:  # absent otherwise: the graphs of every other checkpoint are unchanged
        common = {**common, "weights": weights}
    common = layout_metadata(common, options.layout)
    specs = family.plan(sam, options, common)
    if options.decoder and options.fast_decoder and options.extensions:
        specs += fast_decoder_specs(sam, common)
    video_note = None
    if family.video is not None:  # SAM 2.1's video graphs, when the checkpoint has their modules
        video_specs, video_note = family.video(sam, checkpoint, options, common)
        specs += video_specs
    validator = Validator(sam, family.validation, images, progress=progress.bars)
    with staged_output(out) as stage:
        writer = _Writer(stage, out)
        scratch = stage / ".scratch"
        scratch.mkdir()
        for spec in specs:
            with progress.step(f"exporting {spec.filename}"):
                try:
                    model = trace_to_onnx(spec.wrapper, opset=options.opset, scratch_dir=scratch)
                except OSError as exc:  # the exporter writes large models to the scratch directory
                    raise _write_error(exc, out / spec.filename) from exc
                model, spec.simplify_note = simplify(model) if options.simplify else (model, "off")
                writer.write(spec.key, model, spec.filename, spec.metadata)
                del model
        derived = _reduced_precision(options, specs, writer, scratch, progress, family.int8_encoder_max_rows)
        shutil.rmtree(scratch)

        if options.validate:
            for spec in specs:
                if spec.key == "decoder_image":  # validated with its click graph
                    continue
                with progress.step(f"validating {spec.filename} against PyTorch", clock=False):
                    if spec.check is not None:  # a client layout's graph
                        spec.check(validator, spec.filename, stage / spec.filename, spec.wrapper)
                        continue
                    if spec.key == "decoder_click":
                        pair = (stage / FAST_FILES["decoder_image"], stage / spec.filename)
                        check_fast_pair(validator, "decoder_image+click", *pair, sam.variant.family)
                        continue
                    check = validator.check_encoder if spec.key == "encoder" else validator.check_decoder
                    check(spec.filename, stage / spec.filename, spec.wrapper)
        files = writer.files
        for key, (ref_key, role) in derived.items():
            name, ref_name = files[key][0].name, files[ref_key][0].name
            with progress.step(f"measuring {name} against {ref_name}", clock=False):
                validator.check_precision(
                    name,
                    stage / name,
                    ref_name,
                    stage / ref_name,
                    role=role,
                    encoder_kind=options.encoder_input,
                    min_mask_iou=options.min_mask_iou,
                )
        report = validator.report
        progress.log(report.format())
        manifest = _manifest(checkpoint, sam.variant, sha256, options, specs, writer, report, progress)
        if weights is not None:
            manifest["weights"] = weights
        if video_note is not None:
            manifest["video_graphs"] = video_note
        _write_text(stage / MANIFEST, json.dumps(manifest, indent=1), out)
        if options.anylabeling_config:
            name = f"sam_onnx_{sam.variant.name}_{sha256[:8]}"
            text = anylabeling_config(name, f"{family.family.label} {sam.variant.name} (sam-onnx)")
            _write_text(stage / CONFIG_FILE, text, out)
        if report.failures and options.validate:
            raise ExportValidationError(report, report.failures)
    final = {key: [out / p.name for p in paths] for key, paths in writer.files.items()}
    return ExportResult(out, final, manifest, report)


def _reduced_precision(options, specs, writer, scratch, progress, max_rows) -> dict[str, tuple[str, str]]:
    """Write the fp16/int8 copies; returns their key -> (fp32 key, role)."""
    derived: dict[str, tuple[str, str]] = {}
    jobs = []
    if options.fp16 and options.encoder:
        jobs.append(("encoder", "fp16"))
    if options.int8:
        # the video graphs have no reduced-precision copies yet (their quality is not measured)
        jobs += [(spec.key, "int8") for spec in specs if spec.key not in {**FAST_FILES, **VIDEO_FILES}]
    by_key = {spec.key: spec for spec in specs}
    for key, precision in jobs:
        spec = by_key[key]
        filename = spec.filename.replace(".onnx", f".{precision}.onnx")
        with progress.step(f"writing {filename}"):
            fp32 = onnx.load(str(writer.stage / spec.filename), load_external_data=True)
            role = "encoder" if key == "encoder" else "decoder"
            rows = max_rows if role == "encoder" else None  # the family's int8 encoder rule
            model = to_fp16(fp32) if precision == "fp16" else to_int8(fp32, scratch, role, max_rows=rows)
            writer.write(f"{key}_{precision}", model, filename, {**spec.metadata, "precision": precision})
        derived[f"{key}_{precision}"] = (key, role)
    return derived


def _write_text(path: Path, text: str, out: Path) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        raise _write_error(exc, out / path.name) from exc


def _write_error(exc: OSError, path: Path) -> ExportWriteError:
    if exc.errno in _DISK_FULL:
        return ExportWriteError(path, f"no space left (disk full or file size limit): {exc.strerror}")
    return ExportWriteError(path, f"{type(exc).__name__}: {exc.strerror or exc}")


def _manifest(checkpoint, variant, sha256, options, specs, writer, report, progress) -> dict:
    by_key = {spec.key: spec for spec in specs}
    graphs = {}
    for key, paths in writer.files.items():
        spec = by_key.get(key)
        graphs[key] = {
            "file": paths[0].name,
            "files": [p.name for p in paths],
            "bytes": sum(p.stat().st_size for p in paths),
            "metadata": dict(sorted(writer.metadata[key].items())),
        }
        if spec is not None:
            graphs[key]["simplify"] = spec.simplify_note
    return {
        "tool": TOOL_NAME,
        "version": __version__,
        "checkpoint": os.path.basename(os.path.abspath(checkpoint)),
        "checkpoint_sha256": sha256,
        "family": variant.family,
        "variant": variant.name,
        "options": asdict(options),
        "python": sys.version.split()[0],
        "graphs": graphs,
        "validation": report.to_json() if (options.validate or report.quality) else None,
        "timings_s": {k: round(v, 3) for k, v in progress.timings.items()},
    }
