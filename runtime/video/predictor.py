"""``VideoPredictor``: the official ``SAM2VideoPredictor`` (sam2 1.1.0) on numpy and onnxruntime.

The same calls, arguments and results, so that code written for the official predictor ports by
changing one import::

    predictor = VideoPredictor.from_export("onnx/hiera_t")
    state = predictor.init_state("frames/")            # <index>.jpg frames, a video file, or arrays
    predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=[[210, 350]], labels=[1])
    for frame_idx, obj_ids, masks in predictor.propagate_in_video(state):
        ...                                             # masks: objects x 1 x H x W float32 logits

What it computes, frame by frame, is the official predictor's with ``build_sam2_video_predictor``'s
settings: memories stored rounded to bfloat16, hole filling of the low-res logits
(``fill_hole_area=8``, :mod:`.holes`), the official choice of memories (:mod:`sam_onnx.video_memory`)
and of outputs, corrections on tracked frames, any number of objects. Frames are decoded when a
step needs them and only the last frame's encoder features are kept (:mod:`.frames`, :mod:`.state`).
The six steps of a frame are the model's (:class:`~.model.VideoModel`, the exported graphs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from sam_onnx.errors import InvalidInputError, TrackingStateError
from sam_onnx.preprocess import resize_bilinear_antialias, sam2_coords_1024
from sam_onnx.variants import IMAGE_SIZE, get_sam2_variant
from sam_onnx.video_memory import MemoryPlan, plan_memory

from ..core.session import SessionConfig
from ..core.upscale import upscale_logits
from .bfloat16 import to_bfloat16_bits
from .frames import open_video
from .holes import fill_holes
from .model import FrameFeatures, MemoryInputs, VideoModel
from .state import FrameOutput, InferenceState, ObjectState, PointInputs

NO_OBJECT_LOGIT = np.float32(-1024.0)  # official NO_OBJ_SCORE: an absent or unprompted object
LOW_RES = 256
PREV_LOGIT_CLAMP = 32.0  # official: earlier logits fed back with new clicks are clamped to +-32
NON_OVERLAP_CLAMP = np.float32(-10.0)  # official _apply_non_overlapping_constraints
BOX_LABELS = (2, 3)

Masks = tuple[int, list[Any], np.ndarray]


class VideoPredictor:
    """Track objects through a clip (see the module's docstring).

    Arguments:
      model: the six steps of a frame (:class:`~.model.VideoModel`); :meth:`from_export` opens an
        export's graphs.
      fill_hole_area: background components of at most this many low-res pixels become
        foreground (official default of ``build_sam2_video_predictor``: 8; 0 turns it off).
      non_overlap_masks: where objects overlap, keep the highest logit and clamp the others to
        at most -10 in the returned masks (official option, off by default).
      num_maskmem, max_obj_ptrs: the model's memory sizes (SAM 2.1: 7 and 16).
    """

    def __init__(
        self,
        model: VideoModel,
        *,
        fill_hole_area: int = 8,
        non_overlap_masks: bool = False,
        num_maskmem: int = 7,
        max_obj_ptrs: int = 16,
    ) -> None:
        self.model = model
        self.fill_hole_area = fill_hole_area
        self.non_overlap_masks = non_overlap_masks
        self.num_maskmem = num_maskmem
        self.max_obj_ptrs = max_obj_ptrs

    @classmethod
    def from_export(
        cls,
        model_dir: str | os.PathLike[str],
        *,
        session_config: SessionConfig | None = None,
        precision: str = "fp32",
        fill_hole_area: int = 8,
        non_overlap_masks: bool = False,
    ) -> VideoPredictor:
        """A predictor on a ``sam-export`` folder of a SAM 2.x checkpoint: its encoder (of
        ``precision``) and its video graphs (:class:`~.graphs.OnnxVideoModel`)."""
        from .graphs import OnnxVideoModel

        model = OnnxVideoModel.open(model_dir, session_config, precision=precision)
        spec = get_sam2_variant(model.encoder.metadata.get("variant", "hiera_t")).video
        return cls(
            model,
            fill_hole_area=fill_hole_area,
            non_overlap_masks=non_overlap_masks,
            num_maskmem=spec.num_maskmem,
            max_obj_ptrs=spec.max_obj_ptrs,
        )

    # --- the official calls ------------------------------------------------------------------------

    def init_state(
        self,
        video_path: str | os.PathLike[str] | Sequence[np.ndarray],
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        async_loading_frames: bool = False,
    ) -> InferenceState:
        """A fresh state for a clip: a folder of ``<index>.jpg`` frames, a video file, or a sequence
        of ``H x W x 3`` uint8 RGB arrays. Frame 0 is encoded at once, as officially. The official
        ``offload_*`` and ``async_loading_frames`` options are accepted and change nothing here:
        frames are decoded when needed and the state lives in host memory."""
        state = InferenceState(open_video(video_path))
        self._features(state, 0)
        return state

    def add_new_points_or_box(
        self,
        inference_state: InferenceState,
        frame_idx: int,
        obj_id: Any,
        points: Any = None,
        labels: Any = None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box: Any = None,
    ) -> Masks:
        """Clicks (``points`` ``N x 2`` (x, y), ``labels`` ``N``: 1 positive, 0 negative) and/or a
        ``box`` (x0, y0, x1, y1) for ``obj_id`` on ``frame_idx``, in original pixels
        (``normalize_coords=True``) or 0..1. On a frame the object was tracked to, a correction;
        ``clear_old_points=False`` adds to the frame's clicks. Returns ``(frame_idx, obj_ids,
        masks)``, every object's mask on the frame, ``objects x 1 x H x W`` float32 logits."""
        state = inference_state
        self._check_frame(state, frame_idx)
        new = self._point_inputs(state, points, labels, box, clear_old_points, normalize_coords)
        obj = state.objects[state.obj_idx(obj_id)]
        old = None if clear_old_points else obj.point_inputs.get(frame_idx)
        if old is not None:
            new = PointInputs(
                np.concatenate([old.coords_xy_1024, new.coords_xy_1024]),
                np.concatenate([old.labels, new.labels]),
            )
        obj.point_inputs[frame_idx] = new
        obj.mask_inputs.pop(frame_idx, None)
        is_cond = frame_idx not in obj.tracked  # a frame tracking has not reached: conditioning
        prev = obj.latest(frame_idx, is_cond)
        prev_logits = None if prev is None else np.clip(prev.pred_masks, -PREV_LOGIT_CLAMP, PREV_LOGIT_CLAMP)
        out = self._run_frame(
            state,
            obj,
            frame_idx,
            is_init_cond=is_cond,
            point_inputs=new,
            reverse=obj.tracked.get(frame_idx, False),
            run_mem_encoder=False,
            prev_logits=prev_logits,
        )
        obj.temp_outputs(is_cond)[frame_idx] = out
        return frame_idx, list(state.obj_ids), self._consolidated(state, frame_idx, is_cond)

    def add_new_points(self, *args: Any, **kwargs: Any) -> Masks:
        """The official deprecated name of :meth:`add_new_points_or_box`."""
        return self.add_new_points_or_box(*args, **kwargs)

    def add_new_mask(self, inference_state: InferenceState, frame_idx: int, obj_id: Any, mask: Any) -> Masks:
        """A mask prompt for ``obj_id`` on ``frame_idx``: ``H x W`` (the video's size, or the
        model's 1024 x 1024), nonzero = object. It is used as the frame's output (logits +-10); an
        empty mask marks the object absent. Returns as :meth:`add_new_points_or_box`."""
        state = inference_state
        self._check_frame(state, frame_idx)
        mask_1024 = self._mask_input(state, mask)
        obj = state.objects[state.obj_idx(obj_id)]
        obj.mask_inputs[frame_idx] = mask_1024
        obj.point_inputs.pop(frame_idx, None)
        is_cond = frame_idx not in obj.tracked
        out = self._run_frame(
            state,
            obj,
            frame_idx,
            is_init_cond=is_cond,
            mask_1024=mask_1024,
            reverse=obj.tracked.get(frame_idx, False),
            run_mem_encoder=False,
        )
        obj.temp_outputs(is_cond)[frame_idx] = out
        return frame_idx, list(state.obj_ids), self._consolidated(state, frame_idx, is_cond)

    def propagate_in_video(
        self,
        inference_state: InferenceState,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ) -> Iterator[Masks]:
        """Track every object from ``start_frame_idx`` (default: the earliest prompted frame) over
        ``max_frame_num_to_track`` more frames (default: to the clip's end), towards frame 0 when
        ``reverse``. Yields ``(frame_idx, obj_ids, masks)`` per frame, ``masks`` ``objects x 1 x
        H x W`` float32 logits. Prompted frames yield their prompt's output; every other frame is
        tracked again (an earlier result on it is replaced)."""
        state = inference_state
        self.propagate_in_video_preflight(state)
        num_frames = state.num_frames
        if start_frame_idx is None:
            start_frame_idx = min(t for obj in state.objects for t in obj.cond)
        self._check_frame(state, start_frame_idx, "start_frame_idx")
        if max_frame_num_to_track is None:
            max_frame_num_to_track = num_frames
        if reverse:
            end = max(start_frame_idx - max_frame_num_to_track, 0)
            order = range(start_frame_idx, end - 1, -1) if start_frame_idx > 0 else range(0)
        else:
            end = min(start_frame_idx + max_frame_num_to_track, num_frames - 1)
            order = range(start_frame_idx, end + 1)
        obj_ids = list(state.obj_ids)
        for frame_idx in order:
            maps = [self._track(state, obj, frame_idx, reverse) for obj in state.objects]
            yield frame_idx, obj_ids, self._video_res(state, np.stack(maps))

    def clear_all_prompts_in_frame(
        self, inference_state: InferenceState, frame_idx: int, obj_id: Any, need_output: bool = True
    ) -> Masks | None:
        """Remove ``obj_id``'s prompts on ``frame_idx``; a conditioning frame becomes a tracked
        one. Returns the frame's masks as :meth:`add_new_points_or_box` (None without
        ``need_output``)."""
        state = inference_state
        self._check_frame(state, frame_idx)
        obj = state.objects[state.obj_idx(obj_id)]
        for container in (obj.point_inputs, obj.mask_inputs, obj.temp_cond, obj.temp_non_cond):
            container.pop(frame_idx, None)
        out = obj.cond.pop(frame_idx, None)
        if out is not None:
            obj.non_cond[frame_idx] = out
            obj.tracked.pop(frame_idx, None)
        if not need_output:
            return None
        is_cond = any(frame_idx in o.temp_cond for o in state.objects)
        return frame_idx, list(state.obj_ids), self._consolidated(state, frame_idx, is_cond)

    def remove_object(
        self, inference_state: InferenceState, obj_id: Any, strict: bool = False, need_output: bool = True
    ) -> tuple[list[Any], list[tuple[int, np.ndarray]]]:
        """Forget ``obj_id``. Returns the remaining ids and, per frame the object had prompts on,
        ``(frame_idx, masks)`` of the others. An unknown id is ignored (refused when
        ``strict``)."""
        state = inference_state
        if obj_id not in state.obj_ids:
            if strict:
                raise InvalidInputError("obj_id", f"one of the tracked objects {state.obj_ids}", repr(obj_id))
            return list(state.obj_ids), []
        if len(state.obj_ids) == 1:
            self.reset_state(state)
            return [], []
        obj = state.objects[state.obj_ids.index(obj_id)]
        frames = sorted(set(obj.point_inputs) | set(obj.mask_inputs))
        for frame_idx in frames:
            self.clear_all_prompts_in_frame(state, frame_idx, obj_id, need_output=False)
        index = state.obj_ids.index(obj_id)
        del state.obj_ids[index], state.objects[index]
        updated = []
        if need_output:
            for frame_idx in frames:
                is_cond = any(frame_idx in o.temp_cond for o in state.objects)
                updated.append((frame_idx, self._consolidated(state, frame_idx, is_cond)))
        return list(state.obj_ids), updated

    def reset_state(self, inference_state: InferenceState) -> None:
        """Remove every object, prompt and result (the clip stays open)."""
        inference_state.obj_ids.clear()
        inference_state.objects.clear()

    # --- one object on one frame -------------------------------------------------------------------

    def _track(self, state: InferenceState, obj: ObjectState, frame_idx: int, reverse: bool) -> np.ndarray:
        """One object's low-res logits on a frame of a propagation (prompted: stored; else tracked
        and stored)."""
        if frame_idx in obj.cond:
            pred_masks = obj.cond[frame_idx].pred_masks
        else:
            out = self._run_frame(
                state, obj, frame_idx, is_init_cond=False, reverse=reverse, run_mem_encoder=True
            )
            obj.non_cond[frame_idx] = out
            pred_masks = out.pred_masks
        obj.tracked[frame_idx] = reverse
        return pred_masks

    def _run_frame(
        self,
        state: InferenceState,
        obj: ObjectState,
        frame_idx: int,
        *,
        is_init_cond: bool,
        reverse: bool,
        run_mem_encoder: bool,
        point_inputs: PointInputs | None = None,
        mask_1024: np.ndarray | None = None,
        prev_logits: np.ndarray | None = None,
    ) -> FrameOutput:
        """The official ``_run_single_frame_inference`` for one object: heads (or the mask used as
        output), the memory when asked (bfloat16), hole filling."""
        features = self._features(state, frame_idx)
        if mask_1024 is not None:
            heads = self.model.mask_as_output(features, mask_1024[None, None].astype(np.float32))
        else:
            if is_init_cond:
                pix_feat = self.model.init_cond_features(features)
            else:
                pix_feat = self.model.condition_on_memory(
                    features, self._memory(state, obj, frame_idx, reverse)
                )
            if point_inputs is None:  # a tracked frame: one padding point, as officially
                coords, labels = np.zeros((1, 1, 2), np.float32), -np.ones((1, 1), np.int32)
            else:
                coords, labels = point_inputs.coords_xy_1024[None], point_inputs.labels[None]
            mask_input = None if prev_logits is None else prev_logits[None, None].astype(np.float32)
            num_points = 0 if point_inputs is None else len(point_inputs.labels)
            heads = self.model.track_heads(
                pix_feat, features, coords, labels, mask_input, multimask=num_points <= 1
            )
        maskmem_bits = None
        if run_mem_encoder:
            memory = self.model.encode_memory(
                features, heads.low_res_masks, heads.object_score, binarize=point_inputs is not None
            )
            maskmem_bits = to_bfloat16_bits(memory[0])
        return FrameOutput(
            pred_masks=fill_holes(heads.low_res_masks[0, 0], self.fill_hole_area),
            obj_ptr=np.asarray(heads.obj_ptr, np.float32).reshape(-1),
            object_score=np.float32(np.asarray(heads.object_score).reshape(-1)[0]),
            maskmem_bits=maskmem_bits,
        )

    def _memory(self, state: InferenceState, obj: ObjectState, frame_idx: int, reverse: bool) -> MemoryInputs:
        plan = self._plan(state, obj, frame_idx, reverse)

        def stored(frame: int) -> FrameOutput:
            return obj.cond[frame] if frame in obj.cond else obj.non_cond[frame]

        ptrs = [stored(frame).obj_ptr for frame, _ in plan.pointers]
        return MemoryInputs(
            memories=[stored(frame).maskmem() for frame, _ in plan.spatial],
            t_pos=[t_pos for _, t_pos in plan.spatial],
            obj_ptrs=np.stack(ptrs) if ptrs else np.zeros((0, 256), np.float32),
            distances=[distance for _, distance in plan.pointers],
            max_distance=plan.max_distance,
        )

    def _plan(self, state: InferenceState, obj: ObjectState, frame_idx: int, reverse: bool) -> MemoryPlan:
        return plan_memory(
            frame_idx,
            list(obj.cond),
            obj.non_cond.keys(),
            state.num_frames,
            reverse=reverse,
            num_maskmem=self.num_maskmem,
            max_obj_ptrs=self.max_obj_ptrs,
        )

    def _features(self, state: InferenceState, frame_idx: int) -> FrameFeatures:
        """The frame's encoder features; only the last frame's are kept."""
        if state.cached_features is None or state.cached_features[0] != frame_idx:
            features = self.model.encode(state.frames.model_input(frame_idx))
            state.cached_features = (frame_idx, features)
        return state.cached_features[1]

    # --- propagation's start -----------------------------------------------------------------------

    def propagate_in_video_preflight(self, inference_state: InferenceState) -> None:
        """The official ``propagate_in_video_preflight``: every object needs a prompt; the prompts'
        outputs are memory-encoded (their masks binarised) and merged. Raises
        :class:`~sam_onnx.errors.TrackingStateError` before changing anything when an object has no
        prompt."""
        state = inference_state
        if not state.objects:
            raise TrackingStateError("no object has a prompt: add points, a box or a mask before propagating")
        for obj_id, obj in zip(state.obj_ids, state.objects, strict=True):
            if not obj.cond and not obj.temp_cond:
                raise TrackingStateError(
                    f"object {obj_id!r} has no prompt on a frame tracking has not reached: "
                    "add points, a box or a mask for it (or remove it) before propagating"
                )
        for obj in state.objects:
            for is_cond in (False, True):
                temp = obj.temp_outputs(is_cond)
                for frame_idx, out in temp.items():
                    if out.maskmem_bits is None:
                        memory = self.model.encode_memory(
                            self._features(state, frame_idx),
                            out.pred_masks[None, None],
                            np.full((1, 1), out.object_score, np.float32),
                            binarize=True,
                        )
                        out.maskmem_bits = to_bfloat16_bits(memory[0])
                    obj.outputs(is_cond)[frame_idx] = out
                temp.clear()
            for frame_idx in obj.cond:
                obj.non_cond.pop(frame_idx, None)

    # --- outputs -----------------------------------------------------------------------------------

    def _consolidated(self, state: InferenceState, frame_idx: int, is_cond: bool) -> np.ndarray:
        """Every object's newest output on a frame at the video's size (-1024 for an object
        without one)."""
        maps, present = [], []
        for obj in state.objects:
            out = obj.latest(frame_idx, is_cond)
            present.append(out is not None)
            maps.append(out.pred_masks if out is not None else np.zeros((LOW_RES, LOW_RES), np.float32))
        masks = self._video_res(state, np.stack(maps), apply_non_overlap=False)
        masks[~np.asarray(present)] = NO_OBJECT_LOGIT
        return self._non_overlap(masks)

    def _video_res(
        self, state: InferenceState, low_res: np.ndarray, *, apply_non_overlap: bool = True
    ) -> np.ndarray:
        """``objects x 256 x 256`` -> ``objects x 1 x H x W`` float32 (bilinear)."""
        hw = (state.video_height, state.video_width)
        masks = upscale_logits(low_res, hw, "sam2")[:, None]
        return self._non_overlap(masks) if apply_non_overlap else masks

    def _non_overlap(self, masks: np.ndarray) -> np.ndarray:
        if not self.non_overlap_masks or masks.shape[0] == 1:
            return masks
        keep = np.argmax(masks, axis=0)[None] == np.arange(masks.shape[0])[:, None, None, None]
        return np.where(keep, masks, np.minimum(masks, NON_OVERLAP_CLAMP))

    # --- input checks (before the state changes) ---------------------------------------------------

    @staticmethod
    def _check_frame(state: InferenceState, frame_idx: Any, name: str = "frame_idx") -> None:
        n = state.num_frames
        if (
            isinstance(frame_idx, bool)
            or not isinstance(frame_idx, (int, np.integer))
            or not 0 <= frame_idx < n
        ):
            raise InvalidInputError(name, f"a frame of the clip, an integer in 0..{n - 1}", repr(frame_idx))

    @staticmethod
    def _point_inputs(
        state: InferenceState,
        points: Any,
        labels: Any,
        box: Any,
        clear_old_points: bool,
        normalize_coords: bool,
    ) -> PointInputs:
        """The official prompt arithmetic: box corners first (labels 2, 3), then the clicks; to
        the 1024 frame in float32."""
        if (points is None) != (labels is None):
            raise InvalidInputError("points and labels", "both or neither", "only one of them")
        if points is None and box is None:
            raise InvalidInputError("prompt", "points with labels, a box, or both", "neither")
        coords = np.zeros((0, 2), np.float32)
        point_labels = np.zeros(0, np.int32)
        if points is not None:
            coords = np.asarray(points, np.float32)
            coords = coords[0] if coords.ndim == 3 and coords.shape[0] == 1 else coords
            point_labels = np.asarray(labels)
            point_labels = (
                point_labels[0] if point_labels.ndim == 2 and point_labels.shape[0] == 1 else point_labels
            )
            if coords.ndim != 2 or coords.shape[1] != 2:
                raise InvalidInputError("points", "an array N x 2 of (x, y)", f"shape {coords.shape}")
            if point_labels.shape != (len(coords),):
                raise InvalidInputError(
                    "labels", f"one label per point ({len(coords)})", f"shape {point_labels.shape}"
                )
            point_labels = point_labels.astype(np.int32)
        if box is not None:
            if not clear_old_points:
                raise InvalidInputError(
                    "box", "clear_old_points=True (a box comes before any click)", "clear_old_points=False"
                )
            corners = np.asarray(box, np.float32)
            if corners.size != 4:
                raise InvalidInputError("box", "(x0, y0, x1, y1)", f"shape {corners.shape}")
            coords = np.concatenate([corners.reshape(2, 2), coords])
            point_labels = np.concatenate([np.asarray(BOX_LABELS, np.int32), point_labels])
        if not np.isfinite(coords).all():
            raise InvalidInputError("points", "finite coordinates", "NaN or infinity")
        coords_1024 = sam2_coords_1024(
            coords, (state.video_height, state.video_width), normalized=not normalize_coords
        )
        return PointInputs(coords_1024.astype(np.float32), point_labels)

    @staticmethod
    def _mask_input(state: InferenceState, mask: Any) -> np.ndarray:
        """A mask prompt -> ``1024 x 1024`` float32 0/1 in the model frame (official: resized with
        antialiasing, then ``>= 0.5``)."""
        mask = np.asarray(mask)
        hw = (state.video_height, state.video_width)
        if mask.ndim != 2 or mask.shape not in (hw, (IMAGE_SIZE, IMAGE_SIZE)):
            raise InvalidInputError(
                "mask",
                f"an H x W array of the video's size {hw} (or {IMAGE_SIZE} x {IMAGE_SIZE})",
                f"shape {mask.shape}",
            )
        binary = (mask != 0).astype(np.float32)
        if binary.shape != (IMAGE_SIZE, IMAGE_SIZE):
            binary = (resize_bilinear_antialias(binary, (IMAGE_SIZE, IMAGE_SIZE)) >= 0.5).astype(np.float32)
        return binary
