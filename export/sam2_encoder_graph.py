"""The SAM 2 / 2.1 image-encoder graph, with its input either normalised or the original uint8 image.

``input_kind="normalized"``: ``image`` float32 ``1 x 3 x 1024 x 1024``, RGB, the official SAM 2
preprocessing already applied (``/ 255``, square resize, ImageNet mean/std on the 0..1 scale; what
:func:`sam_onnx.preprocess.sam2_preprocess` returns).

``input_kind="uint8"``: ``image`` uint8 ``H x W x 3`` (HWC, RGB), the ORIGINAL image; H and W are
symbolic. The graph does the whole preprocessing: ``/ 255``, the official square resize to
1024 x 1024 (bilinear, ``align_corners=False``, antialiased as ``F.interpolate(antialias=True)``)
and the normalisation. Opset 17 has no antialiased Resize (opset 18 added the attribute, and
torch's TorchScript exporter does not write it), so the resize is two matrix products whose
weights the graph computes from H and W by arithmetic (:func:`antialias_weights`).

Outputs, float32, what the official ``SAM2ImagePredictor.set_image`` stores:
  image_embeddings   1 x 256 x 64 x 64    (``no_mem_embed`` added)
  high_res_feats_0   1 x 32 x 256 x 256   (the decoder's ``conv_s0`` of the 256x256 map)
  high_res_feats_1   1 x 64 x 128 x 128   (``conv_s1`` of the 128x128 map)
"""

from __future__ import annotations

import torch
from torch import nn

from sam_onnx.families import SAM2
from sam_onnx.modeling.sam2 import Sam2
from sam_onnx.variants import IMAGE_SIZE, SAM2_PIXEL_MEAN, SAM2_PIXEL_STD

from .encoder_graph import INPUT_KINDS, InputKind

OUTPUT_NAMES = SAM2.feature_names


def antialias_weights(in_size: int, out_size: int) -> torch.Tensor:
    """``out_size x in_size`` float32 weights of torch's antialiased linear resize of one axis.

    Row ``i`` (output sample centred at ``scale * (i + 0.5)`` input pixels, ``scale = in / out``)
    holds the triangle filter of half-width ``support = max(scale, 1)``, read at each input
    pixel centre ``k + 0.5`` as ``max(0, 1 - |k + 0.5 - centre| / support)``, divided by the row's
    sum. When enlarging this is plain bilinear interpolation (``align_corners=False``); at equal
    sizes, the identity. ``in_size`` may be a traced size: every value derives from
    ``arange(in_size)``, so it stays symbolic in the graph.
    Mirrors :func:`sam_onnx.preprocess.resize_bilinear_antialias` (and torch's
    ``_upsample_bilinear2d_aa``): the same taps and weights up to float rounding.
    """
    pixels = torch.arange(in_size, dtype=torch.float32)
    scale = (pixels[-1:] + 1.0) / out_size  # in / out, a 1-element tensor
    support = torch.clamp(scale, min=1.0)
    centre = scale * (torch.arange(out_size, dtype=torch.float32) + 0.5)
    offset = (pixels[None, :] - centre[:, None] + 0.5) / support
    weights = torch.clamp(1.0 - offset.abs(), min=0.0)
    return weights / weights.sum(dim=1, keepdim=True)


def resize_square_antialias(chw: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
    """``C x H x W`` float32 -> ``C x size x size``, as ``F.interpolate(chw[None], (size, size),
    mode="bilinear", align_corners=False, antialias=True)[0]``: the width first, then the height."""
    rows = antialias_weights(chw.shape[1], size)  # size x H
    cols = antialias_weights(chw.shape[2], size)  # size x W
    return rows @ (chw @ cols.transpose(0, 1))


class Sam2Preprocess(nn.Module):
    """``H x W x 3`` uint8 -> ``1 x 3 x 1024 x 1024`` float32, the official SAM 2 preprocessing.

    A module of its own so that its nodes are named ``/preprocess/...`` in the graph: the fp16
    copy keeps them in float32 (:data:`.precision.FP32_SCOPES`; in half precision the filter
    centres, up to 1024 pixels, would be rounded to half a pixel)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(SAM2_PIXEL_MEAN).reshape(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(SAM2_PIXEL_STD).reshape(3, 1, 1), persistent=False)

    def forward(self, image_hwc: torch.Tensor) -> torch.Tensor:
        chw = image_hwc.permute(2, 0, 1).to(torch.float32) / 255.0
        normalized = (resize_square_antialias(chw) - self.mean) / self.std
        # the size as constants: the resize's is computed from H and W, so ONNX shape inference
        # would leave every later shape symbolic (and int8 could not pick the products by rows)
        return normalized.reshape(1, 3, IMAGE_SIZE, IMAGE_SIZE)


class Sam2EncoderGraph(nn.Module):
    """Export-only wrapper around SAM 2's encode step; see the module docstring for the I/O."""

    def __init__(self, model: Sam2, input_kind: InputKind = "normalized") -> None:
        super().__init__()
        if input_kind not in INPUT_KINDS:
            raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")
        self.model = model
        self.input_kind = input_kind
        self.preprocess = Sam2Preprocess()

    @property
    def input_names(self) -> tuple[str, ...]:
        return ("image",)

    @property
    def output_names(self) -> tuple[str, ...]:
        return OUTPUT_NAMES

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        if self.input_kind == "normalized":
            return {}
        return {"image": {0: "image_height", 1: "image_width"}}

    def example_inputs(self) -> tuple[torch.Tensor]:
        """Inputs to trace with; for uint8, a landscape size (H and W stay symbolic)."""
        gen = torch.Generator().manual_seed(0)
        if self.input_kind == "normalized":
            return (torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen),)
        return (torch.randint(0, 256, (600, 900, 3), generator=gen, dtype=torch.uint8),)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.input_kind == "uint8":
            image = self.preprocess(image)
        return tuple(self.model.encode(image))
