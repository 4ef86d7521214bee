"""The tracking state of one clip: its frames, its objects, their prompts and stored outputs.

The layout follows the official ``SAM2VideoPredictor`` inference state (sam2 1.1.0), object by
object: client object ids map to indexes in the order they were first prompted; each object keeps
its prompts per frame, its conditioning outputs (frames prompted before tracking reached them, in
the order they were added: that order is the memories' order), its tracked outputs, the outputs
of prompts not yet merged (``temp_*``: merged and memory-encoded when propagation starts) and the
frames tracked with their direction.

What a stored frame costs (:class:`FrameOutput`): the memory as bfloat16 bits (64 x 64 x 64 x 2 B
= 512 KiB), the low-res logits after hole filling (256 x 256 float32 = 256 KiB: a later correction
on the frame, a prompted frame's memory and re-consolidated outputs read them at full precision),
the object pointer and score (1 KiB). The encoder's features are not stored per frame: the state
keeps those of the last frame asked for (:attr:`InferenceState.cached_features`), as the official
predictor does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .bfloat16 import from_bfloat16_bits
from .frames import VideoFrames


@dataclass
class PointInputs:
    """One frame's clicks for one object, in the 1024 x 1024 model frame.

    coords_xy_1024: ``N x 2`` float32 (x, y), box corners first (labels 2, 3).
    labels: ``N`` int32.
    """

    coords_xy_1024: np.ndarray
    labels: np.ndarray


@dataclass
class FrameOutput:
    """One object's stored output on one frame.

    pred_masks: ``256 x 256`` float32 low-res logits after hole filling (-1024 everywhere when the
      object is absent).
    obj_ptr: ``256`` float32 object pointer.
    object_score: float32 object score logit (> 0: present).
    maskmem_bits: ``64 x 64 x 64`` uint16 bfloat16 bits of the memory, or None until encoded
      (prompted frames are encoded when propagation starts).
    """

    pred_masks: np.ndarray
    obj_ptr: np.ndarray
    object_score: np.float32
    maskmem_bits: np.ndarray | None = None

    def maskmem(self) -> np.ndarray:
        """The memory as float32 ``64 x 64 x 64`` (exactly the stored bfloat16 values)."""
        assert self.maskmem_bits is not None, "memory read before it was encoded"
        return from_bfloat16_bits(self.maskmem_bits)

    @property
    def nbytes(self) -> int:
        extra = 0 if self.maskmem_bits is None else self.maskmem_bits.nbytes
        return self.pred_masks.nbytes + self.obj_ptr.nbytes + 4 + extra


@dataclass
class ObjectState:
    """One object's prompts and outputs (official ``*_per_obj`` entries of one object index).

    cond / non_cond: merged outputs of conditioning and tracked (or corrected) frames.
    temp_cond / temp_non_cond: outputs of prompts given since the last propagation.
    tracked: frame -> whether it was tracked in reverse.
    """

    point_inputs: dict[int, PointInputs] = field(default_factory=dict)
    mask_inputs: dict[int, np.ndarray] = field(default_factory=dict)
    cond: dict[int, FrameOutput] = field(default_factory=dict)
    non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    temp_cond: dict[int, FrameOutput] = field(default_factory=dict)
    temp_non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)

    def outputs(self, is_cond: bool) -> dict[int, FrameOutput]:
        return self.cond if is_cond else self.non_cond

    def temp_outputs(self, is_cond: bool) -> dict[int, FrameOutput]:
        return self.temp_cond if is_cond else self.temp_non_cond

    def latest(self, frame_idx: int, is_cond: bool) -> FrameOutput | None:
        """The newest output of this frame: the unmerged one of kind ``is_cond``, else the merged
        conditioning one, else the merged tracked one (official look-up order)."""
        for outputs in (self.temp_outputs(is_cond), self.cond, self.non_cond):
            if frame_idx in outputs:
                return outputs[frame_idx]
        return None

    def clear(self) -> None:
        for container in (
            self.point_inputs,
            self.mask_inputs,
            self.cond,
            self.non_cond,
            self.temp_cond,
            self.temp_non_cond,
            self.tracked,
        ):
            container.clear()

    @property
    def nbytes(self) -> int:
        outs = (self.cond, self.non_cond, self.temp_cond, self.temp_non_cond)
        return sum(out.nbytes for outputs in outs for out in outputs.values())


@dataclass
class InferenceState:
    """What :meth:`~sam_onnx.runtime.video.VideoPredictor.init_state` returns and every other call
    takes: the clip and the objects (``obj_ids`` in index order, ``objects`` by index)."""

    frames: VideoFrames
    obj_ids: list[Any] = field(default_factory=list)
    objects: list[ObjectState] = field(default_factory=list)
    cached_features: tuple[int, Any] | None = None

    @property
    def num_frames(self) -> int:
        return self.frames.num_frames

    @property
    def video_height(self) -> int:
        return self.frames.video_hw[0]

    @property
    def video_width(self) -> int:
        return self.frames.video_hw[1]

    # the official state is a dict; code that reads these keys of it keeps working
    _OFFICIAL_KEYS = ("num_frames", "video_height", "video_width", "obj_ids")

    def __getitem__(self, key: str) -> Any:
        if key not in self._OFFICIAL_KEYS:
            raise KeyError(f"{key!r}: the state offers {', '.join(self._OFFICIAL_KEYS)} by key")
        return getattr(self, key)

    def obj_idx(self, obj_id: Any) -> int:
        """The index of ``obj_id``, adding the object when it is new (allowed at any time, as in
        the official 1.1.0)."""
        if obj_id not in self.obj_ids:
            self.obj_ids.append(obj_id)
            self.objects.append(ObjectState())
        return self.obj_ids.index(obj_id)

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored outputs of every object (not the cached features)."""
        return sum(obj.nbytes for obj in self.objects)
