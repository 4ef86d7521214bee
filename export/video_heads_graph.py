"""SAM 2.1 video: the per-frame heads graph ``video_heads.onnx`` (export-only).

The prompt encoder and mask decoder as the official video predictor runs them on one frame
(``SAM2Base._forward_sam_heads``), for B objects at once; the interface is
``VIDEO_GRAPHS["video_heads"]`` in :mod:`sam_onnx.contract`:

  frame_embeddings  B x 256 x 64 x 64  the encoder's image_embeddings on a frame prompted before
                                       tracking reached it, else memory_attention's output
  high_res_feats_0  1 x 32 x 256 x 256 the frame's (shared by the B objects)
  high_res_feats_1  1 x 64 x 128 x 128
  point_coords      B x N x 2  (x, y) in the square 1024 frame, box corners first; a frame without
                               prompts: one point (0, 0) labelled -1. The padding point is appended
                               here, as the official prompt encoder does
  point_labels      B x N      1, 0, 2/3 box corners, -1 the no-prompt point. Objects batched
                               together need the same N: a padding point would be one more prompt
                               token, which changes the result (tracked frames all have N = 1)
  mask_input        B x 1 x 256 x 256  the frame's previous logits clamped to +-32 (a correction)
  has_mask_input    B          1.0 when mask_input is used
  -> low_res_logits B x 1 x 256 x 256 (-1024 where object_score_logits <= 0), iou_predictions B x 1,
     obj_ptr B x 256, object_score_logits B x 1

The official choice of outputs is arithmetic here: an object with 0 or 1 points (labels >= 0;
a box is two) gets the best of tokens 1..3 by predicted IoU and its pointer from that token; with
more, token 0 unless its stability is under the threshold (then the best of 1..3), and the
pointer from token 0 (:meth:`~sam_onnx.modeling.sam2_video.Sam2Video.heads_from_prompt_embeddings`).
"""

from __future__ import annotations

import torch

from sam_onnx.variants import IMAGE_SIZE

from .sam2_decoder_graph import append_padding_point
from .video_graph import VideoGraph

MULTIMASK_MAX_POINTS = 1  # official multimask_max_pt_num: 0 or 1 point -> three masks


class VideoHeadsGraph(VideoGraph):
    """Export-only wrapper of :class:`Sam2Video`'s heads (see the module docstring)."""

    role = "video_heads"

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        per_object = {name: {0: "B"} for name in (*self.input_names, *self.output_names)}
        del per_object["high_res_feats_0"], per_object["high_res_feats_1"]
        per_object["point_coords"] = per_object["point_labels"] = {0: "B", 1: "N"}
        return per_object

    def example_inputs(self, batch: int = 2, num_points: int = 3) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(0)
        return (
            torch.randn(batch, 256, 64, 64, generator=gen),
            torch.randn(1, 32, 256, 256, generator=gen),
            torch.randn(1, 64, 128, 128, generator=gen),
            torch.rand(batch, num_points, 2, generator=gen) * IMAGE_SIZE,
            torch.randint(0, 4, (batch, num_points), generator=gen).float(),
            torch.randn(batch, 1, 256, 256, generator=gen),
            torch.ones(batch),
        )

    def forward(
        self,
        frame_embeddings: torch.Tensor,
        high_res_feats_0: torch.Tensor,
        high_res_feats_1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        pe = self.model.sam_prompt_encoder
        coords, labels = append_padding_point(point_coords, point_labels)
        sparse = pe.embed_labeled_points(coords, labels)
        dense = pe.dense_with_flag(mask_input, has_mask_input)
        multimask = (point_labels >= 0).sum(dim=1, keepdim=True) <= MULTIMASK_MAX_POINTS
        out = self.model.heads_from_prompt_embeddings(
            frame_embeddings,
            high_res_feats_0,
            high_res_feats_1,
            sparse,
            dense,
            multimask=multimask,
            factored=True,
        )
        return out.low_res_masks, out.ious, out.obj_ptr, out.object_score_logits
