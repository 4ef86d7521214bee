"""SAM 2.1 video: memory attention, ``memory_attention.onnx`` (export-only).

The current frame's features conditioned on an object's memories (official
``_prepare_memory_conditioned_features`` once the memories are chosen); the interface is
``VIDEO_GRAPHS["memory_attention"]`` in :mod:`sam_onnx.contract`:

  image_embeddings      1 x 256 x 64 x 64   the frame's, from encoder.onnx (the graph subtracts
                                            no_mem_embed: memory attention reads the raw map)
  memory                B x M x 64 x 64 x 64  M >= 1 stored memories (float32 of bfloat16 values)
  memory_slots          B x M int64      temporal slot of each (0 conditioning, 1..6 recent, 6 adjacent)
  obj_ptrs              B x P x 256      P >= 0 object pointers
  obj_ptr_distances     B x P int64      signed temporal distance of each
  obj_ptr_max_distance  int64 scalar     min(num_frames, max_obj_ptrs) - 1
  -> conditioned_embeddings B x 256 x 64 x 64

M and P are dynamic, with no padding. What the runtime would otherwise need weights for is
computed here: a memory's temporal encoding is ``maskmem_tpos_enc[num_maskmem - 1 - slot]``; a
pointer's position is ``obj_ptr_tpos_proj`` of the 256-channel sine of
``distance / max_distance``, repeated for its 4 tokens (the pointer split into 4 tokens of 64
channels); the sine grids are constants. :meth:`Sam2Video.spatial_memory` and
:meth:`~Sam2Video.pointer_memory` compute the same from Python lists (the reference).
"""

from __future__ import annotations

import torch

from sam_onnx.modeling.position_encoding import sine_1d_encoding

from .video_graph import VideoGraph


class MemoryAttentionGraph(VideoGraph):
    """Export-only wrapper of :class:`Sam2Video`'s memory attention (see the module docstring)."""

    role = "memory_attention"

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        memories, pointers = {0: "B", 1: "M"}, {0: "B", 1: "P"}
        return {
            "memory": memories,
            "memory_slots": memories,
            "obj_ptrs": pointers,
            "obj_ptr_distances": pointers,
            "conditioned_embeddings": {0: "B"},
        }

    def example_inputs(
        self, batch: int = 2, memories: int = 2, pointers: int = 3
    ) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(0)
        spec = self.model.variant.video
        return (
            torch.randn(1, 256, 64, 64, generator=gen),
            torch.randn(batch, memories, spec.mem_dim, 64, 64, generator=gen),
            torch.randint(0, spec.num_maskmem, (batch, memories), generator=gen),
            torch.randn(batch, pointers, 256, generator=gen),
            torch.randint(1, 8, (batch, pointers), generator=gen),
            torch.tensor(7, dtype=torch.int64),
        )

    def forward(
        self,
        image_embeddings: torch.Tensor,
        memory: torch.Tensor,
        memory_slots: torch.Tensor,
        obj_ptrs: torch.Tensor,
        obj_ptr_distances: torch.Tensor,
        obj_ptr_max_distance: torch.Tensor,
    ) -> torch.Tensor:
        model = self.model
        b = memory.shape[0]
        features = model.map_from_image_embeddings(image_embeddings).expand(b, -1, -1, -1)
        table = model.maskmem_tpos_enc.reshape(model.maskmem_tpos_enc.shape[0], -1)
        memory_tpos = table[table.shape[0] - 1 - memory_slots]  # B x M x mem_dim
        mem_dim = table.shape[1]
        per_pointer = obj_ptrs.shape[-1] // mem_dim
        # ONNX Reshape copies the input's axis where the target says 0: with 0 pointers a target
        # of (b, 0, c) would read as (b, <input axis 1>, c), so the pointer axis is always -1
        positions = obj_ptr_distances.to(torch.float32) / obj_ptr_max_distance.to(torch.float32)
        sine = sine_1d_encoding(positions.reshape(-1), obj_ptrs.shape[-1])  # BP x 256
        ptr_pos = model.obj_ptr_tpos_proj(sine).reshape(b, -1, 1, mem_dim)  # B x P x 1 x mem_dim
        ptr_tokens = obj_ptrs.reshape(b, -1, mem_dim)  # a pointer's 4 tokens: its 64-channel quarters
        ptr_pos = ptr_pos.expand(-1, -1, per_pointer, -1).reshape(b, -1, mem_dim)
        return model.memory_attention(features, memory, memory_tpos, ptr_tokens, ptr_pos)
