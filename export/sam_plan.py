"""SAM v1's export plan: its graphs (:mod:`.encoder_graph`, :mod:`.decoder_graph`) and metadata.

The SAM v1 record of :mod:`.families`; SAM 2's is :mod:`.sam2_plan`. Everything else of an export
(tracing, onnxsim, fp16/int8, the fast pair, staging, the manifest) is shared, in :mod:`.api`.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..modeling.sam import Sam
from ..variants import SamVariant, variant_metadata
from .decoder_graph import DecoderGraph
from .encoder_graph import EncoderGraph
from .layout_validate import check_layout_encoder
from .options import ExportOptions
from .plan import GraphSpec
from .samexporter_encoder_graph import SamexporterSamEncoder

BATCHED_CONTRACT = (
    "sam-onnx batched: extends the official decoder contract with a leading prompt-batch axis B on "
    "point_coords (B x N x 2), point_labels (B x N), mask_input (B x 1 x 256 x 256) and has_mask_input (B); "
    "one shared image_embeddings; every output gets B first"
)


def sam_metadata(common: Mapping[str, str], variant: SamVariant) -> dict[str, str]:
    """``common`` (:func:`.plan.graph_metadata`) and the encoder's numbers (a variant known only by
    its shape needs no registry to be read)."""
    return {**common, **variant_metadata(variant)}


def decoder_metadata(common: Mapping[str, str], wrapper: DecoderGraph) -> dict[str, str]:
    """The decoder-specific ``metadata_props``, read off the wrapper it was traced from."""
    return {
        **common,
        "role": "decoder",
        "contract": BATCHED_CONTRACT if wrapper.batched else "official",
        "batched": str(wrapper.batched).lower(),
        "decoder_mode": "single" if wrapper.return_single_mask else "multi",
        "num_masks": "1" if wrapper.return_single_mask else "4",
        "use_stability_score": str(wrapper.use_stability_score).lower(),
        "return_extra_metrics": str(wrapper.return_extra_metrics).lower(),
        "outputs": ",".join(wrapper.output_names),
    }


def plan_sam_graphs(sam: Sam, options: ExportOptions, common: Mapping[str, str]) -> list[GraphSpec]:
    """The fp32 graphs to trace for ``options`` on a SAM v1 model, with their metadata (``common``
    already holds :func:`sam_metadata`)."""
    specs = []
    if options.encoder and options.extensions:
        meta = {**common, "role": "encoder", "encoder_input": options.encoder_input}
        specs.append(GraphSpec("encoder", "encoder.onnx", EncoderGraph(sam, options.encoder_input), meta))
    elif options.encoder:  # samexporter's layout: the float32 HWC image, padded in the graph
        wrapper = SamexporterSamEncoder(sam)
        meta = {**common, "role": "encoder", "encoder_input": "float32_hwc", "inputs": "input_image"}
        specs.append(GraphSpec("encoder", "encoder.onnx", wrapper, meta, check=check_layout_encoder))
    if options.decoder:
        wrapper = DecoderGraph(
            sam,
            return_single_mask=not options.multimask,
            use_stability_score=options.use_stability_score,
            return_extra_metrics=options.return_extra_metrics,
        )
        specs.append(GraphSpec("decoder", "decoder.onnx", wrapper, decoder_metadata(common, wrapper)))
    if options.decoder and options.batched_decoder and options.extensions:
        wrapper = DecoderGraph(sam, return_single_mask=False, batched=True)
        specs.append(
            GraphSpec("decoder_batched", "decoder_batched.onnx", wrapper, decoder_metadata(common, wrapper))
        )
    return specs
