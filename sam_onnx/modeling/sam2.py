"""SAM 2 / 2.1 for images, assembled from its parts, and the official mask-selection rule.

The image path of the official ``SAM2Base`` as ``SAM2ImagePredictor`` runs it: Hiera + FPN image
encoder, the decoder's ``conv_s0`` / ``conv_s1`` on the two finer maps and ``no_mem_embed`` on the
64x64 one at encode time; then v1's prompt encoder and the mask decoder extended with SAM 2's
object-score token, skip connections and sigmoid IoU head. Attribute names are the official
ones, so the state dict is the official checkpoint's image-path tensors.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..variants import PROMPT_EMBED_DIM, Sam2Variant
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder


class Sam2Features(NamedTuple):
    """The encoder side's output for one image (float32, NCHW).

    image_embed: ``1 x 256 x 64 x 64``, ``no_mem_embed`` added.
    high_res_feats_0: ``1 x 32 x 256 x 256`` (``conv_s0`` of the finest map).
    high_res_feats_1: ``1 x 64 x 128 x 128`` (``conv_s1`` of the next map).
    """

    image_embed: torch.Tensor
    high_res_feats_0: torch.Tensor
    high_res_feats_1: torch.Tensor


class Sam2Decoded(NamedTuple):
    """Every mask token's output for a batch of B prompts (float32).

    low_res_logits: ``B x 4 x 256 x 256``, token 0 the single-mask output, 1..3 the multimask ones
      (not clamped).
    iou_predictions: ``B x 4`` (after the sigmoid).
    object_score_logits: ``B x 1``.
    """

    low_res_logits: torch.Tensor
    iou_predictions: torch.Tensor
    object_score_logits: torch.Tensor


class Sam2(nn.Module):
    """SAM 2's image path: image encoder, prompt encoder and mask decoder, passed in as parts.

    ``image_encoder`` maps a normalised ``1 x 3 x 1024 x 1024`` image to its three finest FPN maps
    (``[1 x 256 x 256 x 256, 1 x 256 x 128 x 128, 1 x 256 x 64 x 64]``, finest first).
    """

    mask_threshold: float = 0.0

    def __init__(
        self,
        *,
        image_encoder: nn.Module,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        variant: Sam2Variant,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.sam_prompt_encoder = prompt_encoder
        self.sam_mask_decoder = mask_decoder
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, PROMPT_EMBED_DIM))
        self.variant = variant

    @property
    def prompt_modules(self) -> tuple[PromptEncoder, MaskDecoder]:
        """(prompt encoder, mask decoder) under their official SAM 2 names (``sam_*``)."""
        return self.sam_prompt_encoder, self.sam_mask_decoder

    def encode(self, image: torch.Tensor) -> Sam2Features:
        """Normalised ``1 x 3 x 1024 x 1024`` float32 image -> :class:`Sam2Features`."""
        fine, middle, coarse = self.image_encoder(image)
        return self.features_from_maps(fine, middle, coarse)

    def features_from_maps(
        self, fine: torch.Tensor, middle: torch.Tensor, coarse: torch.Tensor
    ) -> Sam2Features:
        """The encode-time steps after the encoder: ``conv_s0`` on the 256x256 map, ``conv_s1`` on the
        128x128 one, ``no_mem_embed`` added to the 64x64 one (all ``B x 256 x h x w``)."""
        decoder = self.sam_mask_decoder
        image_embed = coarse + self.no_mem_embed.reshape(1, -1, 1, 1)
        return Sam2Features(image_embed, decoder.conv_s0(fine), decoder.conv_s1(middle))

    def decode(
        self,
        image_embed: torch.Tensor,
        high_res_feats_0: torch.Tensor,
        high_res_feats_1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor | None = None,
        *,
        factored: bool = False,
    ) -> Sam2Decoded:
        """All four mask tokens for B prompts on one image.

        Arguments:
          image_embed, high_res_feats_0, high_res_feats_1: :class:`Sam2Features` of one image
            (batch 1; shared by the B prompts).
          point_coords: ``B x N x 2`` float32 (x, y) in the 1024 x 1024 frame, box corners first.
          point_labels: ``B x N``: 1 positive, 0 negative, 2 / 3 box top-left / bottom-right
            (-1 padding, allowed but not needed: one padding point is always appended).
          mask_input: ``B x 1 x 256 x 256`` low-res logits, or None (``no_mask_embed``).
          factored: the decoder's fewer-operation form (see :meth:`MaskDecoder.predict_masks`).
        Returns :class:`Sam2Decoded`; pick masks with :func:`select_masks`.
        """
        sparse, dense = self.sam_prompt_encoder((point_coords, point_labels), None, mask_input)
        features = Sam2Features(image_embed, high_res_feats_0, high_res_feats_1)
        return self.decode_embeddings(features, sparse, dense, factored=factored)

    def decode_embeddings(
        self, features: Sam2Features, sparse: torch.Tensor, dense: torch.Tensor, *, factored: bool = False
    ) -> Sam2Decoded:
        """:meth:`decode` from prompt embeddings: ``sparse`` ``B x T x 256`` tokens and ``dense``
        ``B x 256 x 64 x 64`` (the prompt encoder's outputs)."""
        image_embed, high_res_feats_0, high_res_feats_1 = features
        decoder = self.sam_mask_decoder
        decoded, object_scores = decoder.decode_tokens_and_scores(
            image_embed, self.sam_prompt_encoder.get_dense_pe(), sparse, dense, factored=factored
        )
        rows, hyper_in, iou_pred, (h, w) = decoded
        high_res = (high_res_feats_0, high_res_feats_1)
        low_res = decoder.upscale(rows, hyper_in, h, w, factored=factored, high_res=high_res)
        return Sam2Decoded(low_res, iou_pred, object_scores)


def stability_scores(mask_logits: torch.Tensor, delta: float) -> torch.Tensor:
    """``count(logit > delta) / count(logit > -delta)`` over the last two axes (1.0 when nothing
    exceeds ``-delta``). ``... x h x w`` float -> ``...`` float32; branch-free, traces to ONNX."""
    inter = (mask_logits > delta).sum(-1, dtype=torch.int32).sum(-1, dtype=torch.int32).float()
    union = (mask_logits > -delta).sum(-1, dtype=torch.int32).sum(-1, dtype=torch.int32).float()
    return torch.where(union > 0, inter / union.clamp(min=1.0), torch.ones_like(union))


def single_mask_index(
    low_res_logits: torch.Tensor, iou_predictions: torch.Tensor, *, delta: float, threshold: float
) -> torch.Tensor:
    """SAM 2's single-mask rule: token 0 when its stability (:func:`stability_scores` at
    ``delta``) is ``>= threshold``, else the token among 1..3 with the highest IoU (first on ties).

    ``low_res_logits`` ``B x 4 x h x w`` (unclamped), ``iou_predictions`` ``B x 4``.
    Returns ``B x 1`` int64.
    """
    stable = stability_scores(low_res_logits[:, 0], delta) >= threshold
    best_multi = torch.argmax(iou_predictions[:, 1:], dim=1) + 1
    return torch.where(stable, torch.zeros_like(best_multi), best_multi)[:, None]


def select_masks(
    low_res_logits: torch.Tensor,
    iou_predictions: torch.Tensor,
    *,
    multimask: bool,
    delta: float = 0.05,
    threshold: float = 0.98,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official output of :class:`Sam2Decoded`: tokens 1..3 with ``multimask``, else the
    :func:`single_mask_index` token (defaults: the SAM 2.1 variants' delta and threshold).

    Returns logits ``B x M x h x w`` and IoU ``B x M``, M = 3 or 1.
    """
    if multimask:
        return low_res_logits[:, 1:], iou_predictions[:, 1:]
    best = single_mask_index(low_res_logits, iou_predictions, delta=delta, threshold=threshold)
    index = best[:, :, None, None].expand(-1, -1, low_res_logits.shape[2], low_res_logits.shape[3])
    return torch.gather(low_res_logits, 1, index), torch.gather(iou_predictions, 1, best)
