"""The text-prompt detector graph: transformers' ``GroundingDinoForObjectDetection`` with the phrase
structure as inputs. Export-only (needs torch and transformers).

Interface (declared once in :data:`sam_onnx.detector.DETECTOR_GRAPH`; shapes there):
  pixel_values              1 x 3 x S x S float32, the normalised image zero-padded to the canvas
  pixel_mask                1 x S x S int64, 1 over the image
  input_ids                 1 x T int64
  text_self_attention_mask  1 x T x T bool   } transformers' generate_masks_with_special_tokens_
  position_ids              1 x T int64      } and_transfer_map, computed outside (phrase_structure)
  -> logits                 1 x Q x 256 float32 (-inf beyond T), pred_boxes 1 x Q x 4 (cx, cy, w, h)

transformers computes the two phrase tensors inside ``GroundingDinoModel.forward`` from the ids;
the wrapper hands the model the given ones instead (the module-level function is replaced while
the forward runs), so the traced graph holds no phrase boundary of the example prompt. Everything
else is transformers' forward unchanged; ``attention_mask`` is all ones and ``token_type_ids`` all
zeros (one unpadded prompt, as the processor gives it).

Dynamic: T (1 .. max_text_len; longer prompts are refused by the runtime, since the model's own
truncation is a branch on T that the trace drops). Fixed: the canvas S (see sam_onnx.detector).
Opset 17: LayerNormalization (Swin, BERT) and the newest the TorchScript exporter handles here.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import torch
from torch import nn

from sam_onnx.detector import DETECTOR_GRAPH, TEXT_AXES, phrase_structure

OPSET = 17
# The traced prompt: [CLS] two phrases [SEP] (any ids; T stays symbolic).
EXAMPLE_IDS = (101, 1996, 4937, 1012, 1996, 3899, 1012, 102)


class DetectorGraph(nn.Module):
    """``GroundingDinoForObjectDetection`` with the phrase structure as inputs (export-only)."""

    input_names = DETECTOR_GRAPH.input_names
    output_names = DETECTOR_GRAPH.output_names
    dynamic_axes = TEXT_AXES

    def __init__(self, model: nn.Module, canvas: int) -> None:
        super().__init__()
        self.model = model
        self.canvas = canvas
        # torch.onnx.export restores the wrapper's mode afterwards, and train(True) would reach
        # the model (drop path on): the wrapper is eval, so the model stays eval.
        self.eval()

    def forward(self, pixel_values, pixel_mask, input_ids, text_self_attention_mask, position_ids):
        from transformers.models.grounding_dino import modeling_grounding_dino

        def given(_ids, special_tokens):
            return text_self_attention_mask, position_ids

        with mock.patch.object(
            modeling_grounding_dino, "generate_masks_with_special_tokens_and_transfer_map", given
        ):
            out = self.model(
                pixel_values=pixel_values,
                pixel_mask=pixel_mask,
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                token_type_ids=torch.zeros_like(input_ids),
            )
        return out.logits, out.pred_boxes

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        vocab = self.model.config.text_config.vocab_size
        ids = torch.tensor([EXAMPLE_IDS]) % vocab
        return feeds_as_tensors(example_pixels(self.canvas, (self.canvas * 3 // 4, self.canvas)), ids)


def example_pixels(canvas: int, image_hw: tuple[int, int], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random normalised pixels of an image of ``image_hw`` on the canvas, and its pixel mask."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.zeros(1, 3, canvas, canvas)
    pixels[:, :, : image_hw[0], : image_hw[1]] = torch.randn(1, 3, *image_hw, generator=generator)
    mask = torch.zeros(1, canvas, canvas, dtype=torch.int64)
    mask[:, : image_hw[0], : image_hw[1]] = 1
    return pixels, mask


def separator_ids() -> tuple[int, ...]:
    """The phrase separators' token ids, as transformers hard-codes them (BERT-base's ``[CLS]``,
    ``[SEP]``, ``.``, ``?``); the export writes them into the graph's metadata."""
    from transformers.models.grounding_dino.modeling_grounding_dino import SPECIAL_TOKENS

    return tuple(SPECIAL_TOKENS)


def feeds_as_tensors(pixels: tuple[torch.Tensor, torch.Tensor], ids: torch.Tensor) -> tuple:
    """The graph's five inputs in order, the phrase structure computed by the runtime's function."""
    mask, position_ids = phrase_structure(ids.numpy(), np.asarray(separator_ids()))
    return (*pixels, ids, torch.from_numpy(mask), torch.from_numpy(position_ids))


def without_float64(graph) -> None:
    """Make the traced graph float32 throughout, in place.

    The exporter promotes ``tensor * height`` (a traced Python int, in the encoder's reference
    points over the pixel mask's valid ratios) to float64, and onnxruntime's CPU GridSample has no
    float64 kernel. transformers computes these in float32; the casts and constants go back to it.
    """
    import onnx
    from onnx import numpy_helper

    double, single = onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT
    for node in graph.graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == double:
                attr.i = single
            elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == double:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float32)))
