"""SAM 2.1's video modules without the reference kit: the tiny variant with random weights against
the official formulation written out here (one concatenated memory, complex rotary encoding,
``num_k_exclude_rope``), any number of memories and pointers, the flags as tensors, ONNX tracing
with dynamic memory and pointer counts, and checkpoint loading in both layouts."""

from __future__ import annotations

import io
import json
import math
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from sam_onnx.errors import InvalidInputError, NotSamCheckpointError
from sam_onnx.modeling.build import build_sam2, build_sam2_video
from sam_onnx.modeling.hf_sam2_layout import official_to_hf_sam2
from sam_onnx.modeling.position_encoding import axial_rope_tables, sine_1d_encoding, sine_grid_encoding
from sam_onnx.modeling.sam2 import Sam2
from sam_onnx.modeling.sam2_checkpoint import load_sam2, load_sam2_video
from sam_onnx.modeling.sam2_video import NO_OBJECT_LOGIT, Sam2Video
from sam_onnx.variants import OFFICIAL_SAM2_VARIANTS
from sam_onnx.video_memory import plan_memory
from tests.conftest import require_reference

TINY = "hiera_tiny"


@pytest.fixture(scope="module")
def tiny() -> Sam2Video:
    """The tiny video model with deterministic random weights (every tensor moved off its init)."""
    torch.manual_seed(0)
    model = build_sam2_video(TINY)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            tensor.add_((0.05 if "memory" in name or "obj" in name else 0.02) * torch.randn_like(tensor))
    return model


def official_memory_attention(model: Sam2Video, image, memory_tokens, memory_pos, ptr_tokens, ptr_pos):
    """The official computation on the official layout: memories and pointer tokens concatenated,
    complex rotary encoding of queries and of all keys but the last ``num_k_exclude_rope``, the key
    table repeated per memory. ``memory_*`` ``B x (M*4096) x C``; returns ``B x 256 x 64 x 64``."""
    ma = model.memory_attention
    b, c, h, w = image.shape
    head_dim = c // ma.layers[0].self_attn.num_heads
    freqs = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 4)[: head_dim // 4].float() / head_dim))
    t = torch.arange(h * w, dtype=torch.float32)
    angles = torch.cat(
        [torch.outer(t % w, freqs), torch.outer(torch.div(t, w, rounding_mode="floor"), freqs)], -1
    )
    cis = torch.polar(torch.ones_like(angles), angles)

    def rope(x):  # B x heads x N x d, N a multiple of 4096
        xc = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(xc * cis.repeat(x.shape[2] // (h * w), 1)).flatten(3)

    def attend(attn, q, k, v, exclude):
        heads = attn.num_heads

        def split(x):
            return x.reshape(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)

        q, k, v = split(attn.q_proj(q)), split(attn.k_proj(k)), split(attn.v_proj(v))
        n_rope = k.shape[2] - exclude
        k = torch.cat([rope(k[:, :, :n_rope]) if n_rope else k[:, :, :0], k[:, :, n_rope:]], dim=2)
        out = F.scaled_dot_product_attention(rope(q), k, v)
        return attn.out_proj(out.transpose(1, 2).flatten(2))

    memory = torch.cat([memory_tokens, ptr_tokens], dim=1)
    pos = torch.cat([memory_pos, ptr_pos], dim=1)
    x = image.flatten(2).transpose(1, 2) + 0.1 * sine_grid_encoding(c, h, w).flatten(2).transpose(1, 2)
    for layer in ma.layers:
        y = layer.norm1(x)
        x = x + attend(layer.self_attn, y, y, y, 0)
        x = x + attend(layer.cross_attn_image, layer.norm2(x), memory + pos, memory, ptr_tokens.shape[1])
        x = x + layer.linear2(torch.relu(layer.linear1(layer.norm3(x))))
    return ma.norm(x).transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize(("num_memories", "num_pointers"), [(0, 1), (1, 0), (1, 1), (3, 2), (3, 16), (0, 16)])
def test_memory_attention_equals_the_official_formulation(tiny, num_memories, num_pointers):
    gen = torch.Generator().manual_seed(num_memories * 100 + num_pointers)
    image = torch.randn(1, 256, 64, 64, generator=gen)
    features = [torch.randn(1, 64, 64, 64, generator=gen) for _ in range(num_memories)]
    t_pos = list(range(num_memories))
    ptrs = torch.randn(1, num_pointers, 256, generator=gen)
    distances = torch.arange(1, num_pointers + 1)
    with torch.no_grad():
        memory, tpos = tiny.spatial_memory(features, t_pos)
        ptr_tokens, ptr_pos = tiny.pointer_memory(ptrs, distances, 15)
        ours = tiny.condition_on_memory(image, memory, tpos, ptr_tokens, ptr_pos)
        # official layout: each memory's tokens row-major, position = sine grid + its tpos row
        sine = sine_grid_encoding(64, 64, 64).flatten(2).transpose(1, 2)
        tokens = [f.flatten(2).transpose(1, 2) for f in features]
        pos = [sine + tiny.maskmem_tpos_enc[6 - slot].reshape(1, 1, -1) for slot in t_pos]
        empty = torch.zeros(1, 0, 64)
        official = official_memory_attention(
            tiny, image, torch.cat([empty, *tokens], 1), torch.cat([empty, *pos], 1), ptr_tokens, ptr_pos
        )
    assert ours.shape == (1, 256, 64, 64)
    # float32 rounding in another order (outputs of about unit scale); a wrong rotation, order or
    # position moves them by O(1)
    torch.testing.assert_close(ours, official, rtol=0, atol=2e-4)


def test_pointer_memory_splits_as_officially(tiny):
    """Official: ``P x B x 256`` -> ``P x B x 4 x 64`` -> ``(P*4) x B x 64``; the position of a
    pointer is ``obj_ptr_tpos_proj(sine_1d(distance / max_distance, 256))``, once per token."""
    ptrs = torch.randn(2, 3, 256)  # B x P x C
    distances = torch.tensor([1, 4, 7])
    with torch.no_grad():
        tokens, pos = tiny.pointer_memory(ptrs, distances, 7)
        official = ptrs.transpose(0, 1).reshape(3, 2, 4, 64).permute(0, 2, 1, 3).flatten(0, 1).transpose(0, 1)
        official_pos = tiny.obj_ptr_tpos_proj(sine_1d_encoding(distances / 7, 256)).repeat_interleave(
            4, dim=0
        )
    torch.testing.assert_close(tokens, official, rtol=0, atol=0)
    torch.testing.assert_close(pos, official_pos[None].expand(2, -1, -1), rtol=0, atol=0)


def test_fixed_encodings_equal_the_official_formulas():
    """The neck's ``PositionEmbeddingSine`` (bit for bit) and ``compute_axial_cis`` (``torch.polar``
    rounds its cos / sin differently by a float32 step or so) as written officially."""
    dim_t = 10000 ** (2 * (torch.arange(32, dtype=torch.float32) // 2) / 32)
    y = torch.arange(1, 65, dtype=torch.float32).view(1, -1, 1).repeat(1, 1, 64)
    x = torch.arange(1, 65, dtype=torch.float32).view(1, 1, -1).repeat(1, 64, 1)
    y, x = y / (y[:, -1:, :] + 1e-6) * (2 * math.pi), x / (x[:, :, -1:] + 1e-6) * (2 * math.pi)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    assert torch.equal(sine_grid_encoding(64, 64, 64), torch.cat((py, px), dim=3).permute(0, 3, 1, 2))
    cos, sin = axial_rope_tables(256, 64, 64, 10000.0)
    freqs = 1.0 / (10000.0 ** (torch.arange(0, 256, 4)[:64].float() / 256))
    t = torch.arange(4096, dtype=torch.float32)
    angles = torch.cat(
        [torch.outer(t % 64, freqs), torch.outer(torch.div(t, 64, rounding_mode="floor"), freqs)], -1
    )
    cis = torch.polar(torch.ones_like(angles), angles)
    torch.testing.assert_close(cos, cis.real, rtol=0, atol=3e-7)
    torch.testing.assert_close(sin, cis.imag, rtol=0, atol=3e-7)


def frame(tiny, seed: int):
    with torch.no_grad():
        return tiny.encode_frame(torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(seed)))


def test_heads_flags_as_tensors_select_as_the_python_flags(tiny):
    features = frame(tiny, 1)
    pix = tiny.init_cond_features(features.vision_features)
    coords, labels = torch.tensor([[[300.0, 400.0]]]), torch.tensor([[1]], dtype=torch.int32)
    with torch.no_grad():
        for multimask in (True, False):
            plain = tiny.track_heads(pix, *features[1:], coords, labels, multimask=multimask)
            traced = tiny.track_heads(pix, *features[1:], coords, labels, multimask=torch.tensor(multimask))
            for a, b in zip(plain, traced, strict=True):
                assert torch.equal(a, b)
            assert plain.low_res_masks.shape == (1, 1, 256, 256) and plain.obj_ptr.shape == (1, 256)
        for binarize in (True, False):
            a = tiny.encode_memory(
                features.vision_features, plain.low_res_masks, plain.object_score_logits, binarize=binarize
            )
            b = tiny.encode_memory(
                features.vision_features,
                plain.low_res_masks,
                plain.object_score_logits,
                binarize=torch.tensor(binarize),
            )
            assert torch.equal(a, b) and a.shape == (1, 64, 64, 64)


def test_absent_object_gates_masks_pointer_and_memory(tiny):
    """Object score <= 0: logits -1024, pointer ``no_obj_ptr``, memory + ``no_obj_embed_spatial``."""
    features = frame(tiny, 2)
    bias = tiny.sam_mask_decoder.pred_obj_score_head.layers[-1].bias
    coords, labels = torch.zeros(1, 1, 2), -torch.ones(1, 1, dtype=torch.int32)
    with torch.no_grad():
        saved = bias.clone()
        try:
            bias.fill_(-1e4)
            out = tiny.track_heads(features.vision_features, *features[1:], coords, labels, multimask=True)
        finally:
            bias.copy_(saved)
        assert bool(torch.all(out.low_res_masks == NO_OBJECT_LOGIT))
        torch.testing.assert_close(out.obj_ptr, tiny.no_obj_ptr, rtol=0, atol=0)
        absent = tiny.encode_memory(
            features.vision_features, out.low_res_masks, torch.tensor([[-1.0]]), binarize=False
        )
        present = tiny.encode_memory(
            features.vision_features, out.low_res_masks, torch.tensor([[1.0]]), binarize=False
        )
        torch.testing.assert_close(
            absent - present, tiny.no_obj_embed_spatial[:, :, None, None].expand_as(absent)
        )


def test_mask_prompt_as_output(tiny):
    """An empty mask: score -10 and ``no_obj_ptr``; a mask with pixels: score +10, logits +-10."""
    features = frame(tiny, 3)
    empty = torch.zeros(1, 1, 1024, 1024)
    square = empty.clone()
    square[..., 256:768, 256:768] = 1
    with torch.no_grad():
        absent, present = tiny.mask_as_output(features, empty), tiny.mask_as_output(features, square)
    assert absent.object_score_logits.item() == -10.0 and present.object_score_logits.item() == 10.0
    torch.testing.assert_close(absent.obj_ptr, tiny.no_obj_ptr, rtol=0, atol=0)
    assert present.low_res_masks.shape == (1, 1, 256, 256)
    assert present.low_res_masks[0, 0, 128, 128].item() == pytest.approx(10.0)
    assert present.low_res_masks[0, 0, 10, 10].item() == pytest.approx(-10.0)
    assert torch.equal(present.ious, torch.ones(1, 1))


def test_memory_attention_traces_to_onnx_with_dynamic_memories_and_pointers(tiny, tmp_path):
    """Traced with 1 memory and 2 pointers; onnxruntime runs 3 memories and 16 pointers, and 1
    memory without pointers, as PyTorch does. No complex tensors, no frozen counts."""
    names = ["image_features", "memory", "memory_tpos", "ptr_tokens", "ptr_pos"]

    def feeds(m: int, p: int, seed: int):
        gen = torch.Generator().manual_seed(seed)
        shapes = [(1, 256, 64, 64), (1, m, 64, 64, 64), (1, m, 64), (1, 4 * p, 64), (1, 4 * p, 64)]
        return [torch.randn(*s, generator=gen) for s in shapes]

    axes = {"memory": {1: "memories"}, "memory_tpos": {1: "memories"}, "ptr_tokens": {1: "tokens"}}
    axes["ptr_pos"] = {1: "tokens"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("error", torch.jit.TracerWarning)
        torch.onnx.export(
            tiny.memory_attention, tuple(feeds(1, 2, 0)), buffer, input_names=names, output_names=["out"],
            dynamic_axes=axes, opset_version=17, dynamo=False,
        )  # fmt: skip
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    for m, p in ((3, 16), (1, 0)):
        inputs = feeds(m, p, m + p)
        with torch.no_grad():
            expected = tiny.memory_attention(*inputs).numpy()
        (got,) = session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3)


# --- loading ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", OFFICIAL_SAM2_VARIANTS)
def test_video_model_has_every_official_tensor(variant):
    """Names and shapes of the whole official checkpoint (image path and video modules)."""
    manifest_dir = require_reference("sam2/manifests/sam2.1_hiera_t.json") / "sam2" / "manifests"
    expected = json.loads((manifest_dir / f"sam2.1_{variant}.json").read_text())["tensors"]
    with torch.device("meta"):
        model = build_sam2_video(variant)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == expected


def test_official_and_hf_layouts_load_the_same_video_model(tiny, tmp_path):
    official = tmp_path / "tiny_video.pt"
    torch.save({"model": tiny.state_dict()}, official)
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    save_file(
        {k: v.contiguous() for k, v in official_to_hf_sam2(tiny.state_dict()).items()},
        hf_dir / "model.safetensors",
    )
    (hf_dir / "config.json").write_text(json.dumps({"model_type": "sam2_video"}))
    for path, layout in ((official, "official"), (hf_dir, "hf")):
        model = load_sam2_video(path)
        assert (model.load_report.layout, model.load_report.variant, model.load_report.ignored) == (
            layout,
            TINY,
            (),
        )
        for key, value in tiny.state_dict().items():
            assert torch.equal(model.state_dict()[key], value), key
    image_only = load_sam2(hf_dir)  # the image loader still sets the video tensors aside
    assert type(image_only) is Sam2 and len(image_only.load_report.ignored) == len(
        set(tiny.state_dict()) - set(image_only.state_dict())
    )


def test_image_only_checkpoint_is_refused_by_the_video_loader(tmp_path):
    path = tmp_path / "image_only.pt"
    torch.save({"model": build_sam2(TINY).state_dict()}, path)
    with pytest.raises(NotSamCheckpointError, match="missing keys") as info:
        load_sam2_video(path)
    assert str(path) in str(info.value) and "memory_attention" in str(info.value)


def test_bad_memory_inputs_raise_typed_errors(tiny):
    memory = torch.zeros(1, 64, 64, 64)
    with pytest.raises(InvalidInputError, match="t_pos"):
        tiny.spatial_memory([memory], [7])
    with pytest.raises(InvalidInputError, match="t_pos"):
        tiny.spatial_memory([memory, memory], [0])
    with pytest.raises(InvalidInputError, match="pointer distances"):
        tiny.pointer_memory(torch.zeros(1, 2, 256), torch.tensor([1]), 7)
    with pytest.raises(InvalidInputError, match="pointer distances"):
        tiny.pointer_memory(torch.zeros(1, 1, 256), torch.tensor([1]), 0)
    nothing = tiny.spatial_memory([], []) + tiny.pointer_memory(torch.zeros(1, 0, 256), torch.zeros(0), 7)
    with pytest.raises(InvalidInputError, match="at least one spatial memory"):
        tiny.condition_on_memory(torch.zeros(1, 256, 64, 64), *nothing)
    for frame, cond, frames in ((8, [0], 8), (-1, [0], 8), (1, [], 8), (0, [0], 1)):
        with pytest.raises(InvalidInputError):
            plan_memory(frame, cond, set(), frames)
