"""Parity of the SAM 2.1 video graphs with our PyTorch :class:`Sam2Video`, after export.

A short clip is tracked in PyTorch the official way, one method of :class:`Sam2Video` per step
(:meth:`~Sam2Video.encode_frame` of each validation image in turn, so frames of three sizes):

- frame 0 prompts three objects (one click: multimask; two clicks, and a box: the single-mask
  rule) and the last two are encoded into memory binarised;
- frame 1 conditions both on that memory and pointer, is tracked (no prompt) and encoded through
  the sigmoid; one object then gets a correction (three clicks, the previous logits as mask input);
- frame 2 conditions on two memories and two pointers, and on one memory and no pointer;
- two mask prompts of the image's size, one of them empty (the absent path).

Each graph is fed the inputs its PyTorch step was fed (the graphs take the encoder's
``image_embeddings``, the map plus ``no_mem_embed``, where PyTorch reads the map itself, so the
checks include that subtraction's rounding) and compared output by output with the validator's
tolerances: batches, memory counts and pointer counts other than the traced ones.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sam_onnx.modeling.sam2_video import Sam2FrameFeatures, Sam2Video, TrackOutput, round_to_bfloat16
from sam_onnx.variants import IMAGE_SIZE

from .validate import Validator, compare, cpu_session

LOW_RES_CLAMP = 32.0  # official: the previous logits fed back as a mask input, clamped


class VideoClip:
    """The PyTorch clip of the module docstring, built once per validator: each step's inputs
    (graph input name -> array) and its reference outputs, per graph role."""

    def __init__(self, model: Sam2Video, validator: Validator) -> None:
        self.model = model
        self.cases: dict[str, list[tuple[str, dict[str, np.ndarray], list[np.ndarray]]]] = {}
        with torch.inference_mode():
            self._track(validator)

    def add(self, role: str, case: str, feed: dict[str, torch.Tensor], want) -> None:
        arrays = {k: v.numpy() for k, v in feed.items()}
        outputs = [w.numpy() for w in (want if isinstance(want, tuple) else (want,))]
        self.cases.setdefault(role, []).append((case, arrays, outputs))

    def _frames(self, validator: Validator):
        """Per validation image: the map, the encoder graph's three outputs (PyTorch) and size."""
        for img in validator.images[:3]:
            frame = self.model.encode_frame(torch.from_numpy(img.normalized))
            embeddings, hr0, hr1 = (torch.from_numpy(f) for f in validator.features(img))
            yield frame, (embeddings, hr0, hr1), img.orig_hw

    def _track(self, validator: Validator) -> None:
        frames = list(self._frames(validator))
        while len(frames) < 3:  # fewer validation images: repeat the last frame
            frames.append(frames[-1])
        (f0, enc0, hw0), (f1, enc1, _), (f2, enc2, _) = frames
        out0, mem0 = self._prompted_frame(f0, enc0)
        cond1 = self._memory_attention("frame1", f1, enc1, [mem0], [0], [out0.obj_ptr], [1], 2)
        out1 = self._heads("frame1_tracked", cond1, enc1, *_no_prompt(2))
        mem1 = self._memory_encoder("frame1_sigmoid", f1, enc1, out1, binarize=False)
        self._memory_attention(
            "frame2", f2, enc2, [mem0, mem1], [0, 6], [out0.obj_ptr, out1.obj_ptr], [2, 1], 2
        )
        self._memory_attention("frame2_no_pointer", f2, enc2, [mem1[:1]], [6], [], [], 2)
        self._correction(cond1, enc1, out1)
        self._mask_prompts(f0, enc0, hw0)

    def _prompted_frame(self, frame: Sam2FrameFeatures, enc) -> tuple[TrackOutput, torch.Tensor]:
        """Frame 0: two objects of two points each (a positive and a negative click; a box), the
        single-mask rule, encoded into memory; and one object of one click (multimask)."""
        coords = torch.tensor([[[300.0, 400.0], [650.0, 120.0]], [[100.0, 150.0], [700.0, 800.0]]])
        labels = torch.tensor([[1.0, 0.0], [2.0, 3.0]])
        pix_feat = self.model.init_cond_features(frame.vision_features)
        click = torch.tensor([[[500.0, 520.0]]]), torch.tensor([[1.0]])
        self._heads("frame0_one_click", pix_feat, enc, *click)
        out = self._heads("frame0_two_points", pix_feat.expand(2, -1, -1, -1), enc, coords, labels)
        return out, self._memory_encoder("frame0_binarized", frame, enc, out, binarize=True)

    def _heads(self, case, pix_feat, enc, coords, labels, mask=None) -> TrackOutput:
        """The official heads one object at a time (unfactored decoder, the prompt encoder's
        own padding point), stacked; the graph gets the B objects at once."""
        rows = []
        for b in range(coords.shape[0]):
            points = (coords[b : b + 1], labels[b : b + 1].int())
            rows.append(
                self.model.track_heads(
                    pix_feat[b : b + 1],
                    enc[1],
                    enc[2],
                    *points,
                    None if mask is None else mask[b : b + 1],
                    multimask=int((labels[b] >= 0).sum()) <= 1,
                )
            )
        out = TrackOutput(*(torch.cat(parts) for parts in zip(*rows, strict=True)))
        has_mask = torch.zeros(coords.shape[0]) if mask is None else torch.ones(coords.shape[0])
        mask_input = torch.zeros(coords.shape[0], 1, 256, 256) if mask is None else mask
        feed = {
            "frame_embeddings": pix_feat,
            "high_res_feats_0": enc[1],
            "high_res_feats_1": enc[2],
            "point_coords": coords,
            "point_labels": labels,
            "mask_input": mask_input,
            "has_mask_input": has_mask,
        }
        self.add("video_heads", case, feed, tuple(out))
        return out

    def _memory_encoder(self, case, frame, enc, out: TrackOutput, *, binarize: bool) -> torch.Tensor:
        b = out.low_res_masks.shape[0]
        memory = self.model.encode_memory(
            frame.vision_features.expand(b, -1, -1, -1),
            out.low_res_masks,
            out.object_score_logits,
            binarize=binarize,
        )
        feed = {
            "image_embeddings": enc[0],
            "low_res_logits": out.low_res_masks,
            "object_score_logits": out.object_score_logits,
            "binarize": torch.full((b,), float(binarize)),
        }
        self.add("memory_encoder", case, feed, memory)
        return round_to_bfloat16(memory)

    def _memory_attention(self, case, frame, enc, memories, slots, ptrs, distances, max_distance):
        b = memories[0].shape[0]
        memory, tpos = self.model.spatial_memory(memories, slots)
        obj_ptrs = torch.stack(ptrs, dim=1) if ptrs else torch.zeros(b, 0, 256)
        dist = torch.tensor(distances, dtype=torch.int64)
        tokens, pos = self.model.pointer_memory(obj_ptrs, dist, max_distance)
        features = frame.vision_features.expand(b, -1, -1, -1)
        want = self.model.condition_on_memory(features, memory, tpos, tokens, pos)
        feed = {
            "image_embeddings": enc[0],
            "memory": memory,
            "memory_slots": torch.tensor([slots] * b, dtype=torch.int64),
            "obj_ptrs": obj_ptrs,
            "obj_ptr_distances": dist[None].expand(b, -1).contiguous(),
            "obj_ptr_max_distance": torch.tensor(max_distance, dtype=torch.int64),
        }
        self.add("memory_attention", case, feed, want)
        return want

    def _correction(self, cond, enc, previous: TrackOutput) -> None:
        """Object 1 on the tracked frame 1: three clicks and the previous logits as mask input."""
        coords = torch.tensor([[[200.0, 300.0], [600.0, 500.0], [900.0, 100.0]]])
        labels = torch.tensor([[1.0, 0.0, 1.0]])
        mask = previous.low_res_masks[:1].clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)
        self._heads("frame1_correction", cond[:1], enc, coords, labels, mask)

    def _mask_prompts(self, frame: Sam2FrameFeatures, enc, orig_hw: tuple[int, int]) -> None:
        """Two masks of the image's size: a rectangle and an empty one (object absent)."""
        h, w = orig_hw
        mask = torch.zeros(2, h, w)
        mask[0, h // 4 : max(h // 4 + 1, 3 * h // 4), w // 3 : max(w // 3 + 1, 2 * w // 3)] = 1.0
        resized = F.interpolate(
            mask[:, None], (IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False, antialias=True
        )
        features = Sam2FrameFeatures(frame.vision_features.expand(2, -1, -1, -1), enc[1], enc[2])
        out = self.model.mask_as_output(features, (resized >= 0.5).float())
        want = (out.low_res_masks, out.obj_ptr, out.object_score_logits)
        self.add("video_mask_prompt", "mask_and_empty_mask", {"image_embeddings": enc[0], "mask": mask}, want)


def _no_prompt(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A tracked frame's prompt: one point (0, 0) labelled -1 per object, as officially."""
    return torch.zeros(batch, 1, 2), -torch.ones(batch, 1)


_CLIPS: weakref.WeakKeyDictionary[Validator, VideoClip] = weakref.WeakKeyDictionary()  # one per export


def check_video_graph(validator: Validator, name: str, path: Path, wrapper: torch.nn.Module) -> None:
    """One video graph (``wrapper``'s role) on every case of the validator's clip."""
    if validator not in _CLIPS:
        _CLIPS[validator] = VideoClip(wrapper.model, validator)
    role = Path(name).stem
    session = cpu_session(path)
    if not validator.check_interface(name, session, wrapper):
        return
    cases = _CLIPS[validator].cases[role]
    with validator.bar(name, len(cases)) as done:
        for case, feed, want in cases:
            got = validator.run_graph(name, case, session, feed)
            if got is not None:
                validator.report.checks += compare(name, case, wrapper.output_names, got, want)
            done.update()
