"""SAM 2.1 video: the memory encoder, ``memory_encoder.onnx`` (export-only).

The official ``_encode_new_memory`` for B objects on one frame; the interface is
``VIDEO_GRAPHS["memory_encoder"]`` in :mod:`sam_onnx.contract`:

  image_embeddings     1 x 256 x 64 x 64   the frame's, from encoder.onnx (the graph subtracts
                                           no_mem_embed: the memory encoder reads the raw map)
  low_res_logits       B x 1 x 256 x 256   a tracked frame's heads output (before hole filling),
                                           or a prompted frame's stored logits (after it)
  object_score_logits  B x 1               <= 0 adds no_obj_embed_spatial
  binarize             B                   1.0: mask = logits > 0; 0.0: sigmoid
  -> maskmem_features  B x 64 x 64 x 64 float32 (the runtime rounds it to bfloat16 to store it)

The logits are upsampled to 1024 x 1024 (bilinear, ``align_corners=False``; at the exact factor 4
onnxruntime's Resize computes torch's source coordinates), binarised or put through the sigmoid,
scaled to -10..+10, down-sampled and fused with the features. The memory's position encoding is a
constant of memory attention, not an output.
"""

from __future__ import annotations

import torch

from .video_graph import VideoGraph


class MemoryEncoderGraph(VideoGraph):
    """Export-only wrapper of :meth:`Sam2Video.encode_memory` (see the module docstring)."""

    role = "memory_encoder"

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {name: {0: "B"} for name in (*self.input_names[1:], *self.output_names)}

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(0)
        return (
            torch.randn(1, 256, 64, 64, generator=gen),
            torch.randn(batch, 1, 256, 256, generator=gen) * 10,
            torch.randn(batch, 1, generator=gen),
            torch.tensor([1.0, 0.0][:batch] + [0.0] * max(0, batch - 2)),
        )

    def forward(
        self,
        image_embeddings: torch.Tensor,
        low_res_logits: torch.Tensor,
        object_score_logits: torch.Tensor,
        binarize: torch.Tensor,
    ) -> torch.Tensor:
        b = low_res_logits.shape[0]
        features = self.model.map_from_image_embeddings(image_embeddings).expand(b, -1, -1, -1)
        flag = binarize.reshape(-1, 1, 1, 1) > 0.5
        return self.model.encode_memory(features, low_res_logits, object_score_logits, binarize=flag)
