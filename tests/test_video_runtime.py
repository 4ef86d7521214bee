"""The video room's building blocks without the export: the frame loader (against the video kit's
encoder input), hole filling (against a plain flood fill), bfloat16 storage (against torch), and
every bad input refused with a typed error before the state changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam_onnx.errors import InvalidInputError, InvalidVideoError, TrackingStateError
from sam_onnx.runtime.video import VideoPredictor
from sam_onnx.runtime.video.bfloat16 import from_bfloat16_bits, to_bfloat16_bits
from sam_onnx.runtime.video.frames import VideoFile, open_video
from sam_onnx.runtime.video.holes import fill_holes
from tests.conftest import require_reference

VIDEO = "sam2/video/sam2.1_hiera_t_seed0_video.npz"


def write_frames(folder: Path, sizes_hw, *, seed: int = 0, names=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index, (h, w) in enumerate(sizes_hw):
        name = names[index] if names else f"{index:05d}.jpg"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(folder / name)
    return folder


# --- frames ---------------------------------------------------------------------------------------


def test_jpeg_folder_reads_as_the_official_loader():
    """Frame 0 of the kit's clip is exactly what the official predictor's encoder received; every
    frame's pixels are the kit's Pillow decode."""
    kit_dir = require_reference(VIDEO) / "sam2" / "video"
    with np.load(kit_dir / "sam2.1_hiera_t_seed0_video.npz") as z:
        expected, frames = z["clip_a/input_tensor_0"], z["clip_a/frames"]
    clip = open_video(kit_dir / "clips" / "clip_a")
    assert (clip.num_frames, clip.video_hw) == (8, (270, 480))
    got = clip.model_input(0)
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    for index in (0, 5, 7):
        assert np.array_equal(clip.rgb(index), frames[index])


def test_frames_are_sorted_by_their_index(tmp_path):
    folder = write_frames(tmp_path / "f", [(8, 10)] * 3, names=["10.jpg", "9.JPEG", "00002.jpeg"])
    (folder / "notes.txt").write_text("not a frame")
    clip = open_video(folder)
    assert [p.name for p in clip.paths] == ["00002.jpeg", "9.JPEG", "10.jpg"]


def test_arrays_and_their_model_input():
    """Arrays go through the official loader's arithmetic (Pillow bicubic to 1024, / 255 in
    float64, mean / std in float32)."""
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (30, 40, 3), np.uint8) for _ in range(3)]
    clip = open_video(frames)
    assert (clip.num_frames, clip.video_hw) == (3, (30, 40))
    resized = np.asarray(Image.fromarray(frames[1]).resize((1024, 1024), Image.Resampling.BICUBIC))
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    expected = ((resized / 255.0).astype(np.float32).transpose(2, 0, 1) - mean) / std
    assert np.array_equal(clip.model_input(1), expected[None])
    assert np.array_equal(open_video(np.stack(frames)).model_input(2), clip.model_input(2))


def test_video_file_random_access_equals_sequential_decode(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 32))
    rng = np.random.default_rng(2)
    for _ in range(9):
        writer.write(rng.integers(0, 256, (32, 48, 3), np.uint8))
    writer.release()
    clip = open_video(path)
    assert isinstance(clip, VideoFile) and (clip.num_frames, clip.video_hw) == (9, (32, 48))
    sequential = [clip.rgb(i).copy() for i in range(9)]
    for i in (8, 3, 4, 0, 7, 6):  # backwards and jumps seek
        assert np.array_equal(clip.rgb(i), sequential[i]), i
    clip.close()


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda d: d, "no .jpg or .jpeg file"),
        (lambda d: write_frames(d, [(8, 10), (8, 10), (9, 10)]), "00002.jpg of 10x9"),
        (lambda d: write_frames(d, [(8, 10)], names=["first.jpg"]), "'first.jpg'"),
        (lambda d: d / "missing", "no such file or folder"),
    ],
    ids=["empty", "mixed_sizes", "not_an_index", "missing"],
)
def test_bad_folders_are_refused(tmp_path, make, expected):
    folder = tmp_path / "frames"
    folder.mkdir()
    with pytest.raises(InvalidVideoError, match=expected):
        open_video(make(folder))


def test_unreadable_frame_is_named(tmp_path):
    folder = write_frames(tmp_path / "f", [(8, 10)] * 2)
    (folder / "00002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InvalidVideoError, match=r"00002\.jpg"):
        open_video(folder)
    # a frame whose header reads but whose data is cut: named when it is decoded
    folder = write_frames(tmp_path / "g", [(64, 64)] * 2)
    data = (folder / "00001.jpg").read_bytes()
    (folder / "00001.jpg").write_bytes(data[: len(data) // 3])
    clip = open_video(folder)
    with pytest.raises(InvalidVideoError, match=r"00001\.jpg"):
        clip.model_input(1)


def test_bad_video_files_and_arrays_are_refused(tmp_path):
    garbage = tmp_path / "clip.mp4"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(InvalidVideoError, match=r"clip\.mp4"):
        open_video(garbage)
    with pytest.raises(InvalidVideoError, match="an empty sequence"):
        open_video([])
    with pytest.raises(InvalidVideoError, match="frame 1"):
        open_video([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)])
    with pytest.raises(InvalidVideoError, match="uint8"):
        open_video([np.zeros((4, 4, 3), np.float32)])


# --- hole filling ---------------------------------------------------------------------------------


def flood_fill_holes(logits: np.ndarray, max_area: int) -> np.ndarray:
    """The official rule written plainly: 8-connected components of logits <= 0, area <= max_area
    -> 0.1."""
    background = logits <= 0
    seen = np.zeros_like(background)
    out = logits.copy()
    h, w = logits.shape
    for y0, x0 in zip(*np.nonzero(background), strict=True):
        if seen[y0, x0]:
            continue
        component, todo = [], [(y0, x0)]
        seen[y0, x0] = True
        while todo:
            y, x = todo.pop()
            component.append((y, x))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < h and 0 <= nx < w and background[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        todo.append((ny, nx))
        if len(component) <= max_area:
            for y, x in component:
                out[y, x] = 0.1
    return out


@pytest.mark.parametrize("seed", range(4))
def test_fill_holes_equals_a_flood_fill(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.8, 1.0, (2, 40, 50)).astype(np.float32)  # many small background specks
    logits[0, 10:14, 10:14] = -3  # a 16-pixel hole: kept
    logits[1, 0, :] = 0.0  # zero is background
    filled = fill_holes(logits, 8)
    for m in range(2):
        assert np.array_equal(filled[m], flood_fill_holes(logits[m], 8))
    assert np.all(filled[0, 10:14, 10:14] == -3)
    assert np.array_equal(fill_holes(logits, 0), logits)


# --- bfloat16 -------------------------------------------------------------------------------------


def test_bfloat16_rounds_to_nearest_even():
    one = np.float32(1.0)
    ulp = np.float32(2.0**-7)  # bfloat16's step at 1
    values = np.array(
        [one + ulp / 2, one + 3 * ulp / 2, one + ulp / 2 + 2**-20, -(one + ulp / 2)], np.float32
    )
    assert from_bfloat16_bits(to_bfloat16_bits(values)).tolist() == [1.0, 1 + 2 * ulp, 1 + ulp, -1.0]
    special = np.array([np.inf, -np.inf, np.nan, 3.4e38], np.float32)
    back = from_bfloat16_bits(to_bfloat16_bits(special))
    assert back[0] == np.inf and back[1] == -np.inf and np.isnan(back[2]) and back[3] == np.inf


def test_bfloat16_equals_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(200_000) * 10.0 ** rng.integers(-30, 30, 200_000)).astype(np.float32)
    theirs = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(to_bfloat16_bits(x), theirs)


# --- bad prompts: typed errors, the state unchanged -----------------------------------------------


class NoModel:
    """Stands where the graphs are when only input checks run (each check precedes any model
    call); ``encode`` is what init_state calls."""

    def encode(self, image):
        return None


@pytest.fixture
def state_and_predictor():
    predictor = VideoPredictor(NoModel())
    frames = [np.zeros((30, 40, 3), np.uint8)] * 4
    return predictor.init_state(frames), predictor


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"frame_idx": 4, "points": [[1, 2]], "labels": [1]}, "frame_idx"),
        ({"frame_idx": -1, "points": [[1, 2]], "labels": [1]}, "frame_idx"),
        ({"frame_idx": 0, "points": [[1, 2], [3, 4]], "labels": [1]}, "labels"),
        ({"frame_idx": 0, "points": [[1, 2]]}, "points and labels"),
        ({"frame_idx": 0}, "prompt"),
        ({"frame_idx": 0, "points": [[np.nan, 2]], "labels": [1]}, "points"),
        ({"frame_idx": 0, "box": [1, 2, 3]}, "box"),
        ({"frame_idx": 0, "box": [1, 2, 3, 4], "clear_old_points": False}, "box"),
    ],
)
def test_bad_prompts_are_refused_before_anything_changes(state_and_predictor, kwargs, name):
    state, predictor = state_and_predictor
    with pytest.raises(InvalidInputError) as info:
        predictor.add_new_points_or_box(state, obj_id=1, **kwargs)
    assert info.value.name == name
    assert state.obj_ids == [] and state.objects == []


def test_bad_masks_and_frames_are_refused(state_and_predictor):
    state, predictor = state_and_predictor
    with pytest.raises(InvalidInputError, match=r"video's size \(30, 40\).*got shape \(40, 30\)"):
        predictor.add_new_mask(state, 0, 1, np.ones((40, 30), bool))
    with pytest.raises(InvalidInputError, match=r"0\.\.3"):
        predictor.add_new_mask(state, 9, 1, np.ones((30, 40), bool))
    assert state.obj_ids == []
    with pytest.raises(TrackingStateError, match="no object has a prompt"):
        next(predictor.propagate_in_video(state))


# --- the calls on a tiny model (our PyTorch Sam2Video behind the model interface) -----------------


@pytest.fixture(scope="module")
def tiny_predictor():
    pytest.importorskip("torch")
    from tests.video_torch_model import tiny_torch_video_model

    return VideoPredictor(tiny_torch_video_model())


@pytest.fixture(scope="module")
def tiny_clip():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (24, 36, 3), np.uint8) for _ in range(5)]


def test_two_objects_propagate_forward_and_back(tiny_predictor, tiny_clip):
    p = tiny_predictor
    state = p.init_state(tiny_clip)
    frame, ids, masks = p.add_new_points_or_box(state, 1, "a", points=[[10, 12]], labels=[1])
    assert (frame, ids, masks.shape, masks.dtype) == (1, ["a"], (1, 1, 24, 36), np.float32)
    _, ids, masks = p.add_new_mask(state, 3, 7, np.ones((24, 36), bool))
    assert ids == ["a", 7] and masks.shape == (2, 1, 24, 36)
    assert np.all(masks[0] == -1024)  # object "a" has no output on frame 3 yet
    forward = list(p.propagate_in_video(state))
    assert [f for f, _, _ in forward] == [1, 2, 3, 4]
    assert all(ids == ["a", 7] and m.shape == (2, 1, 24, 36) for _, ids, m in forward)
    # object 7, prompted on frame 3 only, is tracked on frame 1 from that (later) memory, as officially
    assert 1 in state.objects[1].non_cond
    backward = list(p.propagate_in_video(state, start_frame_idx=3, reverse=True))
    assert [f for f, _, _ in backward] == [3, 2, 1, 0]
    assert list(p.propagate_in_video(state, start_frame_idx=0, reverse=True)) == []  # official: none
    limited = list(p.propagate_in_video(state, start_frame_idx=3, max_frame_num_to_track=1))
    assert [f for f, _, _ in limited] == [3, 4]
    a, seven = state.objects
    assert list(a.cond) == [1] and sorted(a.non_cond) == [0, 2, 3, 4]
    assert list(seven.cond) == [3] and sorted(seven.non_cond) == [0, 1, 2, 4]
    assert all(out.maskmem_bits.dtype == np.uint16 for out in (*a.cond.values(), *a.non_cond.values()))


def test_memory_per_tracked_frame_is_bounded(tiny_predictor, tiny_clip):
    """A tracked frame adds its bfloat16 memory (512 KiB), its low-res logits (256 KiB) and its
    pointer; the clip's frames are not held, the encoder's features of one frame only."""
    p = tiny_predictor
    state = p.init_state(tiny_clip)
    p.add_new_points_or_box(state, 0, 1, points=[[5, 5]], labels=[1])
    sizes = [state.nbytes for _ in p.propagate_in_video(state)]
    per_frame = np.diff(sizes)
    assert np.all(per_frame == 64 * 64 * 64 * 2 + 256 * 256 * 4 + 256 * 4 + 4)
    assert state.cached_features[0] == 4


def test_correction_clear_remove_reset(tiny_predictor, tiny_clip):
    p = tiny_predictor
    state = p.init_state(tiny_clip)
    p.add_new_points_or_box(state, 0, 1, points=[[5, 5]], labels=[1])
    p.add_new_points_or_box(state, 0, 2, box=[2, 3, 20, 18])
    list(p.propagate_in_video(state))
    # a correction on a tracked frame: kept as a tracked (non-conditioning) output
    _, _, masks = p.add_new_points_or_box(state, 2, 1, points=[[30, 20]], labels=[0], clear_old_points=False)
    assert 2 in state.objects[0].temp_non_cond and masks.shape == (2, 1, 24, 36)
    # a click on the prompted frame after tracking: the official attends to its own memory too
    p.add_new_points_or_box(state, 0, 1, points=[[6, 6]], labels=[1], clear_old_points=False)
    assert 0 in state.objects[0].temp_non_cond
    list(p.propagate_in_video(state))
    assert 2 in state.objects[0].non_cond and 0 not in state.objects[0].non_cond  # official edge case
    _, _, masks = p.clear_all_prompts_in_frame(state, 0, 2)
    assert 0 not in state.objects[1].cond and 0 in state.objects[1].non_cond
    with pytest.raises(TrackingStateError, match="object 2"):
        next(p.propagate_in_video(state))
    assert p.remove_object(state, 2) == ([1], [])  # its only prompt was cleared: nothing to redo
    p.add_new_mask(state, 3, 3, np.ones((24, 36), bool))
    ids, updated = p.remove_object(state, 1)  # the frames it had prompts on, for the others
    assert ids == [3] and state.obj_ids == [3] and [f for f, _ in updated] == [0, 2]
    assert all(masks.shape == (1, 1, 24, 36) and np.all(masks == -1024) for _, masks in updated)
    assert p.remove_object(state, "unknown") == ([3], [])
    with pytest.raises(InvalidInputError, match="obj_id"):
        p.remove_object(state, "unknown", strict=True)
    p.reset_state(state)
    assert state.obj_ids == [] and state.nbytes == 0


def test_non_overlap_masks(tiny_predictor, tiny_clip):
    p = tiny_predictor
    state = p.init_state(tiny_clip)
    p.add_new_mask(state, 0, 1, np.ones((24, 36), bool))
    p.add_new_mask(state, 0, 2, np.ones((24, 36), bool))
    p.non_overlap_masks = True
    try:
        for _, _, masks in p.propagate_in_video(state, max_frame_num_to_track=1):
            assert not np.any((masks[0] > 0) & (masks[1] > 0))
            assert np.all(masks.min(axis=0) <= -10)
    finally:
        p.non_overlap_masks = False


# --- the runtime as shipped: a tiny export's graphs -----------------------------------------------


def script(predictor, clip) -> list[np.ndarray]:
    """Points, a mask, two objects, a correction and reverse tracking: every returned mask."""
    state = predictor.init_state(clip)
    out = [predictor.add_new_points_or_box(state, 1, 1, points=[[10, 12]], labels=[1])[2]]
    out.append(predictor.add_new_mask(state, 2, 2, np.pad(np.ones((10, 10), bool), ((5, 9), (8, 18))))[2])
    out += [masks for _, _, masks in predictor.propagate_in_video(state)]
    out.append(
        predictor.add_new_points_or_box(state, 3, 1, points=[[30, 20]], labels=[0], clear_old_points=False)[2]
    )
    out += [masks for _, _, masks in predictor.propagate_in_video(state, start_frame_idx=3, reverse=True)]
    return out


def test_export_tracks_as_the_pytorch_model(tiny_predictor, tiny_video_export, tiny_clip):
    """``VideoPredictor.from_export`` (onnxruntime) returns what the same predictor on our PyTorch
    model returns, call by call."""
    onnx_predictor = VideoPredictor.from_export(tiny_video_export)
    clip = tiny_clip[:4]
    for ours, reference in zip(script(onnx_predictor, clip), script(tiny_predictor, clip), strict=True):
        assert ours.shape == reference.shape and ours.dtype == np.float32
        assert np.max(np.abs(ours - reference) / (1 + np.abs(reference))) < 1e-4


def test_export_refuses_a_folder_without_video_graphs(tiny_video_export, tmp_path):
    import shutil

    from sam_onnx.errors import ModelLoadError

    partial = tmp_path / "onnx"
    shutil.copytree(tiny_video_export, partial)
    (partial / "memory_attention.onnx").unlink()
    with pytest.raises(ModelLoadError, match=r"memory_attention\.onnx.*--image-only"):
        VideoPredictor.from_export(partial)
