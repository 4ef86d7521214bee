"""Opening an encoder and a decoder that belong together, from files or an export directory.

Every graph ``sam-export`` writes carries ``metadata_props`` (role, variant, checkpoint_sha256,
decoder mode ...). Before any image is embedded we check that the encoder and the decoder are the
roles they claim, come from the same checkpoint, and that the decoder returns all four mask tokens
(the official predictor's multimask and single-mask outputs both need them).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sam_onnx.contract import DECODER_INPUTS, DEFAULT_LAYOUT
from sam_onnx.detector import DETECTOR_KIND
from sam_onnx.errors import InvalidInputError, ModelLoadError, ModelMismatchError
from sam_onnx.families import DEFAULT_FAMILY, family_of, label

from .session import SessionConfig, engine_label, open_session

MANIFEST = "export.json"
MODEL_ENV = "SAM_ONNX_MODEL"  # the export directory when a command is given no -m
# ov-int8: the nncf int8 encoder for the OpenVINO provider (sam_onnx.export.openvino_int8).
PRECISIONS = ("fp32", "fp16", "int8", "ov-int8")
# Per precision, the export.json graph keys to try, in order of preference.
ENCODER_KEYS = {
    "fp32": ("encoder",),
    "fp16": ("encoder_fp16",),
    "int8": ("encoder_int8",),
    "ov-int8": ("encoder_ov_int8",),
}
DECODER_KEYS = {
    "fp32": ("decoder_batched", "decoder"),
    "fp16": ("decoder_batched", "decoder"),  # the decoder is small; fp16 applies to the encoder
    "int8": ("decoder_batched_int8", "decoder_int8"),
    "ov-int8": ("decoder_batched", "decoder"),
}
GRAPH_KEYS = ("encoder", "encoder_fp16", "encoder_int8", "decoder", "decoder_batched", "decoder_int8")
GRAPH_KEYS += ("decoder_batched_int8", "encoder_ov_int8")
ENCODER_HINT = (
    "an image must be encoded: export the encoder with sam-export (without --decoder-only, with --fp16 "
    "or --int8 for those precisions); a saved embedding (--embedding) needs no encoder"
)
# File names sam-export gives each graph key (used when a directory has no export.json).
DEFAULT_FILES = {key: key.replace("_fp16", ".fp16").replace("_int8", ".int8") + ".onnx" for key in GRAPH_KEYS}
DEFAULT_FILES["encoder_ov_int8"] = "encoder.ov-int8.onnx"


@dataclass(frozen=True)
class Graph:
    """An open onnxruntime session with what we know about it.

    Attributes:
      path: the ``.onnx`` file.
      session: the ``onnxruntime.InferenceSession``.
      metadata: the graph's ``metadata_props``.
      input_names, output_names: in graph order.
      engine: the provider that runs it, with OpenVINO's precision and why (``engine_label``).
    """

    path: Path
    session: object
    metadata: dict[str, str]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    engine: str = ""

    @classmethod
    def open(cls, path: str | os.PathLike[str], config: SessionConfig, *, role: str) -> Graph:
        session = open_session(path, config, role=role)
        return cls(
            Path(path),
            session,
            dict(session.get_modelmeta().custom_metadata_map),
            tuple(i.name for i in session.get_inputs()),
            tuple(o.name for o in session.get_outputs()),
            engine_label(session, config, role),
        )

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()


def export_graph_paths(
    model_dir: str | os.PathLike[str], precision: str = "fp32", *, encoder: bool = True
) -> tuple[Path | None, Path]:
    """(encoder, decoder) files of a ``sam-export`` directory for ``precision`` (fp32/fp16/int8).

    The decoder is ``decoder_batched.onnx`` when present (4 mask tokens and a prompt-batch axis),
    else ``decoder.onnx``, which must then have been exported with ``--multimask``. With
    ``encoder=False`` the encoder is not looked for (``None``): a decoder-only export will do.
    """
    model_dir = Path(model_dir)
    if precision not in PRECISIONS:
        raise ModelLoadError(model_dir, f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not model_dir.is_dir():
        raise ModelLoadError(model_dir, "not a directory (expected the output directory of sam-export)")
    files = _manifest_files(model_dir)
    encoder_path = _pick(model_dir, files, ENCODER_KEYS[precision], ENCODER_HINT) if encoder else None
    return encoder_path, _pick(model_dir, files, DECODER_KEYS[precision])


def _manifest_files(model_dir: Path) -> dict[str, str]:
    manifest = model_dir / MANIFEST
    if not manifest.is_file():
        _check_holds_graphs(model_dir)
        return DEFAULT_FILES
    try:
        content = json.loads(manifest.read_text())
        graphs = content["graphs"]
        files = {key: str(graph["file"]) for key, graph in graphs.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(manifest, f"not a readable sam-export manifest ({exc})") from None
    if content.get("kind") == DETECTOR_KIND:
        raise ModelLoadError(
            model_dir,
            "is a text-prompt detector export (sam-export-detector), not a SAM export: give it as "
            "--detector, and the folder sam-export wrote as -m",
        )
    return files


def _check_holds_graphs(model_dir: Path) -> None:
    """A folder without export.json must hold graphs; a folder of exports (``-m onnx/`` where
    sam-export wrote ``onnx/vit_b``) is refused naming the exports inside it."""
    if any(model_dir.glob("*.onnx")):
        return
    inner = sorted(p.parent for p in model_dir.glob(f"*/{MANIFEST}"))
    where = (
        f"it holds the export(s) {', '.join(p.name for p in inner)}: give one, e.g. -m {inner[0]}"
        if inner
        else "give the folder that sam-export CHECKPOINT -o FOLDER wrote"
    )
    raise ModelLoadError(model_dir, f"is not a sam-export output folder (no {MANIFEST}, no .onnx); {where}")


def _pick(model_dir: Path, files: dict[str, str], keys: tuple[str, ...], hint: str = "") -> Path:
    for key in keys:
        if key in files and (model_dir / files[key]).is_file():
            return model_dir / files[key]
    wanted = " or ".join(DEFAULT_FILES[k] for k in keys)
    hint = hint or "export it with sam-export, e.g. with --fp16 or --int8"
    raise ModelLoadError(model_dir, f"has no {wanted} ({hint})")


def check_pair(encoder: Graph | None, decoder: Graph) -> None:
    """Raise :class:`ModelMismatchError` unless the graphs can serve the predictor together."""
    if encoder is not None:
        _check_role(encoder, "encoder")
    _check_role(decoder, "decoder")
    meta = decoder.metadata
    if meta.get("num_masks") != "4":
        how = (
            "use decoder_batched.onnx: SAM 2's single-mask rule needs all four"
            if family_of(graph_family(decoder)).single_mask_needs_all_tokens
            else "use decoder_batched.onnx, or export decoder.onnx with --multimask"
        )
        raise ModelMismatchError(
            decoder.path,
            f"returns {meta.get('num_masks')} mask(s); the predictor needs all 4 mask tokens ({how})",
        )
    if meta.get("use_stability_score") == "true":
        raise ModelMismatchError(
            decoder.path, "was exported with --use-stability-score; the predictor reports predicted IoU"
        )
    if encoder is None:
        return
    encoder_family, decoder_family = graph_family(encoder), graph_family(decoder)
    if family_of(encoder_family) is not family_of(decoder_family):
        raise ModelMismatchError(
            decoder.path,
            f"is a {label(decoder_family)} decoder (family {decoder_family!r}) but "
            f"encoder {str(encoder.path)!r} is {label(encoder_family)} "
            f"(family {encoder_family!r}): export both graphs from one checkpoint",
        )
    for key in ("checkpoint_sha256", "variant", "input_size"):
        if encoder.metadata.get(key) != meta.get(key):
            raise ModelMismatchError(
                decoder.path,
                f"does not belong with encoder {str(encoder.path)!r}: {key} "
                f"{meta.get(key)!r} here, {encoder.metadata.get(key)!r} in the encoder",
            )


def graph_family(graph: Graph) -> str:
    """``"sam"`` (SAM v1) or ``"sam2"`` from a graph's metadata (graphs exported before the
    ``family`` key existed are SAM v1)."""
    return graph.metadata.get("family", DEFAULT_FAMILY.name)


def check_feeds(graph: Graph, feeds: dict[str, object]) -> None:
    """Raise :class:`InvalidInputError` naming the inputs ``graph`` needs that ``feeds`` lacks
    (e.g. SAM v1 feeds, without the high-res features, given to a SAM 2 decoder)."""
    missing = [name for name in graph.input_names if name not in feeds]
    if missing:
        raise InvalidInputError(
            f"inputs of {graph.path.name} ({graph_family(graph)})",
            f"all of {', '.join(graph.input_names)}",
            f"none for {', '.join(missing)}",
        )


def _check_role(graph: Graph, role: str) -> None:
    found = graph.metadata.get("role")
    if found is None or "checkpoint_sha256" not in graph.metadata:
        raise ModelMismatchError(
            graph.path, "has no sam-onnx metadata (role, checkpoint_sha256); export it with sam-export"
        )
    if found != role:
        raise ModelMismatchError(graph.path, f"given as the {role} but it is a {found} graph")
    layout = graph.metadata.get("layout", DEFAULT_LAYOUT)
    if layout != DEFAULT_LAYOUT:
        raise ModelMismatchError(
            graph.path,
            f"is in the {layout} layout (for AnyLabeling and samexporter, docs/ANYLABELING.md); the "
            f"runtime reads the {DEFAULT_LAYOUT} layout: export again without --layout",
        )


def web_decoder_paths(model_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """The official-contract decoders of an export for the web page: ``{"fp32": decoder.onnx}``,
    plus ``"int8"`` when ``decoder.int8.onnx`` was exported. Raises :class:`ModelLoadError`."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(model_dir, "not a directory (expected the output directory of sam-export)")
    files = _manifest_files(model_dir)
    found = {"fp32": _pick(model_dir, files, ("decoder",))}
    if "decoder_int8" in files and (model_dir / files["decoder_int8"]).is_file():
        found["int8"] = model_dir / files["decoder_int8"]
    return found


def check_decoders_belong(decoders: dict[str, Path], checkpoint_sha256: str, owner: str) -> None:
    """Raise :class:`ModelMismatchError` unless every official-contract decoder in ``decoders``
    comes from checkpoint ``checkpoint_sha256`` (that of ``owner``: "the encoder", "the embedding")."""
    for path in decoders.values():
        sha = decoder_identity(path).get("checkpoint_sha256")
        if sha != checkpoint_sha256:
            raise ModelMismatchError(path, f"comes from checkpoint {sha}, {owner} from {checkpoint_sha256}")


def decoder_identity(path: Path) -> dict[str, str]:
    """The metadata of an official-contract decoder graph (checked: role, contract inputs)."""
    graph = Graph.open(path, SessionConfig(), role="decoder")
    _check_role(graph, "decoder")
    missing = [name for name in DECODER_INPUTS if name not in graph.input_names]
    if missing or "masks" not in graph.output_names:
        raise ModelMismatchError(
            path,
            f"is not an official-contract decoder (inputs {graph.input_names}, outputs {graph.output_names})",
        )
    return graph.metadata


def model_dir_of(model: str | os.PathLike[str] | None) -> Path:
    """The export directory a command works on: ``model`` (``-m``), else ``$SAM_ONNX_MODEL``;
    raises :class:`InvalidInputError` naming both when neither is given."""
    if model is None and os.environ.get(MODEL_ENV):
        model = os.environ[MODEL_ENV]
    if model is None:
        raise InvalidInputError(
            "model", f"-m MODEL_DIR (a sam-export output directory) or ${MODEL_ENV}", "neither"
        )
    return Path(model)
