"""SAM 2's prompt/mask decoder in the samexporter layout (``--layout samexporter``).

Export-only wrapper around :class:`.sam2_decoder_graph.Sam2DecoderGraph`'s computation (the
official one); only the interface differs (declared in
:data:`sam_onnx.contract.SAMEXPORTER_LAYOUTS`). SAM v1 needs no such module: its decoder in
samexporter's layout is the official contract, our :class:`.decoder_graph.DecoderGraph`.

Inputs, all float32, in the order the clients feed them by position:
  image_embed       1 x 256 x 64 x 64
  high_res_feats_0  1 x 32 x 256 x 256
  high_res_feats_1  1 x 64 x 128 x 128
  point_coords      B x N x 2, (x, y) in the square 1024 frame (``x * 1024 / W``, ``y * 1024 / H``)
  point_labels      B x N: 1 positive, 0 negative, 2/3 box corners (-1 padding)
  mask_input        B x 1 x 256 x 256
  has_mask_input    B (or 1): 1.0 when mask_input is used, else 0.0
The graph appends the padding point (0, 0) label -1 itself, as the official prompt encoder and
samexporter's graph do. There is no ``orig_im_size``: the layout returns low-res masks only.
Outputs:
  masks             B x M x 256 x 256, the low-res logits clamped to +-32
  iou_predictions   B x M
M = 1 by SAM 2's single-mask rule (stability of token 0, else the best of tokens 1..3); with
``multimask`` M = 3, tokens 1..3 (what samexporter's own export always returns).
"""

from __future__ import annotations

import torch
from torch import nn

from sam_onnx.contract import IMAGE_EMBEDDINGS, IOU_PREDICTIONS, LOW_RES_MASKS, SAMEXPORTER_LAYOUTS
from sam_onnx.modeling.sam2 import Sam2, select_masks

from .sam2_decoder_graph import LOW_RES_CLAMP, Sam2DecoderGraph

LAYOUT = SAMEXPORTER_LAYOUTS["sam2"].decoder
PROMPT_BATCH = "num_labels"  # samexporter's name of the prompt-batch axis
# The layout's dynamic axes by the letters its declaration uses (M is fixed per export)
_AXIS_NAMES = {"B": PROMPT_BATCH, "N": "num_points"}


class SamexporterSam2Decoder(nn.Module):
    """Export-only: see the module docstring for the I/O."""

    layout = "samexporter"
    batched = False

    def __init__(self, model: Sam2, *, multimask: bool = False) -> None:
        super().__init__()
        self.inner = Sam2DecoderGraph(model, multimask=multimask, batched=True)
        self.multimask = multimask

    @property
    def num_masks(self) -> int:
        return self.inner.model.variant.num_multimask_outputs if self.multimask else 1

    @property
    def input_names(self) -> tuple[str, ...]:
        return LAYOUT.input_names

    @property
    def output_names(self) -> tuple[str, ...]:
        return LAYOUT.output_names

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {
            t.name: {i: _AXIS_NAMES[d] for i, d in enumerate(t.shape) if d in _AXIS_NAMES}
            for t in (*LAYOUT.inputs, *LAYOUT.outputs)
        }
        return {name: dims for name, dims in axes.items() if dims}

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        """Our decoder's batched example, less ``orig_im_size`` (every size stays symbolic)."""
        return self.inner.example_inputs()[:-1]

    def forward(
        self,
        image_embed: torch.Tensor,
        high_res_feats_0: torch.Tensor,
        high_res_feats_1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features = (image_embed, high_res_feats_0, high_res_feats_1)
        prompt = (point_coords, point_labels, mask_input, has_mask_input)
        low_res, iou, _ = self.inner.decode_all_tokens(*features, *prompt)
        low_res, iou = select_masks(
            low_res,
            iou,
            multimask=self.multimask,
            delta=self.inner.stability_delta,
            threshold=self.inner.stability_thresh,
        )
        return torch.clamp(low_res, -LOW_RES_CLAMP, LOW_RES_CLAMP), iou

    # -- validation: the same values as our own decoder's (see .layout_validate) ------------------
    def contract_twin(self) -> Sam2DecoderGraph:
        """Our own-layout decoder whose outputs this graph's are (the validation reference)."""
        return Sam2DecoderGraph(self.inner.model, multimask=self.multimask)

    def layout_feed(self, feed: dict) -> dict:
        """Our decoder contract's feed -> this layout's (renamed, in order, no ``orig_im_size``)."""
        renamed = {self.input_names[0]: feed[IMAGE_EMBEDDINGS.name], **feed}  # the layout's image_embed
        return {name: renamed[name] for name in self.input_names}

    @staticmethod
    def from_contract_outputs(outputs: list) -> list:
        """Our contract's (masks, iou_predictions, low_res_masks) -> this layout's outputs."""
        return [outputs[2], outputs[1]]

    compared_outputs = (LOW_RES_MASKS, IOU_PREDICTIONS)  # their names in our contract
