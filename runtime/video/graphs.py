"""The six steps of a frame on an export's graphs: ``encoder.onnx`` (the image graph, unchanged)
and the four video graphs of :data:`sam_onnx.contract.VIDEO_GRAPHS`.

:class:`OnnxVideoModel` opens them, checks that each is the role it claims and that all come from
one SAM 2 checkpoint, and feeds them by the contract's names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from sam_onnx.contract import VIDEO_FILES, VIDEO_GRAPHS
from sam_onnx.errors import ModelLoadError, ModelMismatchError
from sam_onnx.families import family_of, label

from ..core.graphs import DEFAULT_FILES, ENCODER_KEYS, MANIFEST, PRECISIONS, Graph, graph_family
from ..core.session import SessionConfig
from .model import FrameFeatures, HeadsOutput, MemoryInputs

VIDEO_HINT = "export the SAM 2.x checkpoint with sam-export (without --image-only) to get the video graphs"


def _manifest(model_dir: Path) -> dict[str, str]:
    manifest = model_dir / MANIFEST
    if not manifest.is_file():
        return {**DEFAULT_FILES, **VIDEO_FILES}
    try:
        return {key: str(graph["file"]) for key, graph in json.loads(manifest.read_text())["graphs"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(manifest, f"not a readable sam-export manifest ({exc})") from None


def video_graph_paths(model_dir: str | os.PathLike[str], precision: str = "fp32") -> dict[str, Path]:
    """Role -> file of an export's encoder (of ``precision``) and video graphs; raises
    :class:`~sam_onnx.errors.ModelLoadError` when the folder or one of them is missing."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(model_dir, "not a directory (expected the output directory of sam-export)")
    if precision not in PRECISIONS:
        raise ModelLoadError(model_dir, f"precision must be one of {PRECISIONS}, got {precision!r}")
    files = _manifest(model_dir)
    encoder_key = ENCODER_KEYS[precision][0]
    paths = {"encoder": model_dir / files.get(encoder_key, DEFAULT_FILES[encoder_key])}
    paths.update({role: model_dir / files.get(role, VIDEO_FILES[role]) for role in VIDEO_GRAPHS})
    for path in paths.values():
        if not path.is_file():
            raise ModelLoadError(model_dir, f"has no {path.name} ({VIDEO_HINT})")
    return paths


class OnnxVideoModel:
    """:class:`~.model.VideoModel` on onnxruntime: ``encoder`` and ``graphs`` (role -> open
    :class:`~sam_onnx.runtime.core.graphs.Graph`)."""

    def __init__(self, encoder: Graph, graphs: dict[str, Graph]) -> None:
        self.encoder = encoder
        self.graphs = graphs

    @classmethod
    def open(
        cls,
        model_dir: str | os.PathLike[str],
        config: SessionConfig | None = None,
        *,
        precision: str = "fp32",
    ) -> OnnxVideoModel:
        """Open an export's encoder (of ``precision``) and video graphs. Raises
        :class:`~sam_onnx.errors.ModelLoadError` when one is missing and
        :class:`~sam_onnx.errors.ModelMismatchError` when they do not belong together."""
        config = config or SessionConfig()
        paths = video_graph_paths(model_dir, precision)
        opened = {role: Graph.open(path, config, role=role) for role, path in paths.items()}
        _check_together(opened)
        return cls(opened.pop("encoder"), opened)

    def _run(self, role: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        graph = self.graphs[role]
        # an input the graph does not read is pruned at export (video_mask_prompt's high-res maps)
        feeds = {name: feeds[name] for name in graph.input_names}
        return dict(zip(graph.output_names, graph.session.run(None, feeds), strict=True))

    def encode(self, image: np.ndarray) -> FrameFeatures:
        out = self.encoder.session.run(None, {self.encoder.input_names[0]: image})
        named = dict(zip(self.encoder.output_names, out, strict=True))
        return FrameFeatures(named["image_embeddings"], named["high_res_feats_0"], named["high_res_feats_1"])

    def init_cond_features(self, features: FrameFeatures) -> np.ndarray:
        return features.embeddings  # the encoder's map has no_mem_embed added already

    def condition_on_memory(self, features: FrameFeatures, memory: MemoryInputs) -> np.ndarray:
        feeds = {
            "image_embeddings": features.embeddings,
            "memory": np.stack(memory.memories)[None].astype(np.float32, copy=False),
            "memory_slots": np.asarray(memory.t_pos, np.int64)[None],
            "obj_ptrs": np.asarray(memory.obj_ptrs, np.float32).reshape(1, -1, 256),
            "obj_ptr_distances": np.asarray(memory.distances, np.int64).reshape(1, -1),
            "obj_ptr_max_distance": np.asarray(memory.max_distance, np.int64),
        }
        return self._run("memory_attention", feeds)["conditioned_embeddings"]

    def track_heads(
        self,
        pix_feat: np.ndarray,
        features: FrameFeatures,
        coords_xy_1024: np.ndarray,
        labels: np.ndarray,
        mask_input: np.ndarray | None,
        *,
        multimask: bool,
    ) -> HeadsOutput:
        # multimask follows from the labels in the graph (0 or 1 points), as the official rule
        has_mask = mask_input is not None
        feeds = {
            "frame_embeddings": pix_feat,
            "high_res_feats_0": features.high_res_feats_0,
            "high_res_feats_1": features.high_res_feats_1,
            "point_coords": np.asarray(coords_xy_1024, np.float32),
            "point_labels": np.asarray(labels, np.float32),
            "mask_input": mask_input if has_mask else np.zeros((1, 1, 256, 256), np.float32),
            "has_mask_input": np.asarray([1.0 if has_mask else 0.0], np.float32),
        }
        out = self._run("video_heads", feeds)
        return HeadsOutput(out["low_res_logits"], out["obj_ptr"], out["object_score_logits"])

    def mask_as_output(self, features: FrameFeatures, mask_1024: np.ndarray) -> HeadsOutput:
        feeds = {
            "image_embeddings": features.embeddings,
            "high_res_feats_0": features.high_res_feats_0,
            "high_res_feats_1": features.high_res_feats_1,
            "mask": np.asarray(mask_1024, np.float32).reshape(1, *mask_1024.shape[-2:]),
        }
        out = self._run("video_mask_prompt", feeds)
        return HeadsOutput(out["low_res_logits"], out["obj_ptr"], out["object_score_logits"])

    def encode_memory(
        self, features: FrameFeatures, low_res_masks: np.ndarray, object_score: np.ndarray, *, binarize: bool
    ) -> np.ndarray:
        feeds = {
            "image_embeddings": features.embeddings,
            "low_res_logits": np.asarray(low_res_masks, np.float32),
            "object_score_logits": np.asarray(object_score, np.float32).reshape(1, 1),
            "binarize": np.asarray([1.0 if binarize else 0.0], np.float32),
        }
        return self._run("memory_encoder", feeds)["maskmem_features"]


def _check_together(graphs: dict[str, Graph]) -> None:
    """Each graph is the role it is opened as, every one is SAM 2's, all of one checkpoint."""
    encoder, heads = graphs["encoder"], graphs["video_heads"]
    if family_of(graph_family(encoder)) is not family_of(graph_family(heads)):
        raise ModelMismatchError(
            encoder.path,
            f"is a {label(graph_family(encoder))} encoder, the video graphs are "
            f"{label(graph_family(heads))}: export both from one SAM 2.x checkpoint",
        )
    for role, graph in graphs.items():
        found = graph.metadata.get("role")
        if found != role:
            raise ModelMismatchError(graph.path, f"given as the {role} graph but its metadata says {found!r}")
        for key in ("checkpoint_sha256", "variant"):
            if graph.metadata.get(key) != encoder.metadata.get(key):
                raise ModelMismatchError(
                    graph.path,
                    f"does not belong with encoder {str(encoder.path)!r}: {key} "
                    f"{graph.metadata.get(key)!r} here, {encoder.metadata.get(key)!r} in the encoder",
                )
