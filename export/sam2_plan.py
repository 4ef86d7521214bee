"""SAM 2 / 2.1's export plan: its graphs (:mod:`.sam2_encoder_graph`, :mod:`.sam2_decoder_graph`)
and metadata.

The SAM 2 record of :mod:`.families`, beside SAM v1's :mod:`.sam_plan` (the same files:
``encoder.onnx``, ``decoder.onnx``, ``decoder_batched.onnx``); :func:`sam2_metadata` adds the pixel
scale, the Hiera trunk's numbers and the single-mask rule's constants to the common metadata.
Everything else of an export (tracing, onnxsim, fp16/int8, staging, the manifest) is shared;
validation is :class:`.validate.Validator` by the rules of :mod:`.sam2_reference`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from sam_onnx.errors import ConflictingOptionsError
from sam_onnx.families import SAM2
from sam_onnx.modeling.sam2 import Sam2
from sam_onnx.variants import Sam2Variant

from .layout_validate import check_layout_decoder, check_layout_encoder
from .options import ExportOptions
from .plan import GraphSpec
from .sam2_decoder_graph import Sam2DecoderGraph
from .sam2_encoder_graph import Sam2EncoderGraph
from .samexporter_decoder_graph import SamexporterSam2Decoder
from .samexporter_encoder_graph import SamexporterSam2Encoder

SAM2_CONTRACT = (
    "sam-onnx sam2: inputs image_embeddings (1x256x64x64), high_res_feats_0 (1x32x256x256), "
    "high_res_feats_1 (1x64x128x128), point_coords (1xNx2, x,y in the square 1024 frame: x*1024/W, "
    "y*1024/H; box corners first, labels 2 and 3), point_labels (1xN), mask_input (1x1x256x256), "
    "has_mask_input (1), orig_im_size (2: H,W); the graph appends the padding point (0,0) label -1 "
    "itself; outputs masks (1xMxHxW logits, bilinear from the unclamped low-res logits, no crop), "
    "iou_predictions (1xM), low_res_masks (1xMx256x256, clamped to +-32)"
)
SAM2_BATCHED_CONTRACT = (
    "sam-onnx sam2 batched: the sam2 contract with a leading prompt-batch axis B on point_coords "
    "(BxNx2), point_labels (BxN), mask_input (Bx1x256x256) and has_mask_input (B); one shared image; "
    "outputs all 4 mask tokens (token 0 first): masks (Bx4xHxW), iou_predictions (Bx4), low_res_masks "
    "(Bx4x256x256, clamped), then object_score_logits (Bx1)"
)
# Options of the SAM v1 decoder contract that SAM 2's has no counterpart for.
_V1_ONLY_OPTIONS = ("use_stability_score", "return_extra_metrics")


def sam2_metadata(common: Mapping[str, str], variant: Sam2Variant) -> dict[str, str]:
    """``common`` (:func:`.plan.graph_metadata`) with SAM 2's own keys: the pixel scale, the trunk's
    numbers, the single-mask rule's constants."""
    return {
        **common,
        "pixel_scale": SAM2.pixel_scale,  # pixel_mean/std are on the 0..1 scale: the image is / 255 first
        "trunk_embed_dim": str(variant.trunk_embed_dim),
        "trunk_num_heads": str(variant.trunk_num_heads),
        "trunk_stages": json.dumps(list(variant.stages)),
        "trunk_global_attn_blocks": json.dumps(list(variant.global_attn_blocks)),
        "trunk_window_spec": json.dumps(list(variant.window_spec)),
        "stability_delta": str(variant.dynamic_multimask_stability_delta),
        "stability_thresh": str(variant.dynamic_multimask_stability_thresh),
    }


def sam2_decoder_metadata(common: Mapping[str, str], wrapper: Sam2DecoderGraph) -> dict[str, str]:
    """The decoder-specific ``metadata_props``, read off the wrapper it was traced from."""
    mode = "all" if wrapper.batched else ("multi" if wrapper.multimask else "single")
    return {
        **common,
        "role": "decoder",
        "contract": SAM2_BATCHED_CONTRACT if wrapper.batched else SAM2_CONTRACT,
        "batched": str(wrapper.batched).lower(),
        "decoder_mode": mode,
        "num_masks": str(wrapper.num_masks),
        "padding_point": "appended_by_graph",
        "outputs": ",".join(wrapper.output_names),
    }


def plan_sam2_graphs(model: Sam2, options: ExportOptions, common: Mapping[str, str]) -> list[GraphSpec]:
    """The fp32 graphs to trace for ``options`` on a SAM 2 model, with their metadata
    (``common`` already holds :func:`sam2_metadata`). Raises :class:`ConflictingOptionsError` for
    the SAM v1 decoder options."""
    for name in _V1_ONLY_OPTIONS:
        if getattr(options, name):
            raise ConflictingOptionsError(name, "a SAM 2 checkpoint", "an option of the SAM v1 decoder only")
    if not options.extensions:
        return _plan_samexporter(model, options, common)
    specs = []
    if options.encoder:
        meta = {
            **common,
            "role": "encoder",
            "encoder_input": options.encoder_input,
            "outputs": ",".join(Sam2EncoderGraph(model).output_names),
        }
        specs.append(
            GraphSpec("encoder", "encoder.onnx", Sam2EncoderGraph(model, options.encoder_input), meta)
        )
    if options.decoder:
        wrapper = Sam2DecoderGraph(model, multimask=options.multimask)
        specs.append(GraphSpec("decoder", "decoder.onnx", wrapper, sam2_decoder_metadata(common, wrapper)))
    if options.decoder and options.batched_decoder:
        wrapper = Sam2DecoderGraph(model, batched=True)
        meta = sam2_decoder_metadata(common, wrapper)
        specs.append(GraphSpec("decoder_batched", "decoder_batched.onnx", wrapper, meta))
    return specs


def _plan_samexporter(model: Sam2, options: ExportOptions, common: Mapping[str, str]) -> list[GraphSpec]:
    """``--layout samexporter``: encoder.onnx and decoder.onnx in samexporter's interface."""
    specs = []
    if options.encoder:
        wrapper = SamexporterSam2Encoder(model)
        meta = {
            **common,
            "role": "encoder",
            "encoder_input": "normalized",
            "outputs": ",".join(wrapper.output_names),
        }
        specs.append(GraphSpec("encoder", "encoder.onnx", wrapper, meta, check=check_layout_encoder))
    if options.decoder:
        wrapper = SamexporterSam2Decoder(model, multimask=options.multimask)
        meta = {
            **common,
            "role": "decoder",
            "contract": "samexporter",
            "batched": "false",
            "decoder_mode": "multi" if options.multimask else "single",
            "num_masks": str(wrapper.num_masks),
            "padding_point": "appended_by_graph",
            "outputs": ",".join(wrapper.output_names),
        }
        specs.append(GraphSpec("decoder", "decoder.onnx", wrapper, meta, check=check_layout_decoder))
    return specs
