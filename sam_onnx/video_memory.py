"""Which stored frames feed SAM 2's memory attention on a frame (torch-free).

The official rule (sam2 1.1.0 ``SAM2Base._prepare_memory_conditioned_features`` in eval mode, with
``max_cond_frames_in_attn = -1``, ``memory_temporal_stride_for_eval = 1``,
``only_obj_ptrs_in_the_past_for_eval = True``, signed pointer distances), as data that both the
PyTorch reference and the runtime read. Frame indices are per object: each object has its own
conditioning frames (prompted before tracking reached them) and its own tracked frames.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .errors import InvalidInputError


@dataclass(frozen=True)
class MemoryPlan:
    """The memories one frame attends to, in the official concatenation order.

    Attributes:
      spatial: ``(frame, t_pos)`` per spatial memory: every conditioning frame with ``t_pos`` 0
        (in the order they were added), then the tracked frames among the ``num_maskmem - 1``
        before this one (after it when tracking in reverse), oldest first, ``t_pos`` 1..6 where
        6 is the adjacent frame. A memory's temporal encoding is
        ``maskmem_tpos_enc[num_maskmem - 1 - t_pos]``.
      pointers: ``(frame, distance)`` per object pointer: the conditioning frames not ahead of this
        one (signed distance ``(frame_idx - frame) * (-1 if reverse else 1)``), then the tracked
        frames 1, 2, ... frames back (ahead in reverse; distance 1, 2, ...), stopping at the clip's
        edge, at most ``max_pointers - 1`` of them.
      max_distance: the distance that maps to 1 in the pointers' sine encoding:
        ``min(num_frames, max_obj_ptrs) - 1``.
    """

    spatial: tuple[tuple[int, int], ...]
    pointers: tuple[tuple[int, int], ...]
    max_distance: int


def plan_memory(
    frame_idx: int,
    cond_frames: Sequence[int],
    tracked_frames: Collection[int],
    num_frames: int,
    *,
    reverse: bool = False,
    num_maskmem: int = 7,
    max_obj_ptrs: int = 16,
) -> MemoryPlan:
    """The :class:`MemoryPlan` of ``frame_idx`` for one object.

    Arguments:
      frame_idx: the frame being tracked, or a conditioning frame clicked again after tracking
        reached it (a correction): the official code then attends to that frame's own
        conditioning memory (slot 0) and pointer (distance 0) as well, which this rule gives.
      cond_frames: the object's conditioning frames, in the order they were added.
      tracked_frames: the object's other frames with stored outputs (tracked, or corrected
        with clicks after tracking); conditioning frames are not among them.
      num_frames: frames in the clip.
      reverse: tracking towards frame 0.
    Raises :class:`~sam_onnx.errors.InvalidInputError` when ``frame_idx`` is outside the clip (or
    the clip has fewer than 2 frames: nothing to track), or when there is no conditioning frame.
    """
    if num_frames < 2 or not 0 <= frame_idx < num_frames:
        raise InvalidInputError(
            "frame_idx",
            f"a frame of a clip of at least 2 frames (0..{num_frames - 1})",
            f"{frame_idx} of {num_frames}",
        )
    if not cond_frames:
        raise InvalidInputError("cond_frames", "at least one conditioning frame", repr(list(cond_frames)))
    step = -1 if reverse else 1
    spatial = [(t, 0) for t in cond_frames]
    for t_pos in range(1, num_maskmem):
        frame = frame_idx - step * (num_maskmem - t_pos)
        if frame in tracked_frames:
            spatial.append((frame, t_pos))
    max_pointers = min(num_frames, max_obj_ptrs)
    pointers = [(t, (frame_idx - t) * step) for t in cond_frames if (t - frame_idx) * step <= 0]
    for distance in range(1, max_pointers):
        frame = frame_idx - step * distance
        if frame < 0 or frame >= num_frames:
            break
        if frame in tracked_frames:
            pointers.append((frame, distance))
    return MemoryPlan(tuple(spatial), tuple(pointers), max_pointers - 1)
