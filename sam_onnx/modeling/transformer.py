"""Two-way transformer of SAM's mask decoder: prompt tokens and image tokens attend to each other."""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import MLP, MLPBlock


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v projections to ``dim // downsample_rate`` channels."""

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        self.sqrt_head_dim = math.sqrt(self.internal_dim // num_heads)  # a constant, not a traced shape
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``B x Nq x C``, ``B x Nk x C``, ``B x Nk x C`` -> ``B x Nq x C``."""
        q = self._split_heads(self.q_proj(q))
        k = self._split_heads(self.k_proj(k))
        v = self._split_heads(self.v_proj(v))
        attn = (q @ k.permute(0, 1, 3, 2)) / self.sqrt_head_dim
        out = attn.softmax(dim=-1) @ v
        b, heads, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, heads * c))

    # The decoder's cross-attentions pair a few prompt tokens (T, about 7) with 4096 image tokens.
    # Projecting the image side costs N x C x C/2 multiply-adds per projection; moving the
    # projection onto the token side instead (matrix products reassociated, same result up to
    # rounding) costs N x C x heads*T, less while heads*T < C/2, i.e. T < 16 prompt tokens.

    def tokens_to_image(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` for few queries ``B x T x C`` over image keys/values ``B x N x C``.

        ``k_proj`` and ``v_proj`` are never applied to the image: each query is pulled back into
        ``k_proj``'s input space (``q_h W_k,h``), and the attention-pooled image rows go through
        ``v_proj`` afterwards (softmax rows sum to one, so its bias passes through). ``-> B x T x C``.
        """
        b, t, _ = q.shape
        c = k.shape[-1]
        heads, d = self.num_heads, self.internal_dim // self.num_heads
        qh = self.q_proj(q).reshape(b, t, heads, d).transpose(1, 2)  # B x h x T x d
        q_in = (qh @ self.k_proj.weight.reshape(heads, d, c)).reshape(b, heads * t, c)
        q_bias = (qh @ self.k_proj.bias.reshape(heads, d, 1)).reshape(b, heads * t, 1)
        logits = (k @ q_in.transpose(1, 2)).transpose(1, 2) + q_bias  # B x hT x N
        attn = (logits / self.sqrt_head_dim).softmax(dim=-1)
        pooled = (attn @ v).reshape(b, heads, t, c)  # B x h x T x C
        wv = self.v_proj.weight.reshape(heads, d, c).transpose(1, 2)
        out = pooled @ wv + self.v_proj.bias.reshape(heads, 1, d)  # B x h x T x d
        return self.out_proj(out.transpose(1, 2).reshape(b, t, heads * d))

    def image_to_tokens(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` for image queries ``B x N x C`` over few keys/values ``B x T x C``.

        ``q_proj`` and ``out_proj`` are never applied to the image: the projected keys are pulled
        back into ``q_proj``'s input space, and each head's projected values are pushed through
        its slice of ``out_proj`` before the attention weights mix them. ``-> B x N x C``.
        """
        b, n, c = q.shape
        t = k.shape[1]
        heads, d = self.num_heads, self.internal_dim // self.num_heads
        kh = self.k_proj(k).reshape(b, t, heads, d).transpose(1, 2)  # B x h x T x d
        k_in = (kh @ self.q_proj.weight.reshape(heads, d, c)).reshape(b, heads * t, c)
        k_bias = (kh @ self.q_proj.bias.reshape(heads, d, 1)).reshape(b, 1, heads * t)
        logits = (q @ k_in.transpose(1, 2) + k_bias).reshape(b, n, heads, t)
        attn = (logits / self.sqrt_head_dim).softmax(dim=-1).reshape(b, n, heads * t)
        vh = self.v_proj(v).reshape(b, t, heads, d).transpose(1, 2)  # B x h x T x d
        wo = self.out_proj.weight.reshape(c, heads, d).permute(1, 2, 0)  # h x d x C
        v_out = (vh @ wo).reshape(b, heads * t, c)
        return attn @ v_out + self.out_proj.bias


def _norm_rows(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm`` of a ``B x N x C`` tensor applied to it as ``(B*N) x C`` rows.

    The same values; onnxruntime 1.31's fused SkipLayerNormalization is about 6x slower on a
    ``1 x 4096 x 256`` input than on the same data as ``4096 x 256``.
    """
    return norm(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class TwoWayAttentionBlock(nn.Module):
    """Self-attention of tokens, tokens->image cross-attention, MLP, image->tokens cross-attention."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        *,
        skip_first_layer_pe: bool,
        mlp_layers_list: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=2)
        self.norm2 = nn.LayerNorm(embedding_dim)
        # The same ReLU MLP either way; only the tensor names differ (v1 lin1/lin2, SAM 2 layers.0/1).
        if mlp_layers_list:
            self.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, 2)
        else:
            self.mlp = MLPBlock(embedding_dim, mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, downsample_rate=2)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
        *,
        factored: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``B x T x C`` and image tokens ``B x N x C`` -> both, updated.

        ``factored`` uses :meth:`Attention.tokens_to_image` / :meth:`Attention.image_to_tokens`
        for the cross-attentions (same values up to rounding, fewer operations per prompt).
        """
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        if factored:
            k = keys + key_pe
            attended = self.cross_attn_token_to_image.tokens_to_image(queries + query_pe, k, keys)
            queries = self.norm2(queries + attended)
            queries = self.norm3(queries + self.mlp(queries))
            attended = self.cross_attn_image_to_token.image_to_tokens(k, queries + query_pe, queries)
            return queries, _norm_rows(self.norm4, keys + attended)

        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))

        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks, then a final token->image attention.

    ``mlp_layers_list``: name each block's MLP ``mlp.layers.0/1`` as SAM 2 does, instead of
    SAM v1's ``mlp.lin1/lin2`` (the same computation).
    """

    def __init__(
        self, *, depth: int, embedding_dim: int, num_heads: int, mlp_dim: int, mlp_layers_list: bool = False
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim,
                num_heads,
                mlp_dim,
                skip_first_layer_pe=(i == 0),
                mlp_layers_list=mlp_layers_list,
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=2)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self,
        image_embedding: torch.Tensor,
        image_pe: torch.Tensor,
        point_embedding: torch.Tensor,
        *,
        factored: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Arguments: image ``B x C x H x W``, its PE ``B x C x H x W``, tokens ``B x N x C``.

        Returns the processed tokens ``B x N x C`` and image tokens ``B x (H*W) x C``.
        ``factored``: see :meth:`TwoWayAttentionBlock.forward`.
        """
        keys = image_embedding.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe, factored=factored)
        q, k = queries + point_embedding, keys + key_pe
        final = self.final_attn_token_to_image
        attended = final.tokens_to_image(q, k, keys) if factored else final(q, k, keys)
        queries = self.norm_final_attn(queries + attended)
        return queries, keys
