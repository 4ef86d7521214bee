"""SAM 2.1's video modules (memory attention, memory encoder, object pointers, the tracking heads)
against the official video predictor's recordings in ``../shared/sam_reference/sam2/video``.

The kit's scenario ``two_objects`` (obj 1 clicked on frame 0, obj 2 boxed on frame 2, then one
forward propagation) stores, after the propagation, every frame's memory (bfloat16), object
pointer, object score and low-res logits per object, and the first three memory-conditioned
features. What fed those three calls follows from the official selection rule
(:func:`sam_onnx.video_memory.plan_memory`) and is asserted here, then each recorded output is
recomputed from recorded inputs: graph-level parity, one module at a time.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from sam_onnx.modeling.sam2_checkpoint import load_sam2_video
from sam_onnx.modeling.sam2_video import Sam2FrameFeatures, round_to_bfloat16
from sam_onnx.variants import SAM2_PIXEL_MEAN, SAM2_PIXEL_STD
from sam_onnx.video_memory import MemoryPlan, plan_memory
from tests.conftest import require_reference

VIDEO = "sam2/video/sam2.1_hiera_t_seed0_video.npz"
SCENARIO = "clip_a/two_objects"
STORED = f"{SCENARIO}/2"  # the state after the propagation (step 2)
VIDEO_SIZE_WH = (480, 270)
NUM_FRAMES = 8
# (memattn index, frame, object, conditioning frames, other stored frames at that call)
MEMATTN_CALLS = ((0, 0, 2, [2], []), (1, 1, 1, [0], []), (2, 1, 2, [2], [0]))
MEMATTN_TOL = 1e-3  # of the output's scale (max |value|), the yardstick
LOGIT_TOL = 1e-4  # of the logits' scale: the heads fed recorded inputs
PTR_TOL = 1e-5  # absolute, object pointers (|values| about 1) and object scores
HOLE_FILLED = 0.1  # the official fill_holes_in_mask_scores value


@pytest.fixture(scope="module")
def video_dir():
    return require_reference(VIDEO) / "sam2" / "video"


@pytest.fixture(scope="module")
def kit(video_dir):
    with np.load(video_dir / "sam2.1_hiera_t_seed0_video.npz") as z:
        keys = [k for k in z.files if k.startswith((STORED, f"{SCENARIO}/memattn", "clip_a/input"))]
        data = {k: z[k] for k in keys}
        data["meta"] = json.loads(bytes(z["meta_json"]))
    return data


@pytest.fixture(scope="module")
def model(video_dir, tmp_path_factory):
    """hiera_t with the video kit's weights: make_checkpoint.py seed 0, object-score offset 0.6."""
    out = tmp_path_factory.mktemp("video_ckpt") / "sam2.1_hiera_t_seed0_offset0.6.pt"
    script = video_dir.parent / "make_checkpoint.py"
    cmd = [
        sys.executable,
        str(script),
        "sam2.1_hiera_t",
        str(out),
        "--seed",
        "0",
        "--object-score-offset",
        "0.6",
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    return load_sam2_video(out)


def read_frame(video_dir, index: int) -> torch.Tensor:
    """A clip frame as the official video loader reads it: Pillow resize to 1024 x 1024 (bicubic,
    Pillow's default), / 255, then mean / std; ``1 x 3 x 1024 x 1024`` float32."""
    image = (
        Image.open(video_dir / "clips" / "clip_a" / f"{index:05d}.jpg").convert("RGB").resize((1024, 1024))
    )
    x = np.asarray(image, dtype=np.float32) / 255.0
    x = (x - np.array(SAM2_PIXEL_MEAN, np.float32)) / np.array(SAM2_PIXEL_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))[None])


@pytest.fixture(scope="module")
def frames(model, video_dir) -> dict[int, Sam2FrameFeatures]:
    """Our encoder's features of frames 0..2 (the three memory-attention calls need no more)."""
    with torch.no_grad():
        return {i: model.encode_frame(read_frame(video_dir, i)) for i in range(3)}


def stored(kit, obj: int, frame: int, name: str) -> torch.Tensor:
    return torch.from_numpy(kit[f"{STORED}/obj{obj}/f{frame}/{name}"])


def stored_memory(kit, obj: int, frame: int) -> torch.Tensor:
    """The stored bfloat16 memory as float32 values, ``1 x 64 x 64 x 64``."""
    bits = kit[f"{STORED}/obj{obj}/f{frame}/maskmem_bf16"].astype(np.uint32) << 16
    return torch.from_numpy(bits.view(np.float32))[None]


def relative_error(ours: torch.Tensor, golden: torch.Tensor) -> float:
    return float((ours - golden).abs().max() / golden.abs().max())


def memory_inputs(model, kit, plan: MemoryPlan, obj: int):
    """The memory-attention inputs of ``plan`` from the kit's stored memories and pointers."""
    memory, tpos = model.spatial_memory(
        [stored_memory(kit, obj, f) for f, _ in plan.spatial], [t for _, t in plan.spatial]
    )
    ptrs = [stored(kit, obj, f, "obj_ptr") for f, _ in plan.pointers]
    obj_ptrs = torch.stack(ptrs)[None] if ptrs else torch.zeros(1, 0, 256)
    distances = torch.tensor([d for _, d in plan.pointers], dtype=torch.int64)
    return (memory, tpos, *model.pointer_memory(obj_ptrs, distances, plan.max_distance))


def conditioned(model, kit, frames, index: int) -> torch.Tensor:
    _, frame, obj, cond, tracked = MEMATTN_CALLS[index]
    plan = plan_memory(frame, cond, tracked, NUM_FRAMES)
    with torch.no_grad():
        return model.condition_on_memory(frames[frame].vision_features, *memory_inputs(model, kit, plan, obj))


# --- which memories fed the recorded calls ---------------------------------------------------------


def test_kit_scenario_is_the_one_the_memory_plans_assume(kit):
    """The recorded steps: obj 1 clicked on frame 0, obj 2 boxed on frame 2, a propagation from 0;
    the three calls are frame 0 / obj 2, frame 1 / obj 1, frame 1 / obj 2; frames 0 (obj 1) and 2
    (obj 2) are the conditioning ones, the others tracked."""
    scenario = next(s for s in kit["meta"]["clips"][0]["scenarios"] if s["name"] == "two_objects")
    ops = [(s["op"], s.get("frame"), s.get("obj")) for s in scenario["steps"]]
    assert ops == [("points", 0, 1), ("points", 2, 2), ("propagate", None, None)]
    assert [(c["index"], c["frame"]) for c in scenario["memattn"]] == [(i, f) for i, f, *_ in MEMATTN_CALLS]
    for obj, cond in ((1, 0), (2, 2)):
        assert [bool(kit[f"{STORED}/obj{obj}/f{f}/is_cond"]) for f in range(NUM_FRAMES)] == [
            f == cond for f in range(NUM_FRAMES)
        ]


def test_memory_plans_of_the_recorded_calls():
    """Conditioning memories first (slot 0), recent frames by distance (frame 0 for frame 1 is
    slot 6); pointers only from the past (obj 2's frame-2 pointer is ahead of frames 0 and 1), at
    distance 1; distances scaled by min(8 frames, 16) - 1 = 7."""
    assert plan_memory(0, [2], [], NUM_FRAMES) == MemoryPlan(((2, 0),), (), 7)
    assert plan_memory(1, [0], [], NUM_FRAMES) == MemoryPlan(((0, 0),), ((0, 1),), 7)
    assert plan_memory(1, [2], [0], NUM_FRAMES) == MemoryPlan(((2, 0), (0, 6)), ((0, 1),), 7)


def test_memory_plan_windows_and_reverse():
    tracked = set(range(1, 30))
    plan = plan_memory(20, [0], tracked, 40)
    assert plan.spatial == ((0, 0), (14, 1), (15, 2), (16, 3), (17, 4), (18, 5), (19, 6))
    assert plan.pointers == ((0, 20), *((20 - d, d) for d in range(1, 16)))
    assert plan.max_distance == 15
    back = plan_memory(5, [9, 2], set(range(6, 9)), 10, reverse=True)
    assert back.spatial == ((9, 0), (2, 0), (8, 4), (7, 5), (6, 6))
    # in reverse the conditioning frame 2 lies ahead: no pointer; frame 9 is 4 frames back
    assert back.pointers == ((9, 4), (6, 1), (7, 2), (8, 3))
    assert back.max_distance == 9
    # a conditioning frame clicked again after tracking reached it: its own memory and pointer too
    again = plan_memory(3, [0, 3], {1, 2, 4, 5}, 8)
    assert again == MemoryPlan(((0, 0), (3, 0), (1, 5), (2, 6)), ((0, 3), (3, 0), (2, 1), (1, 2)), 7)


# --- graph-level parity ----------------------------------------------------------------------------


def test_frame_read_as_the_official_loader_gives_input_tensor_0(kit, video_dir):
    np.testing.assert_array_equal(read_frame(video_dir, 0).numpy(), kit["clip_a/input_tensor_0"])


@pytest.mark.parametrize("index", [0, 1, 2])
def test_memory_attention_reproduces_the_recorded_calls(model, kit, frames, index):
    golden = torch.from_numpy(kit[f"{SCENARIO}/memattn/{index}"])
    error = relative_error(conditioned(model, kit, frames, index), golden)
    assert error < MEMATTN_TOL, f"memattn/{index}: max abs diff {error:.2e} of the scale"


def test_memory_attention_parity_catches_one_weight_scaled_by_1_01(model, kit, frames):
    """A 1 % change of one weight (a value projection of the third layer) fails the parity check
    above: it moves the features by 4.4e-3 of their scale, the tolerance is 1e-3 and the unchanged
    model is within 1e-6."""
    golden = torch.from_numpy(kit[f"{SCENARIO}/memattn/2"])
    weight = model.memory_attention.layers[2].cross_attn_image.v_proj.weight
    original = weight.detach().clone()
    try:
        with torch.no_grad():
            weight.mul_(1.01)
        error = relative_error(conditioned(model, kit, frames, 2), golden)
    finally:
        with torch.no_grad():
            weight.copy_(original)
    assert error > 2 * MEMATTN_TOL, error


def heads_on(model, kit, frames, obj: int, frame: int):
    """Our heads on one stored frame, fed what the official ones were fed: the prompt on the
    conditioning frames (no memory), the recorded memory-conditioned features on tracked ones."""
    features = frames[frame]
    width, height = VIDEO_SIZE_WH
    if (obj, frame) in ((1, 0), (2, 2)):
        step = kit["meta"]["clips"][0]["scenarios"][0]["steps"][obj - 1]
        if "box" in step:
            coords, labels = torch.tensor(step["box"]).reshape(1, 2, 2), torch.tensor([[2, 3]])
        else:
            coords, labels = torch.tensor([step["points"]]), torch.tensor([step["labels"]])
        coords = coords / torch.tensor([float(width), float(height)]) * 1024
        pix_feat = model.init_cond_features(features.vision_features)
    else:
        index = next(i for i, f, o, *_ in MEMATTN_CALLS if (o, f) == (obj, frame))
        coords, labels = torch.zeros(1, 1, 2), -torch.ones(1, 1, dtype=torch.int32)
        pix_feat = torch.from_numpy(kit[f"{SCENARIO}/memattn/{index}"])
    multimask = labels.shape[1] <= 1  # official: 0 or 1 point (a box counts as two)
    with torch.no_grad():
        return model.track_heads(
            pix_feat,
            features.high_res_feats_0,
            features.high_res_feats_1,
            coords,
            labels.int(),
            multimask=multimask,
        )


HEAD_FRAMES = [(1, 0), (2, 2), (2, 0), (1, 1), (2, 1)]  # (object, frame): 2 prompted, 3 tracked


@pytest.mark.parametrize(("obj", "frame"), HEAD_FRAMES)
def test_heads_reproduce_stored_logits_pointer_and_score(model, kit, frames, obj, frame):
    """Low-res logits within 1e-4 of their scale wherever hole filling left them (the stored ones
    are after hole filling: every other difference is a filled hole, stored as 0.1 where ours is
    <= 0); object pointer and score within 1e-5."""
    out = heads_on(model, kit, frames, obj, frame)
    golden = stored(kit, obj, frame, "pred_masks")
    ours = out.low_res_masks[0, 0]
    far = (ours - golden).abs() > LOGIT_TOL * golden.abs().max()
    assert bool(torch.all(golden[far] == HOLE_FILLED)) and bool(torch.all(ours[far] <= 0))
    assert int(far.sum()) < 0.02 * golden.numel()
    torch.testing.assert_close(out.obj_ptr[0], stored(kit, obj, frame, "obj_ptr"), rtol=0, atol=PTR_TOL)
    torch.testing.assert_close(
        out.object_score_logits[0], stored(kit, obj, frame, "object_score_logits"), rtol=0, atol=PTR_TOL
    )


@pytest.mark.parametrize(("obj", "frame"), HEAD_FRAMES)
def test_memory_encoder_reproduces_stored_memories(model, kit, frames, obj, frame):
    """Prompted frames: the stored logits (after hole filling), binarised. Tracked frames: the
    heads' logits before hole filling, through the sigmoid. Rounded to bfloat16, every value is
    the stored one or its neighbour (a float32 value within rounding of a tie), most are equal."""
    prompted = bool(kit[f"{STORED}/obj{obj}/f{frame}/is_cond"])
    if prompted:
        masks, scores = (
            stored(kit, obj, frame, "pred_masks")[None, None],
            stored(kit, obj, frame, "object_score_logits")[None],
        )
    else:
        out = heads_on(model, kit, frames, obj, frame)
        masks, scores = out.low_res_masks, out.object_score_logits
    with torch.no_grad():
        memory = model.encode_memory(frames[frame].vision_features, masks, scores, binarize=prompted)
    golden = stored_memory(kit, obj, frame)
    # one bfloat16 step at the stored value, or float32 noise near 0 (differences of values ~10)
    step = torch.exp2(torch.floor(torch.log2(golden.abs().clamp(min=1e-30))) - 7)
    allowed = torch.maximum(step, 1e-5 * golden.abs().max())
    assert bool(torch.all((memory - golden).abs() <= allowed)), "beyond one bfloat16 step"
    assert float((round_to_bfloat16(memory) != golden).float().mean()) < 2e-3
