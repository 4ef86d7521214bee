"""The prompt/mask-decoder graph: the official ONNX I/O contract, and its batched extension.

Official contract (``batched=False``). Inputs, all float32, in this order:
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
With ``return_extra_metrics`` two more follow: ``stability_scores`` (1 x M, of the full-size
masks) and ``areas`` (1 x M int64, pixels above threshold). The official graph returns the same five
values but in the order masks, scores, stability, areas, low-res while naming only three of them;
we keep the contract's three first so that apps reading outputs by position keep working.

M is 1 with ``return_single_mask`` (chosen by the official rule), else 4: mask token 0 (the
single-mask output) followed by the three multimask outputs, as the official graph does.

Batched extension (``batched=True``, not part of the official contract): a leading prompt-batch
axis B on ``point_coords`` (B x N x 2), ``point_labels`` (B x N), ``mask_input`` (B x 1 x 256 x
256) and ``has_mask_input`` (B), one shared ``image_embeddings`` (1 x 256 x 64 x 64) and
``orig_im_size``; every output gets B as its first axis. Row b equals a single-prompt call on row b.

Branches of the official predictor are written as arithmetic so that the traced graph holds no
value-dependent control flow; sizes read from ``orig_im_size`` and from input shapes stay
symbolic, so one graph is right for every image size and number of points.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sam_onnx.contract import DECODER_OUTPUTS, MASKS, POINT_COORDS, POINT_LABELS, PROMPT_INPUTS
from sam_onnx.families import SAM
from sam_onnx.modeling.mask_decoder import DecodedTokens
from sam_onnx.modeling.sam import Sam

INPUT_NAMES = SAM.decoder_inputs
OUTPUT_NAMES = DECODER_OUTPUTS
EXTRA_OUTPUT_NAMES = ("stability_scores", "areas")
STABILITY_SCORE_OFFSET = 1.0  # the official export's value


def stability_score(mask_logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """IoU of the masks thresholded at ``threshold + offset`` and ``threshold - offset``.

    ``... x H x W`` logits -> ``...`` float32.
    """
    inter = (mask_logits > (threshold + offset)).sum(-1, dtype=torch.int32).sum(-1, dtype=torch.int32)
    union = (mask_logits > (threshold - offset)).sum(-1, dtype=torch.int32).sum(-1, dtype=torch.int32)
    return inter.float() / union.float()


def single_mask_index(iou_predictions: torch.Tensor, num_points: int | torch.Tensor) -> torch.Tensor:
    """Official single-mask rule: argmax over tokens of ``iou + (N - 2.5) * [1000, 0, 0, 0]``.

    With N <= 2 prompt points (one click plus the padding point) token 0 is pushed down and
    the best multimask output wins; with more points token 0 is forced. ``iou_predictions``:
    ``B x 4``. Returns the chosen token, ``B x 1`` int64.
    """
    num_tokens = iou_predictions.shape[1]
    token0 = (torch.arange(num_tokens, device=iou_predictions.device) == 0).to(iou_predictions.dtype)
    return torch.argmax(iou_predictions + (num_points - 2.5) * 1000 * token0, dim=1, keepdim=True)


def select_single_mask(
    masks: torch.Tensor, iou_predictions: torch.Tensor, num_points: int | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The :func:`single_mask_index` token of ``masks`` ``B x 4 x h x w`` and ``iou_predictions``
    ``B x 4``. Returns ``B x 1 x h x w`` and ``B x 1``.
    """
    best = single_mask_index(iou_predictions, num_points)
    picked_iou = torch.gather(iou_predictions, 1, best)
    index = best[:, :, None, None].expand(-1, -1, masks.shape[2], masks.shape[3])
    return torch.gather(masks, 1, index), picked_iou


def resized_size_hw(orig_im_size: torch.Tensor, long_side: int) -> torch.Tensor:
    """(h, w) int64 of an image of size ``orig_im_size`` (H, W) resized to long side ``long_side``.

    float32 arithmetic and ``floor(x + 0.5)`` rounding, as the official graph computes it, and at
    least 1 pixel (where the official graph would crop to nothing past about 2048:1).
    """
    size = orig_im_size.to(torch.float32)
    scale = long_side / torch.max(size)
    return torch.clamp(torch.floor(scale * size + 0.5), min=1.0).to(torch.int64)


def upscale_masks(low_res: torch.Tensor, orig_im_size: torch.Tensor, img_size: int) -> torch.Tensor:
    """``B x M x 256 x 256`` logits -> ``B x M x H x W`` for ``orig_im_size`` = (H, W).

    Bilinear (align_corners=False) to ``img_size``, crop to the resized image, bilinear to (H, W).
    Both sizes are read from the tensor, so they stay symbolic in a traced graph.

    The crop is applied before the first resize too: output row ``y`` of a x4 bilinear resize
    reads input rows ``floor((y + 0.5) / 4 - 0.5)`` and the one after, so the resized image's
    ``h`` rows need only the first ``(h - 1) // 4 + 2`` low-res rows (likewise columns). Resizing
    just those by exactly 4 gives the same values and skips the padding's share of the work.
    """
    input_hw = resized_size_hw(orig_im_size, img_size)
    factor = img_size // low_res.shape[-1]
    needed = torch.clamp(torch.div(input_hw - 1, factor, rounding_mode="floor") + 2, max=low_res.shape[-1])
    masks = low_res[..., : needed[0], : needed[1]]
    size = (needed[0] * factor, needed[1] * factor)
    masks = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
    masks = masks[..., : input_hw[0], : input_hw[1]]
    orig_hw = orig_im_size.to(torch.int64)
    return F.interpolate(masks, size=(orig_hw[0], orig_hw[1]), mode="bilinear", align_corners=False)


def decoder_dynamic_axes(output_names: tuple[str, ...], *, batched: bool) -> dict[str, dict[int, str]]:
    """Symbolic axes of a decoder graph (both families): N points always, H x W of the masks, and
    the prompt batch B on every prompt input and output when ``batched``."""
    axes: dict[str, dict[int, str]] = {
        POINT_COORDS: {1: "num_points"},
        POINT_LABELS: {1: "num_points"},
        MASKS: {2: "orig_height", 3: "orig_width"},
    }
    if batched:
        for name in (*PROMPT_INPUTS, *output_names):
            axes.setdefault(name, {})[0] = "prompt_batch"
    return axes


class DecoderGraph(nn.Module):
    """Export-only wrapper: the decoder contract (see the module docstring) on a :class:`Sam` model.

    Arguments:
      sam: the model (its prompt encoder and mask decoder are used).
      return_single_mask: one mask by the official selection rule instead of all four tokens.
      use_stability_score: replace the predicted IoU by the stability score of the low-res
        logits (offset 1.0), as the official ``--use-stability-score``.
      return_extra_metrics: append ``stability_scores`` and ``areas`` of the full-size masks.
      batched: the prompt-batch extension (a leading axis B on the prompt inputs).
      factored: the decoder's factored form (``MaskDecoder.predict_masks``), the same values up
        to rounding in fewer operations per click; False traces the official layout (for
        benchmarks that compare the two).
    """

    def __init__(
        self,
        sam: Sam,
        *,
        return_single_mask: bool,
        use_stability_score: bool = False,
        return_extra_metrics: bool = False,
        batched: bool = False,
        factored: bool = True,
    ) -> None:
        super().__init__()
        self.sam = sam
        self.return_single_mask = return_single_mask
        self.use_stability_score = use_stability_score
        self.return_extra_metrics = return_extra_metrics
        self.batched = batched
        self.factored = factored

    @property
    def input_names(self) -> tuple[str, ...]:
        return INPUT_NAMES

    @property
    def output_names(self) -> tuple[str, ...]:
        return OUTPUT_NAMES + (EXTRA_OUTPUT_NAMES if self.return_extra_metrics else ())

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return decoder_dynamic_axes(self.output_names, batched=self.batched)

    def example_inputs(
        self, num_points: int = 3, batch: int = 2, orig_hw: tuple[int, int] = (1500, 2250)
    ) -> tuple[torch.Tensor, ...]:
        """Inputs to trace with (the sizes are arbitrary: every one of them stays symbolic)."""
        b = batch if self.batched else 1
        gen = torch.Generator().manual_seed(0)
        return (
            torch.randn(1, 256, 64, 64, generator=gen),
            torch.rand(b, num_points, 2, generator=gen) * 1024,
            torch.randint(-1, 4, (b, num_points), generator=gen).float(),
            torch.randn(b, 1, 256, 256, generator=gen),
            torch.ones(b),
            torch.tensor(orig_hw, dtype=torch.float32),
        )

    def forward(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
        orig_im_size: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        rows, hyper_in, scores, (h, w) = self.decode_tokens(
            image_embeddings, point_coords, point_labels, mask_input, has_mask_input
        )
        num_points = point_coords.shape[1]
        # The single-mask rule reads only the IoU predictions, so unless the scores are stability
        # scores (of every token's mask) the token is chosen first and only its mask is upscaled.
        pick_first = self.return_single_mask and not self.use_stability_score
        if pick_first:
            best = single_mask_index(scores, num_points)
            hyper_in = torch.gather(hyper_in, 1, best[:, :, None].expand(-1, -1, hyper_in.shape[2]))
            scores = torch.gather(scores, 1, best)
        low_res = self.sam.mask_decoder.upscale(rows, hyper_in, h, w, factored=self.factored)
        if self.use_stability_score:
            scores = stability_score(low_res, self.sam.mask_threshold, STABILITY_SCORE_OFFSET)
        if self.return_single_mask and not pick_first:
            low_res, scores = select_single_mask(low_res, scores, num_points)
        masks = upscale_masks(low_res, orig_im_size, self.sam.img_size)
        if not self.return_extra_metrics:
            return masks, scores, low_res
        threshold = self.sam.mask_threshold
        stability = stability_score(masks, threshold, STABILITY_SCORE_OFFSET)
        areas = (masks > threshold).sum(-1).sum(-1)
        return masks, scores, low_res, stability, areas

    def decode_tokens(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> DecodedTokens:
        """The prompt encoder and the decoder's transformer, before any upscaling."""
        pe = self.sam.prompt_encoder
        sparse = pe.embed_labeled_points(point_coords, point_labels)
        dense = pe.dense_with_flag(mask_input, has_mask_input)
        return self.sam.mask_decoder.decode_tokens(
            image_embeddings, pe.get_dense_pe(), sparse, dense, factored=self.factored
        )
