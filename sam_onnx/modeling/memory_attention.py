"""SAM 2's memory attention: the current frame's 64x64 features attend to themselves and to the
memory of other frames (spatial memories and object pointers), rotary position encoding on both.

Follows the official ``MemoryAttention`` / ``MemoryAttentionLayer`` / ``RoPEAttention`` (sam2 1.1.0)
in eval mode, with attribute names that give the official checkpoint's ``memory_attention.*``
tensor names. What differs is the interface, written for export:

- the spatial memories (``B x M x mem_dim x H x W``, the memory encoder's outputs stacked) and the
  object-pointer tokens (``B x T x mem_dim``) come as two inputs, each of any length (0 included),
  instead of one concatenated sequence plus a count of trailing tokens to leave un-rotated; keys
  and values are projected per token, so projecting the two parts apart is the official
  computation;
- a memory's position encoding is the constant sine grid (a buffer here) plus its temporal
  encoding, a ``mem_dim`` vector per memory given as ``memory_tpos``;
- the rotary encoding is real arithmetic on fixed cos / sin tables (:mod:`.position_encoding`),
  broadcast over the memories: every spatial memory gets the query grid's rotation (the official
  ``rope_k_repeat``); the number of memories stays a dimension of the inputs, never a number
  computed in Python, which tracing would freeze. Traced to ONNX with the memory and pointer axes
  dynamic, onnxruntime runs any number of pointers (0 included) and of memories >= 1 (a
  reshape's ``-1`` cannot be resolved on 0 memories; a memory-conditioned frame always has its
  object's conditioning memory);
- the current frame's sine position encoding is a constant of the module, not an input.

Token order everywhere: a grid's tokens row-major (index ``y * W + x``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .position_encoding import apply_rope, axial_rope_tables, sine_grid_encoding

# Official: the current frame's position encoding is added once at the input, scaled by 0.1.
INPUT_POS_SCALE = 0.1


class RoPEAttention(nn.Module):
    """Multi-head attention whose queries and spatial keys are rotated by their grid position.

    ``q_proj`` / ``out_proj`` are ``dim -> dim``; ``k_proj`` / ``v_proj`` take ``kv_dim`` channels
    (64 for the cross-attention to memories). ``grid_hw`` is the query grid (64 x 64): queries,
    and each spatial memory's keys, are exactly its tokens.
    """

    def __init__(
        self, dim: int, num_heads: int, *, kv_dim: int | None = None, grid_hw: tuple[int, int], theta: float
    ) -> None:
        super().__init__()
        kv_dim = dim if kv_dim is None else kv_dim
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(kv_dim, dim)
        self.v_proj = nn.Linear(kv_dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        # values narrower than a head are cheaper to attend over before their projection (forward)
        self.project_values_after = kv_dim < dim // num_heads
        cos, sin = axial_rope_tables(dim // num_heads, grid_hw[1], grid_hw[0], theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``B x N x C`` -> ``B x heads x N x C/heads``."""
        return x.unflatten(-1, (self.num_heads, x.shape[-1] // self.num_heads)).transpose(1, 2)

    def _rotate(self, x: torch.Tensor) -> torch.Tensor:
        return apply_rope(x, self.rope_cos, self.rope_sin)

    def _memory_heads(self, x: torch.Tensor, rotate: bool) -> torch.Tensor:
        """``B x M x grid x C`` -> ``B x heads x (M * grid) x C/heads``, rotated per memory."""
        x = x.unflatten(-1, (self.num_heads, x.shape[-1] // self.num_heads)).permute(0, 3, 1, 2, 4)
        return (self._rotate(x) if rotate else x).flatten(2, 3)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_k: torch.Tensor, extra_v: torch.Tensor
    ) -> torch.Tensor:
        """Attention of queries ``q`` (``B x grid x dim``) to spatial keys / values ``k`` / ``v``
        (``B x M x grid x kv_dim``, keys rotated) followed by ``extra_k`` / ``extra_v``
        (``B x T x kv_dim``, not rotated: object-pointer tokens). Returns ``B x grid x dim``."""
        q = self._rotate(self._heads(self.q_proj(q)))
        k = torch.cat([self._memory_heads(self.k_proj(k), True), self._heads(self.k_proj(extra_k))], dim=2)
        if not self.project_values_after:
            v = torch.cat(
                [self._memory_heads(self.v_proj(v), False), self._heads(self.v_proj(extra_v))], dim=2
            )
            return self.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2))
        # Each attention row sums to 1, so attn @ (v W^T + b) == (attn @ v) W^T + b: attending over
        # the raw kv_dim-wide values and projecting the result is the same attention, with a
        # value product kv_dim / head_dim as large (64 / 256 for the memories: the bulk of a
        # tracked frame's work is this product over ~28 k memory tokens).
        raw_v = torch.cat([v.flatten(1, 2), extra_v], dim=1)[:, None]  # B x 1 x N x kv_dim
        out = F.scaled_dot_product_attention(q, k, raw_v.expand(-1, self.num_heads, -1, -1))
        weight = self.v_proj.weight.unflatten(0, (self.num_heads, -1))  # heads x head_dim x kv_dim
        bias = self.v_proj.bias.unflatten(0, (self.num_heads, -1))[:, None]  # heads x 1 x head_dim
        out = torch.matmul(out, weight.transpose(1, 2)) + bias  # B x heads x N_q x head_dim
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def self_attention(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (``B x grid x dim``) attending to itself, queries and keys rotated."""
        q = self._rotate(self._heads(self.q_proj(x)))
        k = self._rotate(self._heads(self.k_proj(x)))
        out = F.scaled_dot_product_attention(q, k, self._heads(self.v_proj(x)))
        return self.out_proj(out.transpose(1, 2).flatten(2))


class MemoryAttentionLayer(nn.Module):
    """Pre-norm block: self-attention (no position added), cross-attention to the memories (their
    position encoding added to the keys only), ReLU feed-forward; dropout is off (eval)."""

    def __init__(
        self, *, self_attn: RoPEAttention, cross_attn: RoPEAttention, dim: int, mlp_dim: int
    ) -> None:
        super().__init__()
        self.self_attn = self_attn
        self.cross_attn_image = cross_attn
        self.linear1 = nn.Linear(dim, mlp_dim)
        self.linear2 = nn.Linear(mlp_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        ptr_tokens: torch.Tensor,
        ptr_pos: torch.Tensor,
    ) -> torch.Tensor:
        """``x`` ``B x grid x dim``; ``memory`` / ``memory_pos`` ``B x M x grid x mem_dim``;
        ``ptr_tokens`` / ``ptr_pos`` ``B x T x mem_dim``. Returns ``B x grid x dim``."""
        x = x + self.self_attn.self_attention(self.norm1(x))
        q = self.norm2(x)
        x = x + self.cross_attn_image(q, memory + memory_pos, memory, ptr_tokens + ptr_pos, ptr_tokens)
        return x + self.linear2(torch.relu(self.linear1(self.norm3(x))))


class MemoryAttention(nn.Module):
    """The current frame's features conditioned on memories: ``layers`` then a final LayerNorm.

    ``grid_hw`` is the feature grid (64 x 64 at 1024 pixels), ``dim`` its channels (256),
    ``mem_dim`` a memory's channels (64).
    """

    def __init__(
        self, *, layers: list[MemoryAttentionLayer], dim: int, mem_dim: int, grid_hw: tuple[int, int]
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(dim)
        image_pos = sine_grid_encoding(dim, *grid_hw).flatten(2).transpose(1, 2)  # 1 x grid x dim
        self.register_buffer("image_pos", image_pos, persistent=False)
        # the memory encoder's position encoding: 1 x 1 x grid x mem_dim
        memory_pos = sine_grid_encoding(mem_dim, *grid_hw).flatten(2).transpose(1, 2)[None]
        self.register_buffer("memory_pos", memory_pos, persistent=False)

    def forward(
        self,
        image_features: torch.Tensor,
        memory: torch.Tensor,
        memory_tpos: torch.Tensor,
        ptr_tokens: torch.Tensor,
        ptr_pos: torch.Tensor,
    ) -> torch.Tensor:
        """Condition one frame's features on the memory bank.

        Arguments:
          image_features: ``B x dim x H x W`` float32, the frame's 64x64 neck map as the encoder
            gives it (no ``no_mem_embed``).
          memory: ``B x M x mem_dim x H x W``: M >= 0 spatial memories (memory encoder outputs;
            the official predictor's are bfloat16 values), stacked.
          memory_tpos: ``B x M x mem_dim``: each memory's temporal encoding
            (``maskmem_tpos_enc[num_maskmem - 1 - t_pos]``), added with the sine grid to its keys.
          ptr_tokens: ``B x T x mem_dim``: T = 4 * P tokens of P >= 0 object pointers
            (:meth:`~.sam2_video.Sam2Video.pointer_memory`).
          ptr_pos: same shape: the pointers' temporal encodings.
        M and P may not both be 0. Returns ``B x dim x H x W`` float32, what the heads receive.
        """
        b, c, h, w = image_features.shape
        x = image_features.flatten(2).transpose(1, 2) + INPUT_POS_SCALE * self.image_pos
        memory = memory.flatten(3).transpose(2, 3)  # B x M x grid x mem_dim
        memory_pos = self.memory_pos + memory_tpos[:, :, None, :]
        for layer in self.layers:
            x = layer(x, memory, memory_pos, ptr_tokens, ptr_pos)
        return self.norm(x).transpose(1, 2).reshape(b, c, h, w)
