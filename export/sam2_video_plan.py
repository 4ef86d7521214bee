"""SAM 2.1's video graphs in an export: which model they are traced from, their specs and metadata.

``sam-export`` of a SAM 2.x checkpoint writes them beside the image graphs when the checkpoint
holds the video modules (an official ``.pt`` does; a transformers ``Sam2Model`` does not), the
decoders are exported in our layout, and ``--image-only`` is not given. A checkpoint without the
video modules exports its image graphs and says in ``export.json`` (``video_graphs``) why no video
graph was written. The image graphs are traced from the same weights either way, byte for byte.

Graphs (one module each; interfaces in ``sam_onnx.contract.VIDEO_GRAPHS``):
:mod:`.video_heads_graph`, :mod:`.video_mask_prompt_graph`, :mod:`.memory_attention_graph`,
:mod:`.memory_encoder_graph`; validated by :mod:`.video_validate`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from sam_onnx.contract import VIDEO_FILES
from sam_onnx.modeling.sam2 import Sam2
from sam_onnx.modeling.sam2_checkpoint import load_sam2_video
from sam_onnx.modeling.sam2_video import Sam2Video

from .memory_attention_graph import MemoryAttentionGraph
from .memory_encoder_graph import MemoryEncoderGraph
from .options import ExportOptions
from .plan import GraphSpec
from .video_heads_graph import VideoHeadsGraph
from .video_mask_prompt_graph import VideoMaskPromptGraph
from .video_validate import check_video_graph

WRAPPERS = {
    "video_heads": VideoHeadsGraph,
    "video_mask_prompt": VideoMaskPromptGraph,
    "memory_attention": MemoryAttentionGraph,
    "memory_encoder": MemoryEncoderGraph,
}
IMAGE_EMBEDDINGS_NOTE = (
    "the encoder's image_embeddings, no_mem_embed added; memory_attention, memory_encoder and "
    "video_mask_prompt subtract it to read the neck's map as the official video path does"
)


def plan_video(
    model: Sam2, checkpoint: str | os.PathLike[str], options: ExportOptions, common: Mapping[str, str]
) -> tuple[list[GraphSpec], str]:
    """The video graphs to trace for ``options`` and what happens to them (``export.json``
    ``video_graphs``): the four specs and ``"written"``, or none and why.

    ``model`` is the image model the image graphs are traced from; the video graphs are traced
    from a :class:`Sam2Video` loaded from ``checkpoint`` beside it (the tracer numbers a graph's
    values by the module's parameters, so the image graphs traced from the video model would hold
    the same weights under other names: not byte-identical)."""
    if options.image_only:
        return [], "skipped: --image-only"
    if not (options.decoder and options.extensions):
        return [], "skipped: written with the decoders, in the sam-onnx layout"
    if not model.load_report.ignored:
        return [], "skipped: the checkpoint has no video modules (memory attention, memory encoder)"
    return plan_video_graphs(load_sam2_video(checkpoint, model.variant.name), common), "written"


def video_metadata(common: Mapping[str, str], role: str, wrapper) -> dict[str, str]:
    """A video graph's ``metadata_props``: the common SAM 2 keys, its role, its outputs, and the
    memory settings the runtime's memory selection needs."""
    spec = wrapper.model.variant.video
    return {
        **common,
        "role": role,
        "outputs": ",".join(wrapper.output_names),
        "image_embeddings": IMAGE_EMBEDDINGS_NOTE,
        "num_maskmem": str(spec.num_maskmem),
        "max_obj_ptrs": str(spec.max_obj_ptrs),
        "mem_dim": str(spec.mem_dim),
        "tokens_per_pointer": str(spec.tokens_per_pointer),
        "memory_dtype": "bfloat16",  # how the official predictor stores maskmem_features
        "no_object_logit": "-1024",
        "video_contract": json.dumps(
            {"inputs": list(wrapper.input_names), "outputs": list(wrapper.output_names)}
        ),
    }


def plan_video_graphs(model: Sam2Video, common: Mapping[str, str]) -> list[GraphSpec]:
    """The four video graphs of ``model`` with their metadata and validation."""
    specs = []
    for role, make in WRAPPERS.items():
        wrapper = make(model)
        meta = video_metadata(common, role, wrapper)
        specs.append(GraphSpec(role, VIDEO_FILES[role], wrapper, meta, check=check_video_graph))
    return specs
