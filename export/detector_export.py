"""Export a Hugging Face Grounding DINO folder to one ONNX graph plus its tokenizer
(:func:`export_detector`, the library function behind ``sam-export-detector``).

Reads a ``GroundingDinoForObjectDetection`` folder (``config.json``, safetensors, the tokenizer's
files, ``preprocessor_config.json`` when present) with transformers, traces
:class:`~.detector_graph.DetectorGraph`, validates it (:mod:`.detector_validate`) and writes, all
or nothing (:mod:`.staging`):

  detector.onnx        the graph, its metadata saying how to feed it (canvas, resize rule, pixel
                       statistics, separator token ids, max_text_len, the tokenizer's sha256)
  tokenizer.json ...   the folder's tokenizer files, copied (the runtime reads tokenizer.json)
  export.json          the manifest: kind, graph, validation figures

The original ``groundingdino_swint_ogc.pth`` layout does not load here: convert it with
transformers' ``convert_grounding_dino_to_hf.py`` first (docs/TEXT.md).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..detector import DETECTOR_FILE, DETECTOR_KIND, DETECTOR_ROLE, TOKENIZER_FILE
from ..errors import CheckpointError, CheckpointNotFoundError, ExportValidationError
from .api import Progress, checkpoint_sha256
from .detector_graph import OPSET, DetectorGraph, separator_ids, without_float64
from .detector_validate import DetectorReport, validate_detector
from .onnx_file import save_model, set_metadata, trace_to_onnx
from .staging import MANIFEST, TOOL_NAME, staged_output

MODEL_TYPE = "grounding-dino"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
# The processor's defaults (transformers' GroundingDinoImageProcessor) when the folder has no
# preprocessor_config.json.
DEFAULT_SIZE = {"shortest_edge": 800, "longest_edge": 1333}
DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)
DEFAULT_CANVAS = 1024


@dataclass
class DetectorExport:
    output_dir: Path
    manifest: dict
    report: DetectorReport | None  # None: validate=False


def export_detector(
    model_dir: str | Path,
    output_dir: str | Path,
    *,
    canvas: int = DEFAULT_CANVAS,
    validate: bool = True,
    log: Callable[[str], None] | None = None,
    progress: bool | None = False,
) -> DetectorExport:
    """Export, validate and write the detector of the Hugging Face folder ``model_dir``.

    ``canvas``: the graph's fixed square input side S; images are resized by the processor's rule
    with ``longest_edge`` at most S and padded to S x S. ``validate=False`` skips the comparison
    with transformers (the manifest's ``validation`` is then null; for benchmarks, whose parity the
    tests prove, as ``sam-export --no-validate``). Raises :class:`CheckpointError` for a
    folder that is not a Grounding DINO model with its tokenizer, :class:`ExportValidationError`
    when the graph disagrees with transformers (nothing is written then)."""
    from transformers import AutoTokenizer, GroundingDinoForObjectDetection

    folder = Path(model_dir)
    config = check_folder(folder)
    steps = Progress(log, progress)
    with steps.step("loading the model"):
        model = GroundingDinoForObjectDetection.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
    check_tokenizer(folder, tokenizer, config["text_config"]["vocab_size"])
    metadata = detector_metadata(folder, config, canvas)
    with staged_output(Path(output_dir)) as stage, tempfile.TemporaryDirectory(dir=stage.parent) as scratch:
        with steps.step("tracing the detector"), warnings.catch_warnings():
            # transformers' shape checks and branches on the fixed canvas (the text length is traced)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            graph = trace_to_onnx(DetectorGraph(model, canvas), opset=OPSET, scratch_dir=Path(scratch))
            without_float64(graph)
        set_metadata(graph, metadata)
        save_model(graph, stage / DETECTOR_FILE)
        for name in TOKENIZER_FILES:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, stage / name)
        report = None
        if validate:
            with steps.step("validating against transformers"):
                report = validate_detector(_session(stage / DETECTOR_FILE), model, tokenizer, canvas)
            if report.failures:
                raise ExportValidationError(report, report.failures)
        manifest = _manifest(folder, metadata, report, steps.timings)
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return DetectorExport(Path(output_dir), manifest, report)


def check_folder(folder: Path) -> dict:
    """The folder's ``config.json`` if it is a Grounding DINO folder with a ``tokenizer.json``."""
    if not folder.exists():
        raise CheckpointNotFoundError(folder, "does not exist")
    if not folder.is_dir():
        raise CheckpointError(
            folder,
            "is a file; expected a Hugging Face GroundingDinoForObjectDetection folder (an original "
            "groundingdino_*.pth converts with transformers' convert_grounding_dino_to_hf.py)",
        )
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(folder, f"no readable config.json ({exc})") from None
    if config.get("model_type") != MODEL_TYPE:
        raise CheckpointError(
            folder, f"config.json's model_type is {config.get('model_type')!r}, expected {MODEL_TYPE!r}"
        )
    if not (folder / TOKENIZER_FILE).is_file():
        raise CheckpointError(folder, f"no {TOKENIZER_FILE}: the detector ships with the model's tokenizer")
    return config


def check_tokenizer(folder: Path, tokenizer, vocab_size: int) -> None:
    """The tokenizer must be the model's: its size and the separators at the model's ids."""
    if len(tokenizer) != vocab_size:
        raise CheckpointError(
            folder, f"{TOKENIZER_FILE} has {len(tokenizer)} tokens, the model's text encoder {vocab_size}"
        )
    ids = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]", ".", "?"])
    if tuple(ids) != separator_ids():
        raise CheckpointError(
            folder,
            f"{TOKENIZER_FILE} maps [CLS] [SEP] . ? to {ids}; "
            f"the model's separators are {list(separator_ids())}",
        )


def detector_metadata(folder: Path, config: dict, canvas: int) -> dict[str, str]:
    """What the runtime needs to feed the graph, and what identifies the model and tokenizer."""
    processor = _read_json(folder / "preprocessor_config.json")
    size = processor.get("size") or DEFAULT_SIZE
    return {
        "role": DETECTOR_ROLE,
        "model_type": MODEL_TYPE,
        "sam_onnx_version": __version__,
        "checkpoint_sha256": checkpoint_sha256(folder),
        "tokenizer_sha256": file_sha256(folder / TOKENIZER_FILE),
        "vocab_size": str(config["text_config"]["vocab_size"]),
        "max_text_len": str(config.get("max_text_len", 256)),
        "num_queries": str(config.get("num_queries", 900)),
        "separator_token_ids": ",".join(map(str, separator_ids())),
        "canvas": str(canvas),
        "shortest_edge": str(min(int(size["shortest_edge"]), canvas)),
        "longest_edge": str(min(int(size["longest_edge"]), canvas)),
        "rescale_factor": repr(float(processor.get("rescale_factor", 1 / 255))),
        "image_mean": ",".join(map(repr, processor.get("image_mean", DEFAULT_MEAN))),
        "image_std": ",".join(map(repr, processor.get("image_std", DEFAULT_STD))),
        "opset": str(OPSET),
    }


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _manifest(folder: Path, metadata: dict[str, str], report: DetectorReport | None, timings) -> dict:
    return {
        "tool": TOOL_NAME,
        "kind": DETECTOR_KIND,
        "sam_onnx_version": __version__,
        "source": str(folder),
        "graphs": {DETECTOR_ROLE: {"file": DETECTOR_FILE, "metadata": metadata}},
        "validation": None if report is None else report.cases,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
