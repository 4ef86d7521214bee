"""The prompt/mask-decoder graph with the official ONNX I/O contract (export-only wrapper).

Inputs (all float32), in this order:
  image_embeddings  1 x 256 x 64 x 64
  point_coords      1 x N x 2, (x, y) in the frame of the image resized to long side 1024
  point_labels      1 x N: 1 positive, 0 negative, 2/3 box corners, -1 padding
  mask_input        1 x 1 x 256 x 256 low-res logits
  has_mask_input    1: 1.0 when mask_input is used, else 0.0
  orig_im_size      2: (H, W) of the original image
Outputs, in this order:
  masks             1 x M x H x W logits at the original size (threshold 0)
  iou_predictions   1 x M
  low_res_masks     1 x M x 256 x 256
M is 1 with ``return_single_mask`` (selected by the official rule), else 4: mask token 0 (the
single-mask output) followed by the three multimask outputs.

Branches of the official predictor are written as arithmetic so that the traced graph holds no
value-dependent control flow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sam_onnx.modeling.sam import Sam

INPUT_NAMES = (
    "image_embeddings",
    "point_coords",
    "point_labels",
    "mask_input",
    "has_mask_input",
    "orig_im_size",
)
OUTPUT_NAMES = ("masks", "iou_predictions", "low_res_masks")


def stability_score(mask_logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """IoU of the masks thresholded at ``threshold + offset`` and ``threshold - offset``.

    ``... x H x W`` logits -> ``...`` float32.
    """
    inter = (mask_logits > (threshold + offset)).sum(-1, dtype=torch.int32).sum(-1, dtype=torch.int32)
    union = (mask_logits > (threshold - offset)).sum(-1, dtype=torch.int32).sum(-1, dtype=torch.int32)
    return inter.float() / union.float()


def select_single_mask(
    masks: torch.Tensor, iou_predictions: torch.Tensor, num_points: int | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Official single-mask rule: argmax over tokens of ``iou + (N - 2.5) * [1000, 0, 0, 0]``.

    With N <= 2 prompt points (one click plus the padding point) token 0 is pushed down and
    the best multimask output wins; with more points token 0 is forced. ``masks``: ``B x 4 x
    h x w``; ``iou_predictions``: ``B x 4``. Returns ``B x 1 x h x w`` and ``B x 1``.
    """
    num_tokens = iou_predictions.shape[1]
    reweight = torch.tensor([[1000] + [0] * (num_tokens - 1)], device=iou_predictions.device)
    best = torch.argmax(iou_predictions + (num_points - 2.5) * reweight, dim=1)
    rows = torch.arange(masks.shape[0], device=masks.device)
    return masks[rows, best].unsqueeze(1), iou_predictions[rows, best].unsqueeze(1)


def resized_size_hw(orig_im_size: torch.Tensor, long_side: int) -> torch.Tensor:
    """(h, w) int64 of an image of size ``orig_im_size`` (H, W) resized to long side ``long_side``.

    float32 arithmetic and ``floor(x + 0.5)`` rounding, as the official graph computes it.
    """
    size = orig_im_size.to(torch.float32)
    scale = long_side / torch.max(size)
    return torch.floor(scale * size + 0.5).to(torch.int64)


def upscale_masks(low_res: torch.Tensor, orig_im_size: torch.Tensor, img_size: int) -> torch.Tensor:
    """``B x M x 256 x 256`` logits -> ``B x M x H x W`` for ``orig_im_size`` = (H, W).

    Bilinear (align_corners=False) to ``img_size``, crop to the resized image, bilinear to (H, W).
    """
    masks = F.interpolate(low_res, size=(img_size, img_size), mode="bilinear", align_corners=False)
    h_in, w_in = resized_size_hw(orig_im_size, img_size)
    masks = masks[..., :h_in, :w_in]
    h, w = orig_im_size.to(torch.int64)
    return F.interpolate(masks, size=(h, w), mode="bilinear", align_corners=False)


class DecoderGraph(nn.Module):
    """Export-only wrapper: the official ONNX decoder contract on a :class:`Sam` model.

    Arguments:
      sam: the model (its prompt encoder and mask decoder are used).
      return_single_mask: one mask by the official selection rule instead of all four tokens.
      use_stability_score: replace the predicted IoU by the stability score (offset 1.0).
    """

    def __init__(self, sam: Sam, *, return_single_mask: bool, use_stability_score: bool = False) -> None:
        super().__init__()
        self.sam = sam
        self.return_single_mask = return_single_mask
        self.use_stability_score = use_stability_score
        self.stability_score_offset = 1.0

    def forward(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
        orig_im_size: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        low_res, scores = self.decode_all_tokens(
            image_embeddings, point_coords, point_labels, mask_input, has_mask_input
        )
        if self.use_stability_score:
            scores = stability_score(low_res, self.sam.mask_threshold, self.stability_score_offset)
        if self.return_single_mask:
            low_res, scores = select_single_mask(low_res, scores, point_coords.shape[1])
        masks = upscale_masks(low_res, orig_im_size, self.sam.img_size)
        return masks, scores, low_res

    def decode_all_tokens(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-res logits ``B x 4 x 256 x 256`` and IoU ``B x 4`` of every mask token."""
        pe = self.sam.prompt_encoder
        sparse = pe.embed_labeled_points(point_coords, point_labels)
        no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense = has_mask_input * pe.embed_mask(mask_input) + (1 - has_mask_input) * no_mask
        return self.sam.mask_decoder.predict_masks(image_embeddings, pe.get_dense_pe(), sparse, dense)
