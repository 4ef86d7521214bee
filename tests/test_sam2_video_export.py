"""SAM 2.1's video graphs (video_heads, video_mask_prompt, memory_attention, memory_encoder):
written by ``sam-export`` beside the image graphs, validated against our PyTorch ``Sam2Video``,
and, on the video kit (``../shared/sam_reference/sam2/video``), reproducing the official
predictor's recorded memory-attention outputs, heads, memories and mask prompt graph by graph.

The tiny variant's tests export only the decoders (the video graphs come with them) to stay
fast; the kit's run on the default export of its checkpoint (``hiera_t_video_export``, slow).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from sam_onnx.contract import VIDEO_FILES, VIDEO_GRAPHS
from sam_onnx.export import ExportOptions, export_sam
from sam_onnx.export.cli import build_parser
from sam_onnx.export.memory_attention_graph import MemoryAttentionGraph
from sam_onnx.export.onnx_file import trace_to_onnx
from sam_onnx.export.sam2_reference import SAM2_VALIDATION
from sam_onnx.export.validate import Validator, synthetic_image
from sam_onnx.export.video_validate import check_video_graph
from sam_onnx.modeling.build import build_sam2_video
from sam_onnx.modeling.sam2_checkpoint import load_sam2_video
from sam_onnx.modeling.sam2_video import round_to_bfloat16
from sam_onnx.video_memory import plan_memory
from tests.conftest import SAM2_VIDEO_GOLDEN, require_reference

ONNX_TYPES = {"tensor(float)": "float32", "tensor(int64)": "int64"}
IMAGE_GRAPHS = ("encoder", "decoder", "decoder_batched", "decoder_image", "decoder_click")


def session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def metadata(path) -> dict[str, str]:
    return session(path).get_modelmeta().custom_metadata_map


def run(path, **feeds) -> list[np.ndarray]:
    return session(path).run(None, {k: np.ascontiguousarray(v) for k, v in feeds.items()})


# --- the tiny variant -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_video():
    """The tiny video model, random weights moved off their init; the object-score head's last
    bias +2 (as the kit offsets its own) so that most objects are present and the heads' logits
    are not all -1024."""
    torch.manual_seed(0)
    model = build_sam2_video("hiera_tiny")
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(0.02 * torch.randn_like(tensor))
        for mlp in model.sam_mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(16.0)
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.add_(2.0)
    return model.eval()


@pytest.fixture(scope="module")
def tiny_video_checkpoint(tiny_video, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_video") / "sam2.1_hiera_tiny_video.pt"
    torch.save({"model": tiny_video.state_dict()}, path)
    return path


DECODERS_ONLY = {"encoder": False, "batched_decoder": False, "fast_decoder": False}


@pytest.fixture(scope="module")
def tiny_video_export(tiny_video_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_video_export") / "onnx"
    return export_sam(tiny_video_checkpoint, out, ExportOptions(**DECODERS_ONLY))


def test_export_writes_and_validates_the_video_graphs(tiny_video_export):
    report = tiny_video_export.report
    assert report.ok, report.failures
    assert tiny_video_export.manifest["video_graphs"] == "written"
    names = sorted(p.name for p in tiny_video_export.output_dir.iterdir())
    assert names == sorted(["decoder.onnx", "export.json", *VIDEO_FILES.values()])
    cases = {(c.graph, c.case) for c in report.checks if c.graph in VIDEO_FILES.values()}
    assert {case for graph, case in cases if graph == "memory_attention.onnx"} == {
        "frame1",
        "frame2",
        "frame2_no_pointer",
    }
    assert {case for graph, case in cases if graph == "video_heads.onnx"} == {
        "frame0_one_click",
        "frame0_two_points",
        "frame1_tracked",
        "frame1_correction",
    }
    assert {graph for graph, _ in cases} == set(VIDEO_FILES.values())


def test_video_graphs_declare_the_contract_and_metadata(tiny_video_export):
    sha = metadata(tiny_video_export.files["decoder"][0])["checkpoint_sha256"]
    for role, interface in VIDEO_GRAPHS.items():
        path = tiny_video_export.files[role][0]
        assert path.name == VIDEO_FILES[role]
        graph = session(path)
        assert [(i.name, ONNX_TYPES[i.type], len(i.shape)) for i in graph.get_inputs()] == [
            (t.name, t.dtype, len(t.shape)) for t in interface.inputs
        ]
        assert [o.name for o in graph.get_outputs()] == list(interface.output_names)
        meta = metadata(path)
        assert (meta["role"], meta["family"], meta["variant"]) == (role, "sam2", "hiera_tiny")
        assert meta["checkpoint_sha256"] == sha
        assert (meta["num_maskmem"], meta["max_obj_ptrs"], meta["mem_dim"]) == ("7", "16", "64")
        assert json.loads(meta["video_contract"])["inputs"] == list(interface.input_names)


def test_memory_attention_graph_runs_any_memory_and_pointer_count(tiny_video, tiny_video_export):
    """7 memories and 16 pointers for 1 object, 1 memory and no pointer for 3 objects: equal to
    PyTorch's memory selection inputs computed from lists (spatial_memory, pointer_memory)."""
    path = tiny_video_export.files["memory_attention"][0]
    gen = torch.Generator().manual_seed(3)
    embeddings = torch.randn(1, 256, 64, 64, generator=gen)
    for batch, slots, distances in ((1, list(range(7)), list(range(1, 17))), (3, [0], [])):
        memories = [torch.randn(batch, 64, 64, 64, generator=gen) for _ in slots]
        ptrs = torch.randn(batch, len(distances), 256, generator=gen)
        with torch.no_grad():
            memory, tpos = tiny_video.spatial_memory(memories, slots)
            tokens, pos = tiny_video.pointer_memory(ptrs, torch.tensor(distances), 15)
            raw = tiny_video.map_from_image_embeddings(embeddings).expand(batch, -1, -1, -1)
            want = tiny_video.condition_on_memory(raw, memory, tpos, tokens, pos).numpy()
        (got,) = run(
            path,
            image_embeddings=embeddings.numpy(),
            memory=memory.numpy(),
            memory_slots=np.array([slots] * batch, np.int64),
            obj_ptrs=ptrs.numpy(),
            obj_ptr_distances=np.array([distances] * batch, np.int64).reshape(batch, -1),
            obj_ptr_max_distance=np.array(15, np.int64),
        )
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())


def test_heads_graph_chooses_outputs_per_object_as_officially(tiny_video, tiny_video_export):
    """Batches of objects with the same number of points, each row equal to its own official
    call: two clicks and a box (the single-mask rule, pointer from token 0); a click and a tracked
    object (the no-prompt point), both multimask."""
    gen = torch.Generator().manual_seed(5)
    hr0, hr1 = torch.randn(1, 32, 256, 256, generator=gen), torch.randn(1, 64, 128, 128, generator=gen)
    batches = (
        (
            torch.tensor([[[300.0, 200.0], [50, 900]], [[100, 100], [800, 900]]]),
            [[1.0, 0.0], [2.0, 3.0]],
            False,
        ),
        (torch.tensor([[[640.0, 360.0]], [[0.0, 0.0]]]), [[1.0], [-1.0]], True),
    )
    present = []
    for coords, labels, multimask in batches:
        labels = torch.tensor(labels)
        pix_feat = torch.randn(2, 256, 64, 64, generator=gen)
        got = run(
            tiny_video_export.files["video_heads"][0],
            frame_embeddings=pix_feat.numpy(),
            high_res_feats_0=hr0.numpy(),
            high_res_feats_1=hr1.numpy(),
            point_coords=coords.numpy(),
            point_labels=labels.numpy(),
            mask_input=np.zeros((2, 1, 256, 256), np.float32),
            has_mask_input=np.zeros(2, np.float32),
        )
        present.append(got[3])
        for b in range(2):
            with torch.no_grad():
                args = (coords[b : b + 1], labels[b : b + 1].int())
                want = tiny_video.track_heads(pix_feat[b : b + 1], hr0, hr1, *args, multimask=multimask)
            for name, g, w in zip(VIDEO_GRAPHS["video_heads"].output_names, got, want, strict=True):
                tol = 1e-4 + 1e-5 * float(w.abs().max())
                np.testing.assert_allclose(g[b : b + 1], w.numpy(), rtol=0, atol=tol, err_msg=name)
    assert float(np.min(present)) > 0, "the offset object-score head should make every object present"


def test_validation_catches_a_memory_attention_weight_scaled_by_1_01(tiny_video, tmp_path):
    """A graph traced from weights with one value projection x1.01 fails the export's check
    against the unchanged model (logits compared, not masks)."""
    changed = build_sam2_video("hiera_tiny")
    changed.load_state_dict(tiny_video.state_dict())
    with torch.no_grad():
        changed.memory_attention.layers[0].cross_attn_image.v_proj.weight.mul_(1.01)
    path = tmp_path / "memory_attention.onnx"
    path.write_bytes(
        trace_to_onnx(
            MemoryAttentionGraph(changed.eval()), opset=17, scratch_dir=tmp_path
        ).SerializeToString()
    )
    images = {"frame": synthetic_image((240, 320), seed=1)}
    for model, ok in ((tiny_video, False), (changed.eval(), True)):
        validator = Validator(model, SAM2_VALIDATION, images)
        check_video_graph(validator, path.name, path, MemoryAttentionGraph(model))
        assert validator.report.ok is ok, validator.report.failures


def test_image_only_writes_no_video_graph(tiny_video_checkpoint, sam2_tiny_checkpoint, tmp_path):
    """--image-only, and a checkpoint without the video modules: the image graphs alone, and
    export.json says why; the decoder is the same file either way."""
    options = ExportOptions(**DECODERS_ONLY, validate=False)
    full = export_sam(tiny_video_checkpoint, tmp_path / "full", options)
    only = export_sam(
        tiny_video_checkpoint,
        tmp_path / "only",
        ExportOptions(**DECODERS_ONLY, image_only=True, validate=False),
    )
    image = export_sam(sam2_tiny_checkpoint, tmp_path / "image", options)
    assert only.manifest["video_graphs"] == "skipped: --image-only"
    assert image.manifest["video_graphs"].startswith("skipped: the checkpoint has no video modules")
    for result in (only, image):
        assert sorted(p.name for p in result.output_dir.iterdir()) == ["decoder.onnx", "export.json"]
    assert full.files["decoder"][0].read_bytes() == only.files["decoder"][0].read_bytes()
    assert build_parser().parse_args(["ckpt.pt", "-o", "out", "--image-only"]).image_only


def test_no_mem_embed_subtraction_is_within_float32_rounding(tiny_video):
    """The video graphs read the neck's map as image_embeddings - no_mem_embed: within two
    roundings (half a float32 step of the sum, then of the difference) of the map itself."""
    gen = torch.Generator().manual_seed(0)
    raw = torch.randn(1, 256, 64, 64, generator=gen) * 3
    embeddings = tiny_video.init_cond_features(raw)
    with torch.no_grad():
        back = tiny_video.map_from_image_embeddings(embeddings)
    bound = (embeddings.abs() + raw.abs()) * 2.0**-24
    assert bool(torch.all((back - raw).abs() <= bound))


@pytest.mark.slow
def test_image_graphs_are_byte_identical_with_and_without_the_video_graphs(tiny_video_checkpoint, tmp_path):
    """The image graphs of a default export (traced from the video model) are the files of an
    --image-only export (traced from the image model)."""
    full = export_sam(tiny_video_checkpoint, tmp_path / "full", ExportOptions(validate=False))
    only = export_sam(
        tiny_video_checkpoint, tmp_path / "only", ExportOptions(image_only=True, validate=False)
    )
    assert set(full.files) == set(IMAGE_GRAPHS) | set(VIDEO_FILES)
    for key in IMAGE_GRAPHS:
        digests = [hashlib.sha256(r.files[key][0].read_bytes()).hexdigest() for r in (full, only)]
        assert digests[0] == digests[1], key


# --- the video kit ----------------------------------------------------------------------------------

SCENARIO = "clip_a/two_objects"
STORED = f"{SCENARIO}/2"  # the state after the propagation
NUM_FRAMES = 8
VIDEO_SIZE_WH = (480, 270)
# (memattn index, frame, object, conditioning frames, other stored frames at that call)
MEMATTN_CALLS = ((0, 0, 2, [2], []), (1, 1, 1, [0], []), (2, 1, 2, [2], [0]))
MEMATTN_TOL = 1e-3  # of the output's scale: the yardstick
LOGIT_TOL = 1e-4  # of the logits' scale
PTR_TOL = 1e-5
HOLE_FILLED = 0.1  # the official fill_holes_in_mask_scores value
HEAD_FRAMES = [(1, 0), (2, 2), (2, 0), (1, 1), (2, 1)]  # (object, frame): 2 prompted, 3 tracked


@pytest.fixture(scope="module")
def video_dir():
    return require_reference(SAM2_VIDEO_GOLDEN) / "sam2" / "video"


@pytest.fixture(scope="module")
def kit(video_dir):
    with np.load(video_dir / "sam2.1_hiera_t_seed0_video.npz") as z:
        prefixes = (STORED, f"{SCENARIO}/memattn", "clip_a/mask_reverse/1/obj3/f7", "clip_a/mask_prompt")
        data = {k: z[k] for k in z.files if k.startswith(prefixes) or k.startswith("clip_a/mask_reverse/0")}
        data["meta"] = json.loads(bytes(z["meta_json"]))
    return data


def read_frame(video_dir, index: int) -> np.ndarray:
    """A clip frame as the official video loader reads it (Pillow's bicubic resize to 1024,
    / 255, mean / std): ``1 x 3 x 1024 x 1024`` float32."""
    from PIL import Image

    from sam_onnx.variants import SAM2_PIXEL_MEAN, SAM2_PIXEL_STD

    path = video_dir / "clips" / "clip_a" / f"{index:05d}.jpg"
    x = np.asarray(Image.open(path).convert("RGB").resize((1024, 1024)), dtype=np.float32) / 255.0
    x = (x - np.array(SAM2_PIXEL_MEAN, np.float32)) / np.array(SAM2_PIXEL_STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))[None]


@pytest.fixture(scope="module")
def kit_frames(hiera_t_video_export, video_dir):
    """encoder.onnx's outputs for frames 0, 1, 2 and 7: image_embeddings, high_res_feats_0/1."""
    encoder = session(hiera_t_video_export.files["encoder"][0])
    return {i: encoder.run(None, {"image": read_frame(video_dir, i)}) for i in (0, 1, 2, 7)}


def graph(export, role):
    return session(export.files[role][0])


def stored(kit, obj: int, frame: int, name: str) -> np.ndarray:
    return kit[f"{STORED}/obj{obj}/f{frame}/{name}"]


def stored_memory(kit, obj: int, frame: int) -> np.ndarray:
    """The stored bfloat16 memory as float32 values, ``64 x 64 x 64``."""
    return (kit[f"{STORED}/obj{obj}/f{frame}/maskmem_bf16"].astype(np.uint32) << 16).view(np.float32)


def memattn_feed(kit, kit_frames, index: int) -> dict[str, np.ndarray]:
    """memory_attention's feed for recorded call ``index``: the stored memories and pointers the
    official memory selection (plan_memory) picks."""
    _, frame, obj, cond, tracked = MEMATTN_CALLS[index]
    plan = plan_memory(frame, cond, tracked, NUM_FRAMES)
    ptrs = [stored(kit, obj, f, "obj_ptr") for f, _ in plan.pointers]
    return {
        "image_embeddings": kit_frames[frame][0],
        "memory": np.stack([stored_memory(kit, obj, f) for f, _ in plan.spatial])[None],
        "memory_slots": np.array([[t for _, t in plan.spatial]], np.int64),
        "obj_ptrs": (np.stack(ptrs) if ptrs else np.zeros((0, 256), np.float32))[None],
        "obj_ptr_distances": np.array([[d for _, d in plan.pointers]], np.int64).reshape(1, -1),
        "obj_ptr_max_distance": np.array(plan.max_distance, np.int64),
    }


def relative_error(ours: np.ndarray, golden: np.ndarray) -> float:
    return float(np.abs(ours - golden).max() / np.abs(golden).max())


@pytest.mark.slow
def test_kit_export_validates_and_reports_sizes(hiera_t_video_export):
    report = hiera_t_video_export.report
    assert report.ok, report.failures
    graphs = hiera_t_video_export.manifest["graphs"]
    sizes = {key: graphs[key]["bytes"] for key in VIDEO_FILES}
    timings = {
        k: v for k, v in hiera_t_video_export.manifest["timings_s"].items() if "video" in k or "memory" in k
    }
    print("video graphs' bytes:", sizes, "timings (s):", timings)
    worst = {}
    for c in report.checks:
        if c.graph in VIDEO_FILES.values():
            worst[f"{c.graph}:{c.output}"] = max(worst.get(f"{c.graph}:{c.output}", 0.0), c.max_abs)
    print("video validation max abs:", {k: f"{v:.3g}" for k, v in worst.items()})


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1, 2])
def test_memory_attention_graph_reproduces_the_recorded_calls(hiera_t_video_export, kit, kit_frames, index):
    (got,) = graph(hiera_t_video_export, "memory_attention").run(None, memattn_feed(kit, kit_frames, index))
    error = relative_error(got, kit[f"{SCENARIO}/memattn/{index}"])
    print(f"memattn/{index}: max abs diff {error:.2e} of the scale")
    assert error < MEMATTN_TOL


@pytest.mark.slow
def test_memory_attention_weight_scaled_by_1_01_fails_the_recorded_call(
    sam2_video_checkpoint, kit, kit_frames, tmp_path
):
    """The same graph traced from weights with one value projection x1.01 moves memattn/2 by more
    than twice the tolerance (the logits compared, not masks)."""
    model = load_sam2_video(sam2_video_checkpoint)
    with torch.no_grad():
        model.memory_attention.layers[2].cross_attn_image.v_proj.weight.mul_(1.01)
    proto = trace_to_onnx(MemoryAttentionGraph(model), opset=17, scratch_dir=tmp_path)
    changed = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = changed.run(None, memattn_feed(kit, kit_frames, 2))
    error = relative_error(got, kit[f"{SCENARIO}/memattn/2"])
    print(f"memattn/2 with one weight x1.01: {error:.2e} of the scale")
    assert error > 2 * MEMATTN_TOL


def heads_feed(kit, kit_frames, obj: int, frame: int) -> dict[str, np.ndarray]:
    """video_heads' feed for a stored frame: the prompt and image_embeddings on the prompted
    frames, the recorded memory-conditioned features and the padding point on tracked ones."""
    embeddings, hr0, hr1 = kit_frames[frame]
    width, height = VIDEO_SIZE_WH
    if (obj, frame) in ((1, 0), (2, 2)):
        step = kit["meta"]["clips"][0]["scenarios"][0]["steps"][obj - 1]
        if "box" in step:
            coords, labels = np.array(step["box"], np.float32).reshape(1, 2, 2), np.array([[2.0, 3.0]])
        else:
            coords, labels = np.array([step["points"]], np.float32), np.array([step["labels"]], np.float32)
        coords = coords / np.array([width, height], np.float32) * 1024
        pix_feat = embeddings
    else:
        index = next(i for i, f, o, *_ in MEMATTN_CALLS if (o, f) == (obj, frame))
        coords, labels = np.zeros((1, 1, 2), np.float32), -np.ones((1, 1), np.float32)
        pix_feat = kit[f"{SCENARIO}/memattn/{index}"]
    return {
        "frame_embeddings": pix_feat,
        "high_res_feats_0": hr0,
        "high_res_feats_1": hr1,
        "point_coords": coords.astype(np.float32),
        "point_labels": labels.astype(np.float32),
        "mask_input": np.zeros((1, 1, 256, 256), np.float32),
        "has_mask_input": np.zeros(1, np.float32),
    }


@pytest.mark.slow
@pytest.mark.parametrize(("obj", "frame"), HEAD_FRAMES)
def test_heads_graph_reproduces_stored_logits_pointer_and_score(
    hiera_t_video_export, kit, kit_frames, obj, frame
):
    """Low-res logits within 1e-4 of their scale wherever hole filling left them (every other
    difference is a filled hole: stored 0.1 where ours is <= 0), pointer and score within 1e-5."""
    logits, _, obj_ptr, score = graph(hiera_t_video_export, "video_heads").run(
        None, heads_feed(kit, kit_frames, obj, frame)
    )
    golden = stored(kit, obj, frame, "pred_masks")
    far = np.abs(logits[0, 0] - golden) > LOGIT_TOL * np.abs(golden).max()
    assert np.all(golden[far] == HOLE_FILLED) and np.all(logits[0, 0][far] <= 0)
    assert far.sum() < 0.02 * golden.size
    np.testing.assert_allclose(obj_ptr[0], stored(kit, obj, frame, "obj_ptr"), rtol=0, atol=PTR_TOL)
    np.testing.assert_allclose(score[0], stored(kit, obj, frame, "object_score_logits"), rtol=0, atol=PTR_TOL)


@pytest.mark.slow
@pytest.mark.parametrize(("obj", "frame"), HEAD_FRAMES)
def test_memory_encoder_graph_reproduces_stored_memories(hiera_t_video_export, kit, kit_frames, obj, frame):
    """Prompted frames: the stored logits binarised; tracked frames: the heads graph's logits
    through the sigmoid. Rounded to bfloat16 (as the runtime stores them), each value is the
    stored one or its neighbour (ties of float32 rounding), almost all equal."""
    prompted = bool(kit[f"{STORED}/obj{obj}/f{frame}/is_cond"])
    if prompted:
        logits = stored(kit, obj, frame, "pred_masks")[None, None]
        score = stored(kit, obj, frame, "object_score_logits")[None]
    else:
        logits, _, _, score = graph(hiera_t_video_export, "video_heads").run(
            None, heads_feed(kit, kit_frames, obj, frame)
        )
    (memory,) = graph(hiera_t_video_export, "memory_encoder").run(
        None,
        {
            "image_embeddings": kit_frames[frame][0],
            "low_res_logits": logits,
            "object_score_logits": score,
            "binarize": np.array([float(prompted)], np.float32),
        },
    )
    golden = stored_memory(kit, obj, frame)
    rounded = round_to_bfloat16(torch.from_numpy(memory[0])).numpy()
    step = np.exp2(np.floor(np.log2(np.maximum(np.abs(golden), 1e-30))) - 7)
    assert np.all(np.abs(rounded - golden) <= np.maximum(step, 1e-5 * np.abs(golden).max()))
    unequal = float((rounded != golden).mean())
    print(f"obj {obj} frame {frame}: {unequal:.2e} of the bfloat16 values one step off")
    assert unequal < 2e-3


@pytest.mark.slow
def test_mask_prompt_graph_reproduces_the_recorded_mask_prompt(hiera_t_video_export, kit, kit_frames):
    """mask_reverse: add_new_mask on frame 7 for object 3; the stored logits, pointer and score
    after the propagation are the mask prompt's."""
    packed = kit["clip_a/mask_reverse/0/mask_prompt_packed"]
    width, height = VIDEO_SIZE_WH
    mask = np.unpackbits(packed, axis=-1)[:, :width].astype(np.float32)
    assert mask.shape == (height, width)
    logits, obj_ptr, score = graph(hiera_t_video_export, "video_mask_prompt").run(
        None, {"image_embeddings": kit_frames[7][0], "mask": mask[None]}
    )
    base = "clip_a/mask_reverse/1/obj3/f7"
    golden = kit[f"{base}/pred_masks"]
    print("mask prompt logits max abs diff:", float(np.abs(logits[0, 0] - golden).max()))
    np.testing.assert_allclose(logits[0, 0], golden, rtol=0, atol=1e-4 * np.abs(golden).max())
    np.testing.assert_allclose(obj_ptr[0], kit[f"{base}/obj_ptr"], rtol=0, atol=PTR_TOL)
    np.testing.assert_array_equal(score[0], kit[f"{base}/object_score_logits"])


@pytest.mark.slow
def test_no_mem_embed_subtraction_on_the_kit_frame(sam2_video_checkpoint, kit_frames, video_dir):
    """encoder.onnx's image_embeddings minus no_mem_embed against the map of our PyTorch encoder:
    the rounding the video graphs add by reusing the image encoder (printed)."""
    model = load_sam2_video(sam2_video_checkpoint)
    with torch.no_grad():
        raw = model.encode_frame(torch.from_numpy(read_frame(video_dir, 0))).vision_features.numpy()
        back = model.map_from_image_embeddings(torch.from_numpy(kit_frames[0][0])).numpy()
        torch_sum = model.init_cond_features(torch.from_numpy(raw))
        torch_back = model.map_from_image_embeddings(torch_sum).numpy()
    print(
        f"subtraction alone: {np.abs(torch_back - raw).max():.2e}, "
        f"with the encoder graph: {np.abs(back - raw).max():.2e} (map scale {np.abs(raw).max():.3g})"
    )
    assert np.abs(torch_back - raw).max() <= np.abs(raw).max() * 2.0**-23
    assert np.abs(back - raw).max() <= 1e-3 + 1e-4 * np.abs(raw).max()  # the encoder's tolerance
