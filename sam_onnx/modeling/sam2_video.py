"""SAM 2.1 for video: the image path plus the memory modules, as the official ``SAM2Base``
(sam2 1.1.0, ``build_sam2_video_predictor`` settings) computes one object on one frame.

:class:`Sam2Video` is :class:`~.sam2.Sam2` (image encoder, prompt encoder, mask decoder,
``no_mem_embed``) with the video parts passed in and the video-only tensors under their official
names (``memory_attention.*``, ``memory_encoder.*``, ``maskmem_tpos_enc``, ``no_mem_pos_enc``,
``no_obj_ptr``, ``no_obj_embed_spatial``, ``obj_ptr_proj.*``, ``obj_ptr_tpos_proj.*``,
``mask_downsample.*``), so its state dict is the whole official checkpoint. One method per step
of a frame, each branch-free on tensor values (flags that decide a branch may be boolean
tensors), so that export can wrap them:

- :meth:`Sam2Video.encode_frame`: the frame's maps; the 64x64 one *without* ``no_mem_embed``;
- the features the heads see: :meth:`~Sam2Video.init_cond_features` on a frame prompted before
  tracking reached it (``no_mem_embed`` added), else :meth:`~Sam2Video.condition_on_memory`
  (memory attention on memories gathered by :meth:`~Sam2Video.spatial_memory` and
  :meth:`~Sam2Video.pointer_memory` from a :class:`~sam_onnx.video_memory.MemoryPlan`);
- :meth:`~Sam2Video.track_heads`: masks, object score and object pointer, or
  :meth:`~Sam2Video.mask_as_output` for a mask prompt;
- :meth:`~Sam2Video.encode_memory`: the memory stored for later frames (the official predictor
  rounds it to bfloat16: :func:`round_to_bfloat16`).

Shapes: features NCHW float32; token sequences ``B x N x C`` with a grid's tokens row-major;
point coordinates (x, y) in the 1024 x 1024 frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidInputError
from ..variants import EMBED_HW, IMAGE_SIZE, PROMPT_EMBED_DIM, Sam2Variant
from .common import MLP
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder
from .position_encoding import sine_1d_encoding
from .prompt_encoder import PromptEncoder
from .sam2 import Sam2, single_mask_index

# Official NO_OBJ_SCORE: the low-res logits of a frame whose object score is <= 0.
NO_OBJECT_LOGIT = -1024.0
# Official _use_mask_as_output: a mask prompt becomes logits of -10 / +10.
MASK_PROMPT_SCALE, MASK_PROMPT_BIAS = 20.0, -10.0


class Sam2FrameFeatures(NamedTuple):
    """The image encoder's output for a frame, as the video path holds it (float32, NCHW).

    vision_features: ``B x 256 x 64 x 64``, the neck's map (no ``no_mem_embed``).
    high_res_feats_0: ``B x 32 x 256 x 256`` (``conv_s0``).
    high_res_feats_1: ``B x 64 x 128 x 128`` (``conv_s1``).
    """

    vision_features: torch.Tensor
    high_res_feats_0: torch.Tensor
    high_res_feats_1: torch.Tensor


class TrackOutput(NamedTuple):
    """One frame's outputs for B objects (float32).

    low_res_masks: ``B x 1 x 256 x 256`` logits of the chosen mask, -1024 everywhere when the
      object score is <= 0; not clamped, before hole filling (what the memory encoder uses).
    ious: ``B x 1`` predicted IoU of that mask.
    obj_ptr: ``B x 256`` object pointer (``no_obj_ptr`` when the object is absent).
    object_score_logits: ``B x 1``.
    """

    low_res_masks: torch.Tensor
    ious: torch.Tensor
    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor


class Sam2Video(Sam2):
    """SAM 2's video model: :class:`Sam2`'s parts plus ``memory_attention`` and ``memory_encoder``
    (passed in) and the small video tensors (built here from ``variant.video``)."""

    def __init__(
        self,
        *,
        image_encoder: nn.Module,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        memory_attention: MemoryAttention,
        memory_encoder: MemoryEncoder,
        variant: Sam2Variant,
    ) -> None:
        super().__init__(
            image_encoder=image_encoder,
            prompt_encoder=prompt_encoder,
            mask_decoder=mask_decoder,
            variant=variant,
        )
        spec = variant.video
        dim = PROMPT_EMBED_DIM
        self.memory_attention = memory_attention
        self.memory_encoder = memory_encoder
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(spec.num_maskmem, 1, 1, spec.mem_dim))
        # Official, used only without directly_add_no_mem_embed (never in SAM 2.1): loaded, unread.
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, dim))
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, dim))
        self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, spec.mem_dim))
        self.obj_ptr_proj = MLP(dim, dim, dim, 3)
        self.obj_ptr_tpos_proj = nn.Linear(dim, spec.mem_dim)
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)

    # --- image features ----------------------------------------------------------------------------

    def encode_frame(self, image: torch.Tensor) -> Sam2FrameFeatures:
        """Normalised ``B x 3 x 1024 x 1024`` frame -> :class:`Sam2FrameFeatures`."""
        fine, middle, coarse = self.image_encoder(image)
        decoder = self.sam_mask_decoder
        return Sam2FrameFeatures(coarse, decoder.conv_s0(fine), decoder.conv_s1(middle))

    def init_cond_features(self, vision_features: torch.Tensor) -> torch.Tensor:
        """The heads' features on a frame prompted before any tracking reached it: the map plus
        ``no_mem_embed`` (official ``directly_add_no_mem_embed``); ``B x 256 x 64 x 64``."""
        return vision_features + self.no_mem_embed.reshape(1, -1, 1, 1)

    def map_from_image_embeddings(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """The image encoder graph's ``image_embeddings`` (the map plus ``no_mem_embed``) back to the
        map the video path reads: ``image_embeddings - no_mem_embed``, equal to the map within one
        float32 rounding of its values (export-facing: the video graphs reuse the image encoder)."""
        return image_embeddings - self.no_mem_embed.reshape(1, -1, 1, 1)

    # --- memory attention --------------------------------------------------------------------------

    def spatial_memory(
        self, maskmem_features: Sequence[torch.Tensor], t_pos: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stored memories -> the memory-attention inputs ``memory`` and ``memory_tpos``.

        ``maskmem_features``: M tensors ``B x mem_dim x 64 x 64`` (any float dtype; the official
        predictor stores them rounded to bfloat16); ``t_pos``: each one's temporal slot
        (:attr:`~sam_onnx.video_memory.MemoryPlan.spatial`). Returns ``B x M x mem_dim x 64 x 64``
        float32 and ``B x M x mem_dim``, the rows ``maskmem_tpos_enc[num_maskmem - 1 - t_pos]``.
        M may be 0 (B is then 1).
        """
        num_maskmem, mem_dim = self.maskmem_tpos_enc.shape[0], self.maskmem_tpos_enc.shape[-1]
        if len(maskmem_features) != len(t_pos) or any(not 0 <= t < num_maskmem for t in t_pos):
            raise InvalidInputError(
                "t_pos",
                f"one slot in 0..{num_maskmem - 1} per memory ({len(maskmem_features)})",
                repr(list(t_pos)),
            )
        if not maskmem_features:
            empty = self.maskmem_tpos_enc.new_zeros(1, 0, mem_dim)
            return empty.new_zeros(1, 0, mem_dim, EMBED_HW, EMBED_HW), empty
        memory = torch.stack([f.float() for f in maskmem_features], dim=1)
        rows = torch.tensor([num_maskmem - 1 - slot for slot in t_pos], device=memory.device)
        tpos = self.maskmem_tpos_enc.reshape(num_maskmem, mem_dim)[rows]
        return memory, tpos[None].expand(memory.shape[0], -1, -1)

    def pointer_memory(
        self, obj_ptrs: torch.Tensor, distances: torch.Tensor, max_distance: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Object pointers -> the memory-attention inputs ``ptr_tokens`` and ``ptr_pos``.

        ``obj_ptrs``: ``B x P x 256``; ``distances``: ``P`` signed temporal distances
        (:attr:`~sam_onnx.video_memory.MemoryPlan.pointers`, int or float);
        ``max_distance``: :attr:`~sam_onnx.video_memory.MemoryPlan.max_distance` (> 0).
        Each pointer becomes 4 tokens of ``mem_dim`` channels (channels 0..63, 64..127, ...);
        its position, ``obj_ptr_tpos_proj`` of the 256-channel sine encoding of
        ``distance / max_distance``, is repeated for its 4 tokens. Returns two
        ``B x 4P x mem_dim`` tensors; P may be 0.
        """
        b, p, c = obj_ptrs.shape
        if distances.shape != (p,) or max_distance < 1:
            raise InvalidInputError(
                "pointer distances",
                f"one per pointer ({p}) and max_distance >= 1",
                f"shape {list(distances.shape)}, max_distance {max_distance}",
            )
        mem_dim = self.obj_ptr_tpos_proj.out_features
        pos = self.obj_ptr_tpos_proj(sine_1d_encoding(distances.float() / max_distance, c))  # P x mem_dim
        tokens = obj_ptrs.reshape(b, p * (c // mem_dim), mem_dim)
        pos = pos.repeat_interleave(c // mem_dim, dim=0)[None].expand(b, -1, -1)
        return tokens, pos

    def condition_on_memory(
        self,
        vision_features: torch.Tensor,
        memory: torch.Tensor,
        memory_tpos: torch.Tensor,
        ptr_tokens: torch.Tensor,
        ptr_pos: torch.Tensor,
    ) -> torch.Tensor:
        """:class:`MemoryAttention` (see its ``forward``): ``B x 256 x 64 x 64`` for the heads.
        Raises :class:`~sam_onnx.errors.InvalidInputError` when there is neither a memory nor a
        pointer (the official code never conditions a frame on nothing: it adds ``no_mem_embed``
        instead, :meth:`init_cond_features`)."""
        if memory.shape[1] == 0 and ptr_tokens.shape[1] == 0:
            raise InvalidInputError("memory", "at least one spatial memory or object pointer", "none")
        return self.memory_attention(vision_features, memory, memory_tpos, ptr_tokens, ptr_pos)

    # --- heads -------------------------------------------------------------------------------------

    def track_heads(
        self,
        pix_feat: torch.Tensor,
        high_res_feats_0: torch.Tensor,
        high_res_feats_1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor | None = None,
        *,
        multimask: bool | torch.Tensor,
    ) -> TrackOutput:
        """The official ``_forward_sam_heads`` for B objects on one frame.

        Arguments:
          pix_feat: ``B x 256 x 64 x 64`` from :meth:`init_cond_features` or
            :meth:`condition_on_memory`.
          high_res_feats_0, high_res_feats_1: the frame's (:class:`Sam2FrameFeatures`).
          point_coords: ``B x N x 2`` (x, y) in the 1024 frame, box corners first; on a frame
            without prompts one point (0, 0) labelled -1, as officially.
          point_labels: ``B x N`` int (1, 0, 2, 3; -1 padding).
          mask_input: ``B x 1 x 256 x 256`` logits or None.
          multimask: officially true when the frame has 0 or 1 points (every tracked frame; a
            single click; a box counts as two points): the best of the three multimask outputs
            by predicted IoU, and the pointer from that mask's token. Else the single-mask output
            with the stability fallback, and the pointer always from token 0. May be a boolean
            tensor (traced as a select).
        Masks are gated by the object score (-1024 where it is <= 0), the pointer against
        ``no_obj_ptr``.
        """
        sparse, dense = self.sam_prompt_encoder((point_coords, point_labels), None, mask_input)
        return self.heads_from_prompt_embeddings(
            pix_feat, high_res_feats_0, high_res_feats_1, sparse, dense, multimask=multimask
        )

    def heads_from_prompt_embeddings(
        self,
        pix_feat: torch.Tensor,
        high_res_feats_0: torch.Tensor,
        high_res_feats_1: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        *,
        multimask: bool | torch.Tensor,
        factored: bool = False,
    ) -> TrackOutput:
        """:meth:`track_heads` after the prompt encoder: ``sparse`` ``B x T x 256`` (padding point
        included) and ``dense`` ``B x 256 x 64 x 64`` embeddings; ``multimask`` a bool or a ``B x 1``
        boolean tensor; ``factored``: the decoder's fewer-operation form (the export graph's; the
        same values up to rounding). The high-res maps may have batch 1 for B objects."""
        decoder = self.sam_mask_decoder
        decoded, scores, mask_tokens = decoder.decode_with_mask_tokens(
            pix_feat, self.sam_prompt_encoder.get_dense_pe(), sparse, dense, factored=factored
        )
        rows, hyper_in, iou_all, (h, w) = decoded
        high_res = (high_res_feats_0, high_res_feats_1)
        logits = decoder.upscale(rows, hyper_in, h, w, factored=factored, high_res=high_res)
        v = self.variant
        # the stability fallback reads the logits before the object-score gate, as officially
        single = single_mask_index(
            logits,
            iou_all,
            delta=v.dynamic_multimask_stability_delta,
            threshold=v.dynamic_multimask_stability_thresh,
        )
        logits = torch.where(scores[:, :, None, None] > 0, logits, torch.full_like(logits, NO_OBJECT_LOGIT))
        best_multi = torch.argmax(iou_all[:, 1:], dim=1, keepdim=True) + 1
        if isinstance(multimask, bool):  # a tensor of it, as tracing records it
            multimask = torch.full_like(best_multi, int(multimask)) > 0
        mask_index = torch.where(multimask, best_multi, single)
        token_index = torch.where(multimask, best_multi, torch.zeros_like(best_multi))
        low_res = torch.gather(logits, 1, mask_index[:, :, None, None].expand(-1, -1, *logits.shape[2:]))
        ious = torch.gather(iou_all, 1, mask_index)
        token = torch.gather(mask_tokens, 1, token_index[:, :, None].expand(-1, -1, mask_tokens.shape[2]))[
            :, 0
        ]
        return TrackOutput(low_res, ious, self.object_pointer(token, scores > 0), scores)

    def object_pointer(self, mask_token: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """``obj_ptr_proj`` of a mask token (``B x 256``), replaced by ``no_obj_ptr`` where
        ``present`` (``B x 1`` bool) is false (official ``fixed_no_obj_ptr``)."""
        weight = present.float()
        return weight * self.obj_ptr_proj(mask_token) + (1 - weight) * self.no_obj_ptr

    def mask_as_output(
        self,
        features: Sam2FrameFeatures,
        mask: torch.Tensor,
        *,
        shrink: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> TrackOutput:
        """A mask prompt used as the output (official ``_use_mask_as_output``).

        ``mask``: ``B x 1 x 1024 x 1024`` (bool or 0/1 float) in the model frame. Logits are
        ``mask * 20 - 10`` shrunk to 256 x 256 (bilinear, antialiased); the pointer comes from the
        heads fed the mask through ``mask_downsample`` (no points, single mask, the frame's map
        without ``no_mem_embed``), then is gated by whether the mask has any pixel, which also
        sets the object score to +10 / -10. IoU is 1. ``shrink``: the 1024 -> 256 resize, by
        default ``F.interpolate(bilinear, antialias=True)`` (an export passes the same resize as
        matrix products: opset 17 has no antialiased Resize).
        """
        mask = mask.float()
        high_res = mask * MASK_PROMPT_SCALE + MASK_PROMPT_BIAS
        low_res = (shrink or shrink_by_4)(high_res)
        b = mask.shape[0]
        coords = mask.new_zeros(b, 1, 2)
        labels = -torch.ones(b, 1, dtype=torch.int32, device=mask.device)
        heads = self.track_heads(
            features.vision_features,
            features.high_res_feats_0,
            features.high_res_feats_1,
            coords,
            labels,
            self.mask_downsample(mask),
            multimask=False,
        )
        present = mask.flatten(1).gt(0).any(dim=1, keepdim=True)
        weight = present.float()
        obj_ptr = weight * heads.obj_ptr + (1 - weight) * self.no_obj_ptr
        scores = MASK_PROMPT_SCALE * weight + MASK_PROMPT_BIAS
        return TrackOutput(low_res, mask.new_ones(b, 1), obj_ptr, scores)

    # --- memory encoder ----------------------------------------------------------------------------

    def mask_for_memory(self, low_res_masks: torch.Tensor, binarize: bool | torch.Tensor) -> torch.Tensor:
        """``B x 1 x 256 x 256`` logits -> the memory encoder's ``B x 1 x 1024 x 1024`` mask:
        bilinear upsampling (no antialias), then ``logit > 0`` when ``binarize`` (official
        ``binarize_mask_from_pts_for_mem_enc``: frames with prompts, encoded when tracking starts)
        else the sigmoid, then ``* 20 - 10``."""
        spec = self.variant.video
        high_res = F.interpolate(
            low_res_masks, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False
        )
        if not isinstance(binarize, torch.Tensor):  # a tensor flag is traced as it is
            binarize = torch.tensor(binarize, device=high_res.device)
        mask = torch.where(binarize, (high_res > 0).float(), torch.sigmoid(high_res))
        return mask * spec.sigmoid_scale + spec.sigmoid_bias

    def encode_memory(
        self,
        vision_features: torch.Tensor,
        low_res_masks: torch.Tensor,
        object_score_logits: torch.Tensor,
        *,
        binarize: bool | torch.Tensor,
    ) -> torch.Tensor:
        """The official ``_encode_new_memory``: ``B x mem_dim x 64 x 64`` float32 (round it with
        :func:`round_to_bfloat16` to store it as the official predictor does).

        ``vision_features``: the frame's map without ``no_mem_embed``; ``low_res_masks``:
        ``B x 1 x 256 x 256`` logits (:attr:`TrackOutput.low_res_masks` of a tracked frame, before
        hole filling; on a prompted frame the stored logits after hole filling);
        ``object_score_logits``: ``B x 1`` (<= 0 adds ``no_obj_embed_spatial``); ``binarize``:
        see :meth:`mask_for_memory`.
        """
        mask = self.mask_for_memory(low_res_masks, binarize)
        memory = self.memory_encoder(vision_features, mask)
        absent = (object_score_logits <= 0).float()[:, :, None, None]
        return memory + absent * self.no_obj_embed_spatial[:, :, None, None]


def shrink_by_4(x: torch.Tensor) -> torch.Tensor:
    """``B x C x S x S`` -> ``B x C x S/4 x S/4``: bilinear, antialiased (official
    ``_use_mask_as_output``)."""
    return F.interpolate(x, size=(x.shape[-2] // 4, x.shape[-1] // 4), mode="bilinear", antialias=True)


def round_to_bfloat16(x: torch.Tensor) -> torch.Tensor:
    """float32 -> nearest bfloat16 (ties to even) -> float32: how the official predictor stores
    memories (``maskmem_features.to(torch.bfloat16)``), used in float32 afterwards."""
    return x.to(torch.bfloat16).float()
