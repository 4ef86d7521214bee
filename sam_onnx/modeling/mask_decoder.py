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
    """

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        self.transformer = transformer
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3)
            for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth
        )

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
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        output_tokens = output_tokens.unsqueeze(0).expand(batch, -1, -1)
        tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)

        src = image_embeddings.expand(batch, -1, -1, -1) + dense_prompt_embeddings
        pos_src = image_pe.expand(batch, -1, -1, -1)
        h, w = src.shape[-2:]

        hs, src = self.transformer(src, pos_src, tokens, factored=factored)
        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1 : 1 + self.num_mask_tokens, :]
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        return DecodedTokens(src, hyper_in, self.iou_prediction_head(iou_token_out), (h, w))

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        *,
        factored: bool = False,
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
        Returns mask logits ``B x 4 x 256 x 256`` and IoU predictions ``B x 4``.
        """
        decoded = self.decode_tokens(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, factored=factored
        )
        rows, hyper_in, iou_pred, (h, w) = decoded
        return self.upscale(rows, hyper_in, h, w, factored=factored), iou_pred

    def upscale(
        self, rows: torch.Tensor, hyper_in: torch.Tensor, h: int, w: int, *, factored: bool = False
    ) -> torch.Tensor:
        """Mask logits ``B x M x 4h x 4w`` from image tokens ``B x (h*w) x C`` (row-major pixels)
        and hypernetwork outputs ``B x M x C/8``: ``output_upscaling``, then each token's
        channel weights. ``factored``: as :meth:`upscale_rows`, else as officially (NCHW)."""
        if factored:
            return self.upscale_rows(rows, hyper_in, h, w)
        b, _, c = rows.shape
        upscaled = self.output_upscaling(rows.transpose(1, 2).reshape(b, c, h, w))
        b, c, h, w = upscaled.shape
        return (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)

    def upscale_rows(self, src: torch.Tensor, hyper_in: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """:meth:`upscale` on channel-last rows, the same values up to rounding.

        A ConvTranspose2d with kernel 2 and stride 2 maps each input pixel to its own 2 x 2
        output pixels, so both are matrix products on channel-last rows, and the channel
        LayerNorm is a LayerNorm over the last axis. Rows stay in ``(pixel, 2x2 offset, 2x2
        offset)`` order until the ``M``-channel masks are put into image order once at the end.
        """
        up1, norm, act1, up2, act2 = self.output_upscaling
        b = src.shape[0]
        c1, c2 = up1.out_channels, up2.out_channels
        w1 = up1.weight.permute(0, 2, 3, 1).reshape(up1.in_channels, 4 * c1)  # C x (dy, dx, c1)
        x = (src @ w1).reshape(b, -1, c1) + up1.bias  # B x 4N x C1
        x = act1(F.layer_norm(x, (c1,), norm.weight, norm.bias, norm.eps))
        w2 = up2.weight.permute(0, 2, 3, 1).reshape(c1, 4 * c2)
        x = act2((x @ w2).reshape(b, -1, c2) + up2.bias)  # B x 16N x C2
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
