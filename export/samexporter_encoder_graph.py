"""The image encoders in the samexporter layout (``--layout samexporter``), both families.

Export-only wrappers around our own encoder graphs; only the interface differs (declared in
:data:`sam_onnx.contract.SAMEXPORTER_LAYOUTS`), the values are ours, which are the official ones.

SAM v1 (samexporter's ``export_encoder.py --use-preprocess``): ``input_image`` float32
``h x w x 3``, RGB 0..255, the image resized so that its long side is at most 1024 (AnyLabeling
feeds its 684 x 1024 canvas, samexporter's inference the long-side-1024 resize); the graph
normalises with SAM's pixel statistics and zero-pads bottom/right to 1024 x 1024, as
:class:`.encoder_graph.EncoderGraph` does for ``--encoder-input uint8``. Output ``image_embeddings``
``1 x 256 x 64 x 64``.

SAM 2 (samexporter's ``export_sam2.py``): ``image`` float32 ``1 x 3 x 1024 x 1024``, already
preprocessed by the client (resized to the square, ``/ 255``, ImageNet mean/std); outputs in the
order the clients read them by position: ``high_res_feats_0`` ``1 x 32 x 256 x 256``,
``high_res_feats_1`` ``1 x 64 x 128 x 128``, ``image_embed`` ``1 x 256 x 64 x 64`` (``no_mem_embed``
added).
"""

from __future__ import annotations

import numpy as np
import torch

from sam_onnx.contract import SAMEXPORTER_LAYOUTS

from .encoder_graph import EncoderGraph
from .sam2_encoder_graph import Sam2EncoderGraph

SAM_LAYOUT = SAMEXPORTER_LAYOUTS["sam"].encoder
SAM2_LAYOUT = SAMEXPORTER_LAYOUTS["sam2"].encoder
# The order of our SAM 2 encoder's outputs (image_embeddings, high_res_feats_0, high_res_feats_1)
# that gives the layout's (high_res_feats_0, high_res_feats_1, image_embed).
SAM2_OUTPUT_ORDER = (1, 2, 0)


class SamexporterSamEncoder(EncoderGraph):
    """Export-only: SAM v1's encoder with samexporter's ``input_image`` (float32 HWC, normalised and
    padded in the graph). ``input_kind`` stays ``"uint8"``: the same in-graph preprocessing."""

    layout = "samexporter"
    feature_order = (0,)  # our encoder's outputs, in the layout's order

    def __init__(self, sam) -> None:
        super().__init__(sam, "uint8")

    @staticmethod
    def layout_input(image) -> np.ndarray:
        """The layout's input for a validation image (:class:`.validate.PreparedImage`): the
        resized image as float32 ``h x w x 3``."""
        return image.uint8.astype(np.float32)

    @property
    def input_names(self) -> tuple[str, ...]:
        return SAM_LAYOUT.input_names

    @property
    def output_names(self) -> tuple[str, ...]:
        return SAM_LAYOUT.output_names

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {self.input_names[0]: {0: "image_height", 1: "image_width"}}

    def example_inputs(self) -> tuple[torch.Tensor]:
        """A landscape image of long side 1024 (h and w stay symbolic)."""
        (image,) = super().example_inputs()
        return (image.to(torch.float32),)


class SamexporterSam2Encoder(Sam2EncoderGraph):
    """Export-only: SAM 2's encoder (normalised square input) with its outputs in samexporter's order."""

    layout = "samexporter"
    feature_order = SAM2_OUTPUT_ORDER

    def __init__(self, model) -> None:
        super().__init__(model, "normalized")

    @staticmethod
    def layout_input(image) -> np.ndarray:
        """The layout's input for a validation image: the normalised ``1 x 3 x 1024 x 1024`` tensor."""
        return image.normalized

    @property
    def output_names(self) -> tuple[str, ...]:
        return SAM2_LAYOUT.output_names

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = super().forward(image)
        return tuple(features[i] for i in SAM2_OUTPUT_ORDER)
