"""The SAM 2 / 2.1 prompt/mask-decoder graph: the v1 contract extended, and its batched form.

Contract (``batched=False``). Inputs, all float32, in this order:
  image_embeddings  1 x 256 x 64 x 64    (encoder output, ``no_mem_embed`` added)
  high_res_feats_0  1 x 32 x 256 x 256   (encoder output)
  high_res_feats_1  1 x 64 x 128 x 128   (encoder output)
  point_coords      1 x N x 2, (x, y) in SAM 2's square 1024 frame: ``x * 1024 / W``,
                    ``y * 1024 / H``; a box as two corners (labels 2, 3) placed before the points
  point_labels      1 x N: 1 positive, 0 negative, 2/3 box corners (-1 padding, not needed)
  mask_input        1 x 1 x 256 x 256 low-res logits (a previous ``low_res_masks``)
  has_mask_input    1: 1.0 when mask_input is used, else 0.0
  orig_im_size      2: (H, W) of the original image
The graph appends the padding point ``(0, 0)`` with label -1 itself, always, as the official SAM 2
prompt encoder does (also with a box); callers must not add it (one they add is one more token).
N >= 1 (a point or a box's two corners; the official predictor appends no padding point to an
empty prompt, which this graph cannot tell apart).
Outputs, in this order:
  masks             1 x M x H x W logits (threshold 0): bilinear (``align_corners=False``) straight
                    from the unclamped 256 x 256 logits to (H, W), no crop
  iou_predictions   1 x M
  low_res_masks     1 x M x 256 x 256 logits clamped to +-32 (as the official predictor returns
                    them, to feed back as ``mask_input``)
M = 1 by SAM 2's single-mask rule (token 0 unless its stability is under 0.98, then the best IoU
among tokens 1..3, see :func:`sam_onnx.modeling.sam2.select_masks`); with ``multimask``, M = 3:
tokens 1..3, as the official ``multimask_output=True``.

Batched extension (``batched=True``): a leading prompt-batch axis B on ``point_coords`` (B x N x 2),
``point_labels`` (B x N), ``mask_input`` (B x 1 x 256 x 256) and ``has_mask_input`` (B); one shared
image (the three features) and ``orig_im_size``. Outputs all four mask tokens (token 0 first), so
the caller can apply the single-mask rule, multimask, or AMG's mask-to-mask refinement: ``masks``
B x 4 x H x W, ``iou_predictions`` B x 4, ``low_res_masks`` B x 4 x 256 x 256 (clamped), and
``object_score_logits`` B x 1 (the decoder's object-score head; the image predictor does not use
it). Row b equals a one-prompt call on row b.
"""

from __future__ import annotations

import torch
from torch import nn

from sam_onnx.contract import DECODER_OUTPUTS, OBJECT_SCORE
from sam_onnx.families import SAM2
from sam_onnx.modeling.sam2 import Sam2, select_masks
from sam_onnx.variants import IMAGE_SIZE

from .decoder_graph import decoder_dynamic_axes

INPUT_NAMES = SAM2.decoder_inputs
OUTPUT_NAMES = DECODER_OUTPUTS
BATCHED_EXTRA_OUTPUTS = (OBJECT_SCORE.name,)
LOW_RES_CLAMP = SAM2.low_res_clamp  # the official predictor clamps the low-res logits it returns


def append_padding_point(point_coords: torch.Tensor, point_labels: torch.Tensor):
    """``B x N x 2`` and ``B x N`` -> ``B x (N+1) x 2`` and ``B x (N+1)``: the point (0, 0) with label
    -1 appended to every prompt, as the official SAM 2 prompt encoder does."""
    pad_xy = torch.zeros_like(point_coords[:, :1])
    pad_label = torch.full_like(point_labels[:, :1], -1.0)
    return torch.cat([point_coords, pad_xy], dim=1), torch.cat([point_labels, pad_label], dim=1)


def upscale_to_original(low_res: torch.Tensor, orig_im_size: torch.Tensor) -> torch.Tensor:
    """``B x M x h x w`` -> ``B x M x H x W`` for ``orig_im_size`` = (H, W): SAM 2's postprocessing,
    ``F.interpolate(bilinear, align_corners=False)`` straight to (H, W), no antialias (also when
    shrinking). H and W are read from the tensor, so they stay symbolic.

    Written as two gathers and weighted sums with torch's own source-coordinate arithmetic
    (:func:`linear_taps`) rather than ONNX Resize: onnxruntime's Resize derives the coordinates
    from ``out / in`` instead of ``in / out``, which moves the interpolation weights by up to ~1e-5
    and logits of magnitude 30 by several 1e-4, more than the contract's tolerance.
    """
    orig_hw = orig_im_size.to(torch.int64)
    y0, y1, wy0, wy1 = linear_taps(low_res.shape[-2], orig_hw[0])
    x0, x1, wx0, wx1 = linear_taps(low_res.shape[-1], orig_hw[1])
    top, bottom = low_res.index_select(-2, y0), low_res.index_select(-2, y1)
    top = top.index_select(-1, x0) * wx0 + top.index_select(-1, x1) * wx1
    bottom = bottom.index_select(-1, x0) * wx0 + bottom.index_select(-1, x1) * wx1
    return top * wy0[:, None] + bottom * wy1[:, None]


def linear_taps(
    in_size: int, out_size: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two input indexes (int64) and weights (float32) of each of ``out_size`` output samples
    of torch's linear resize with ``align_corners=False``: source ``(in / out) * (i + 0.5) - 0.5``
    clamped at 0, its floor and the next index (the last one repeats), weights ``1 - f`` and ``f``.
    ``out_size``: a 0-d int64 tensor."""
    out = torch.arange(out_size, dtype=torch.float64)
    scale = in_size / out_size.to(torch.float32)  # float32, as torch computes it
    # One rounding of scale * (i + 0.5) - 0.5 (exact in float64, then float32), as torch's fused
    # multiply-add gives: two float32 roundings move a source near 256 by 3e-5, its logit by 1e-3.
    src = torch.clamp((scale.to(torch.float64) * (out + 0.5) - 0.5).to(torch.float32), min=0.0)
    i0 = torch.clamp(src.floor(), max=in_size - 1)
    w1 = torch.clamp(src - i0, 0.0, 1.0)
    i1 = torch.clamp(i0 + 1, max=in_size - 1)
    return i0.to(torch.int64), i1.to(torch.int64), 1.0 - w1, w1


class Sam2DecoderGraph(nn.Module):
    """Export-only wrapper: the SAM 2 decoder contract (see the module docstring) on a :class:`Sam2`.

    Arguments:
      model: the SAM 2 model (its prompt encoder and mask decoder are used).
      multimask: return tokens 1..3 instead of the single-mask rule's token (ignored when batched).
      batched: the prompt-batch extension, all four tokens and the object-score logits.
      factored: the decoder's fewer-operation form (same values up to rounding).
    Branches of the official code are written as arithmetic (the padding point, the mask input,
    the stability fallback), so the traced graph holds no value-dependent control flow.
    """

    def __init__(self, model: Sam2, *, multimask: bool = False, batched: bool = False, factored: bool = True):
        super().__init__()
        self.model = model
        self.multimask = multimask
        self.batched = batched
        self.factored = factored
        variant = model.variant
        self.stability_delta = variant.dynamic_multimask_stability_delta
        self.stability_thresh = variant.dynamic_multimask_stability_thresh

    @property
    def num_masks(self) -> int:
        if self.batched:
            return self.model.sam_mask_decoder.num_mask_tokens
        return self.model.variant.num_multimask_outputs if self.multimask else 1

    @property
    def input_names(self) -> tuple[str, ...]:
        return INPUT_NAMES

    @property
    def output_names(self) -> tuple[str, ...]:
        return OUTPUT_NAMES + (BATCHED_EXTRA_OUTPUTS if self.batched else ())

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
            torch.randn(1, 32, 256, 256, generator=gen),
            torch.randn(1, 64, 128, 128, generator=gen),
            torch.rand(b, num_points, 2, generator=gen) * IMAGE_SIZE,
            torch.randint(0, 4, (b, num_points), generator=gen).float(),
            torch.randn(b, 1, 256, 256, generator=gen),
            torch.ones(b),
            torch.tensor(orig_hw, dtype=torch.float32),
        )

    def forward(
        self,
        image_embeddings: torch.Tensor,
        high_res_feats_0: torch.Tensor,
        high_res_feats_1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
        orig_im_size: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        features = (image_embeddings, high_res_feats_0, high_res_feats_1)
        prompt = (point_coords, point_labels, mask_input, has_mask_input)
        low_res, iou, object_scores = self.decode_all_tokens(*features, *prompt)
        if not self.batched:
            low_res, iou = select_masks(
                low_res,
                iou,
                multimask=self.multimask,
                delta=self.stability_delta,
                threshold=self.stability_thresh,
            )
        masks = upscale_to_original(low_res, orig_im_size)
        clamped = torch.clamp(low_res, -LOW_RES_CLAMP, LOW_RES_CLAMP)
        if self.batched:
            return masks, iou, clamped, object_scores
        return masks, iou, clamped

    def decode_all_tokens(
        self,
        image_embeddings: torch.Tensor,
        high_res_feats_0: torch.Tensor,
        high_res_feats_1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unclamped low-res logits ``B x 4 x 256 x 256``, IoU ``B x 4``, object scores ``B x 1``."""
        pe = self.model.sam_prompt_encoder
        coords, labels = append_padding_point(point_coords, point_labels)
        sparse = pe.embed_labeled_points(coords, labels)
        dense = pe.dense_with_flag(mask_input, has_mask_input)
        decoder = self.model.sam_mask_decoder
        (rows, hyper_in, iou, (h, w)), object_scores = decoder.decode_tokens_and_scores(
            image_embeddings, pe.get_dense_pe(), sparse, dense, factored=self.factored
        )
        high_res = (high_res_feats_0, high_res_feats_1)
        low_res = decoder.upscale(rows, hyper_in, h, w, factored=self.factored, high_res=high_res)
        return low_res, iou, object_scores
