"""SAM 2.1 video: a mask prompt used as the output, ``video_mask_prompt.onnx`` (export-only).

The official ``add_new_mask`` then ``_use_mask_as_output`` for B objects on one frame; the
interface is ``VIDEO_GRAPHS["video_mask_prompt"]`` in :mod:`sam_onnx.contract`:

  image_embeddings  1 x 256 x 64 x 64   the frame's, from encoder.onnx (no_mem_embed added; the
                                        graph subtracts it: the official heads read the raw map here)
  mask              B x H x W float32 (1/0) at any size
  -> low_res_logits B x 1 x 256 x 256, obj_ptr B x 256, object_score_logits B x 1

The mask is resized to 1024 x 1024 as the official ``add_new_mask`` does (bilinear, antialiased,
then ``>= 0.5``; opset 17 has no antialiased Resize, so both resizes are matrix products,
:func:`.sam2_encoder_graph.antialias_weights`), then used as the output: ``mask * 20 - 10``
shrunk to 256 x 256, the pointer from the heads fed the mask through ``mask_downsample``, gated
by whether the mask has a pixel (score +10 / -10). The pointer comes from the single-mask token
0 and the logits are the mask's, so the frame's high-res maps, which only shape the heads'
logits, are no input. At 1024 x 1024 the official code skips the
resize and the threshold; the resize is then the identity and a 0/1 mask is unchanged.
"""

from __future__ import annotations

import torch

from sam_onnx.modeling.sam2_video import Sam2FrameFeatures
from sam_onnx.variants import IMAGE_SIZE

from .sam2_encoder_graph import antialias_weights
from .video_graph import VideoGraph

MASK_THRESHOLD = 0.5  # official add_new_mask: (resized >= 0.5)
LOW_RES_SIZE = IMAGE_SIZE // 4


def shrink_by_4_as_products(x: torch.Tensor) -> torch.Tensor:
    """``B x 1 x 1024 x 1024`` -> ``B x 1 x 256 x 256``, ``F.interpolate(bilinear, antialias=True)``
    as two products with constant weights."""
    rows = antialias_weights(x.shape[-2], LOW_RES_SIZE)
    cols = antialias_weights(x.shape[-1], LOW_RES_SIZE)
    return rows @ x @ cols.transpose(0, 1)


class VideoMaskPromptGraph(VideoGraph):
    """Export-only wrapper of :meth:`Sam2Video.mask_as_output` (see the module docstring)."""

    role = "video_mask_prompt"

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {"mask": {0: "B", 1: "H", 2: "W"}, **{name: {0: "B"} for name in self.output_names}}

    def example_inputs(self, batch: int = 2, hw: tuple[int, int] = (270, 480)) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(0)
        return (
            torch.randn(1, 256, 64, 64, generator=gen),
            (torch.rand(batch, *hw, generator=gen) > 0.5).float(),
        )

    def forward(
        self,
        image_embeddings: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        rows = antialias_weights(mask.shape[1], IMAGE_SIZE)  # 1024 x H
        cols = antialias_weights(mask.shape[2], IMAGE_SIZE)  # 1024 x W
        resized = (rows @ mask @ cols.transpose(0, 1) >= MASK_THRESHOLD).float()[:, None]
        vision = self.model.map_from_image_embeddings(image_embeddings).expand(mask.shape[0], -1, -1, -1)
        # the high-res maps feed only logits this path discards: zeros, pruned from the graph
        unused = (vision.new_zeros(1, 32, 256, 256), vision.new_zeros(1, 64, 128, 128))
        features = Sam2FrameFeatures(vision, *unused)
        out = self.model.mask_as_output(features, resized, shrink=shrink_by_4_as_products)
        return out.low_res_masks, out.obj_ptr, out.object_score_logits
