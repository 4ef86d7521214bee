"""The per-frame computations the video predictor asks of a model, as one interface.

:class:`~sam_onnx.runtime.video.predictor.VideoPredictor` holds the bookkeeping (which prompts,
which memories, which frames) and calls these six steps of a frame; the exported ONNX graphs
implement them (:mod:`sam_onnx.runtime.video.graphs`). The steps are the official ``SAM2Base``'s
(sam2 1.1.0) for one object on one frame. Arrays are numpy float32, NCHW, batch 1.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np


class FrameFeatures(NamedTuple):
    """The image encoder's output for a frame.

    embeddings: ``1 x 256 x 64 x 64``, the frame's map as the model's other steps take it (the
      exported graphs: the image encoder's ``image_embeddings``, ``no_mem_embed`` added; they
      subtract it where the official code reads the map without it).
    high_res_feats_0: ``1 x 32 x 256 x 256``; high_res_feats_1: ``1 x 64 x 128 x 128``.
    """

    embeddings: np.ndarray
    high_res_feats_0: np.ndarray
    high_res_feats_1: np.ndarray


class HeadsOutput(NamedTuple):
    """One object's output on one frame.

    low_res_masks: ``1 x 1 x 256 x 256`` logits of the chosen mask, -1024 where the object score
      is <= 0; before hole filling.
    obj_ptr: ``1 x 256``; object_score: ``1 x 1``.
    """

    low_res_masks: np.ndarray
    obj_ptr: np.ndarray
    object_score: np.ndarray


class MemoryInputs(NamedTuple):
    """What a frame attends to (:class:`~sam_onnx.video_memory.MemoryPlan` with the stored values).

    memories: M float32 ``64 x 64 x 64`` memories (the stored bfloat16 values); t_pos: each one's
      temporal slot (0 conditioning, 1..6 recent, 6 adjacent).
    obj_ptrs: ``P x 256`` float32; distances: each pointer's signed temporal distance;
    max_distance: the distance that maps to 1 in the pointers' sine encoding.
    """

    memories: list[np.ndarray]
    t_pos: list[int]
    obj_ptrs: np.ndarray
    distances: list[int]
    max_distance: int


class VideoModel(Protocol):
    """The six steps of a frame (official names in brackets)."""

    def encode(self, image: np.ndarray) -> FrameFeatures:
        """``1 x 3 x 1024 x 1024`` normalised frame -> its features (``forward_image``)."""
        ...

    def init_cond_features(self, features: FrameFeatures) -> np.ndarray:
        """The heads' features on a frame prompted before tracking reached it: the map plus
        ``no_mem_embed`` (``directly_add_no_mem_embed``); ``1 x 256 x 64 x 64``."""
        ...

    def condition_on_memory(self, features: FrameFeatures, memory: MemoryInputs) -> np.ndarray:
        """Memory attention (``_prepare_memory_conditioned_features``); ``1 x 256 x 64 x 64``."""
        ...

    def track_heads(
        self,
        pix_feat: np.ndarray,
        features: FrameFeatures,
        coords_xy_1024: np.ndarray,
        labels: np.ndarray,
        mask_input: np.ndarray | None,
        *,
        multimask: bool,
    ) -> HeadsOutput:
        """Prompt encoder and mask decoder with the object-score gate and the object pointer
        (``_forward_sam_heads``). ``coords_xy_1024``: ``1 x N x 2``; ``labels``: ``1 x N`` int32
        (one point (0, 0) labelled -1 on a frame without prompts); ``mask_input``:
        ``1 x 1 x 256 x 256`` logits or None; ``multimask``: best of masks 1..3, else the single
        mask with the stability fallback."""
        ...

    def mask_as_output(self, features: FrameFeatures, mask_1024: np.ndarray) -> HeadsOutput:
        """A mask prompt ``1 x 1 x 1024 x 1024`` (0/1 float32) used as the output
        (``_use_mask_as_output``): logits +-10, score +-10, the pointer from the heads fed the
        mask."""
        ...

    def encode_memory(
        self, features: FrameFeatures, low_res_masks: np.ndarray, object_score: np.ndarray, *, binarize: bool
    ) -> np.ndarray:
        """The memory of a frame (``_encode_new_memory``): ``1 x 64 x 64 x 64`` float32 from the
        ``1 x 1 x 256 x 256`` logits (upsampled, ``> 0`` when ``binarize`` else sigmoid,
        ``* 20 - 10``), plus ``no_obj_embed_spatial`` when the score is <= 0."""
        ...
