"""Mask decoder of SAM: image embedding + prompt tokens -> mask logits and predicted IoU."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP, LayerNorm2d
from .transformer import TwoWayTransformer


class DecodedTokens(NamedTuple):
    """What the mask decoder knows before it upscales a mask.

    image_rows: ``B x (h*w) x C`` image tokens after the transformer, pixels row-major.
    hyper_in: ``B x 4 x C/8`` one mask's channel weights per mask token.
    iou_predictions: ``B x 4`` predicted IoU per mask token.
    grid_hw: (h, w) of the embedding grid (64 x 64).
    """

    image_rows: torch.Tensor
    hyper_in: torch.Tensor
    iou_predictions: torch.Tensor
    grid_hw: tuple[int, int]


class MaskDecoder(nn.Module):
    """Predicts ``num_multimask_outputs + 1`` masks per prompt and an IoU score for each.

    Mask token 0 is the single-mask output; tokens 1..3 are the multimask outputs.

    SAM 2's decoder is this one with three keyword settings on (all off for SAM v1):
      object_score_head: an ``obj_score_token`` placed before the IoU token, read by the
        ``pred_obj_score_head`` MLP (3 layers, ``C -> C -> 1``): object-score logits ``B x 1``.
      high_res_skips: ``conv_s0`` (``C -> C/8``) and ``conv_s1`` (``C -> C/4``) 1x1 convs, applied
        by the caller at encode time to the encoder's 4x and 2x finer maps, which the upscaling
        adds after each transposed convolution (see :meth:`upscale`).
      iou_sigmoid: the IoU head's output goes through a sigmoid.
    """

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        object_score_head: bool = False,
        high_res_skips: bool = False,
        iou_sigmoid: bool = False,
    ) -> None:
        super().__init__()
        self.transformer = transformer
        self.num_mask_tokens = num_multimask_outputs + 1
        self.has_object_score = object_score_head
        self.iou_sigmoid = iou_sigmoid
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        if object_score_head:
            self.obj_score_token = nn.Embedding(1, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        if high_res_skips:
            self.conv_s0 = nn.Conv2d(transformer_dim, transformer_dim // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(transformer_dim, transformer_dim // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3)
            for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth
        )
        if object_score_head:
            self.pred_obj_score_head = MLP(transformer_dim, transformer_dim, 1, 3)

    def decode_tokens(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        *,
        factored: bool = False,
    ) -> DecodedTokens:
        """The two-way transformer and the token heads, before any mask is upscaled.

        Arguments as :meth:`predict_masks`. Returns a :class:`DecodedTokens`.
        """
        return self.decode_tokens_and_scores(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, factored=factored
        )[0]

    def decode_tokens_and_scores(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        *,
        factored: bool = False,
    ) -> tuple[DecodedTokens, torch.Tensor | None]:
        """:meth:`decode_tokens` plus the object-score logits ``B x 1`` (None without
        ``object_score_head``)."""
        decoded, object_scores, _ = self.decode_with_mask_tokens(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, factored=factored
        )
        return decoded, object_scores

    def decode_with_mask_tokens(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        *,
        factored: bool = False,
    ) -> tuple[DecodedTokens, torch.Tensor | None, torch.Tensor]:
        """:meth:`decode_tokens_and_scores` plus the mask tokens after the transformer,
        ``B x 4 x C`` (token 0 the single-mask one): SAM 2's video path makes its object pointer
        from one of them."""
        batch = sparse_prompt_embeddings.shape[0]
        heads = [self.iou_token.weight, self.mask_tokens.weight]
        if self.has_object_score:
            heads.insert(0, self.obj_score_token.weight)
        output_tokens = torch.cat(heads, dim=0)
        output_tokens = output_tokens.unsqueeze(0).expand(batch, -1, -1)
        tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)

        src = image_embeddings.expand(batch, -1, -1, -1) + dense_prompt_embeddings
        pos_src = image_pe.expand(batch, -1, -1, -1)
        h, w = src.shape[-2:]

        hs, src = self.transformer(src, pos_src, tokens, factored=factored)
        first = 1 if self.has_object_score else 0  # index of the IoU token
        iou_token_out = hs[:, first, :]
        mask_tokens_out = hs[:, first + 1 : first + 1 + self.num_mask_tokens, :]
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        iou_pred = self.iou_prediction_head(iou_token_out)
        if self.iou_sigmoid:
            iou_pred = torch.sigmoid(iou_pred)
        object_scores = self.pred_obj_score_head(hs[:, 0, :]) if self.has_object_score else None
        return DecodedTokens(src, hyper_in, iou_pred, (h, w)), object_scores, mask_tokens_out

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        *,
        factored: bool = False,
        high_res: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All mask tokens at once.

        Arguments:
          image_embeddings: ``1 x C x 64 x 64`` (or ``B x ...``: one per prompt batch entry).
          image_pe: ``1 x C x 64 x 64`` dense positional encoding.
          sparse_prompt_embeddings: ``B x N x C`` prompt tokens.
          dense_prompt_embeddings: ``B x C x 64 x 64`` mask embedding.
          factored: the form the exported decoder uses, the same values up to rounding with
            fewer operations per prompt: cross-attention projections moved to the token side
            (:meth:`Attention.tokens_to_image`) and the upscaling done on channel-last rows
            (:meth:`upscale_rows`).
          high_res: SAM 2's skip features (``B x C/8 x 256 x 256``, ``B x C/4 x 128 x 128``),
            see :meth:`upscale`.
        Returns mask logits ``B x 4 x 256 x 256`` and IoU predictions ``B x 4``.
        """
        decoded = self.decode_tokens(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, factored=factored
        )
        rows, hyper_in, iou_pred, (h, w) = decoded
        return self.upscale(rows, hyper_in, h, w, factored=factored, high_res=high_res), iou_pred

    def upscale(
        self,
        rows: torch.Tensor,
        hyper_in: torch.Tensor,
        h: int,
        w: int,
        *,
        factored: bool = False,
        high_res: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Mask logits ``B x M x 4h x 4w`` from image tokens ``B x (h*w) x C`` (row-major pixels)
        and hypernetwork outputs ``B x M x C/8``: ``output_upscaling``, then each token's
        channel weights. ``factored``: as :meth:`upscale_rows`, else as officially (NCHW).

        ``high_res`` (SAM 2): ``(feat_s0, feat_s1)``, NCHW of ``C/8 x 4h x 4w`` and ``C/4 x 2h x 2w``
        (batch 1 or B), the outputs of ``conv_s0`` / ``conv_s1``; the upscaling becomes
        ``GELU(LN(dc1(x) + feat_s1))``, then ``GELU(dc2(.) + feat_s0)``."""
        if factored:
            return self.upscale_rows(rows, hyper_in, h, w, high_res=high_res)
        b, _, c = rows.shape
        x = rows.transpose(1, 2).reshape(b, c, h, w)
        if high_res is None:
            upscaled = self.output_upscaling(x)
        else:
            up1, norm, act1, up2, act2 = self.output_upscaling
            feat_s0, feat_s1 = high_res
            upscaled = act2(up2(act1(norm(up1(x) + feat_s1))) + feat_s0)
        b, c, h, w = upscaled.shape
        return (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)

    def upscale_rows(
        self,
        src: torch.Tensor,
        hyper_in: torch.Tensor,
        h: int,
        w: int,
        *,
        high_res: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """:meth:`upscale` on channel-last rows, the same values up to rounding.

        A ConvTranspose2d with kernel 2 and stride 2 maps each input pixel to its own 2 x 2
        output pixels, so both are matrix products on channel-last rows, and the channel
        LayerNorm is a LayerNorm over the last axis. Rows stay in ``(pixel, 2x2 offset, 2x2
        offset)`` order until the ``M``-channel masks are put into image order once at the end;
        ``high_res`` (NCHW, as in :meth:`upscale`) is put into that row order first
        (:func:`high_res_as_rows`).
        """
        up1, norm, act1, up2, act2 = self.output_upscaling
        b = src.shape[0]
        c1, c2 = up1.out_channels, up2.out_channels
        skips = high_res_as_rows(high_res, h, w) if high_res is not None else None
        w1 = up1.weight.permute(0, 2, 3, 1).reshape(up1.in_channels, 4 * c1)  # C x (dy, dx, c1)
        x = (src @ w1).reshape(b, -1, c1) + up1.bias  # B x 4N x C1
        if skips is not None:
            x = x + skips[1]
        x = act1(F.layer_norm(x, (c1,), norm.weight, norm.bias, norm.eps))
        w2 = up2.weight.permute(0, 2, 3, 1).reshape(c1, 4 * c2)
        x = (x @ w2).reshape(b, -1, c2) + up2.bias  # B x 16N x C2
        if skips is not None:
            x = x + skips[0]
        x = act2(x)
        masks = x @ hyper_in.transpose(1, 2)  # B x 16N x M, rows (y, x, dy1, dx1, dy2, dx2)
        m = hyper_in.shape[1]
        masks = masks.reshape(b, h, w, 2, 2, 2, 2, m).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return masks.reshape(b, m, 4 * h, 4 * w)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Official ``MaskDecoder.forward``: tokens 1..3 when ``multimask_output``, else token 0.

        Returns mask logits ``B x M x 256 x 256`` and IoU predictions ``B x M``.
        """
        masks, iou_pred = self.predict_masks(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings
        )
        picked = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, picked], iou_pred[:, picked]


def high_res_as_rows(
    high_res: tuple[torch.Tensor, torch.Tensor], h: int, w: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM 2's skip features in :meth:`MaskDecoder.upscale_rows`' row order.

    ``feat_s0`` ``B x C0 x 4h x 4w`` -> ``B x 16hw x C0`` rows ``(y, x, dy1, dx1, dy2, dx2)``;
    ``feat_s1`` ``B x C1 x 2h x 2w`` -> ``B x 4hw x C1`` rows ``(y, x, dy, dx)``, where an output
    pixel's row is ``2y + dy`` (``4y + 2 dy1 + dy2``) and its column likewise.
    """
    feat_s0, feat_s1 = high_res
    b0, c0 = feat_s0.shape[:2]
    b1, c1 = feat_s1.shape[:2]
    rows_s1 = feat_s1.reshape(b1, c1, h, 2, w, 2).permute(0, 2, 4, 3, 5, 1).reshape(b1, -1, c1)
    rows_s0 = feat_s0.reshape(b0, c0, h, 2, 2, w, 2, 2).permute(0, 2, 5, 3, 6, 4, 7, 1).reshape(b0, -1, c0)
    return rows_s0, rows_s1
