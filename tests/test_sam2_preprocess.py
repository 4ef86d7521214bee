"""SAM 2's torch-free preprocessing, coordinate transform and mask resize against torch and the kit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam_onnx.preprocess import resize_bilinear, resize_bilinear_antialias, sam2_coords_1024, sam2_preprocess

# (H, W) of inputs resized to 1024 x 1024: both directions on each axis, mixed, odd sizes.
AA_SIZES = [(480, 640), (77, 123), (1500, 2250), (3000, 1000), (1024, 1300), (2049, 1023)]
# Output sizes of the 256 x 256 mask resize: enlarging, shrinking (below 256), mixed.
MASK_SIZES = [(480, 640), (77, 123), (1500, 2250), (100, 300), (3000, 77)]


@pytest.fixture(scope="module")
def sam2_inputs(sam2_reference_dir):
    with np.load(sam2_reference_dir / "golden" / "sam2.1_hiera_t_seed0_inputs.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("image", ["landscape", "portrait", "small"])
def test_preprocess_reproduces_golden_input(sam2_golden, sam2_inputs, image):
    got = sam2_preprocess(sam2_golden[f"{image}/image"])
    expected = sam2_inputs[f"{image}/input_tensor"]
    assert got.shape == expected.shape == (1, 3, 1024, 1024) and got.dtype == np.float32
    assert float(np.abs(got - expected).max()) <= 1e-6


@pytest.mark.parametrize("hw", AA_SIZES, ids=[f"{h}x{w}" for h, w in AA_SIZES])
def test_antialiased_resize_matches_torch(hw):
    x = np.random.default_rng(hw[0] * 7 + hw[1]).random((3, *hw), dtype=np.float32)
    expected = F.interpolate(
        torch.from_numpy(x)[None], (1024, 1024), mode="bilinear", align_corners=False, antialias=True
    )[0].numpy()
    got = resize_bilinear_antialias(x, (1024, 1024))
    assert got.dtype == np.float32
    assert float(np.abs(got - expected).max()) <= 1e-6


def test_preprocess_of_a_large_image_matches_torch():
    """Shrinking (not exercised by the kit's images): the official pipeline computed with torch."""
    image = np.random.default_rng(1).integers(0, 256, (1300, 1700, 3), dtype=np.uint8)
    x = torch.from_numpy(image).permute(2, 0, 1).float().div(255)
    x = F.interpolate(x[None], (1024, 1024), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    expected = ((x - mean) / std).numpy()
    assert float(np.abs(sam2_preprocess(image) - expected).max()) <= 1e-6


@pytest.mark.parametrize("hw", MASK_SIZES, ids=[f"{h}x{w}" for h, w in MASK_SIZES])
def test_mask_resize_matches_torch(hw):
    logits = 10 * np.random.default_rng(hw[1]).standard_normal((3, 256, 256), dtype=np.float32)
    expected = F.interpolate(torch.from_numpy(logits)[None], hw, mode="bilinear", align_corners=False)[
        0
    ].numpy()
    got = resize_bilinear(logits, hw)
    assert got.shape == (3, *hw)
    # float32 rounding of values up to ~50 in magnitude
    assert float(np.abs(got - expected).max()) <= 1e-6 * float(np.abs(logits).max())


def test_coords_match_the_model_frame_prompts(sam2_golden):
    """Box corners then points, mapped as officially, equal the coordinates the official prompt
    encoder received, bit for bit (pixels, and 0..1 with ``normalized=True``)."""
    for img in sam2_golden["meta"]["images"]:
        hw = (img["height"], img["width"])
        for case in img["cases"]:
            corners = [] if case["box"] is None else [np.reshape(case["box"], (2, 2))]
            points = [] if case["points"] is None else [np.asarray(case["points"])]
            prompt = np.concatenate(corners + points)
            got = sam2_coords_1024(prompt, hw, normalized=not case["normalize_coords"])
            expected = sam2_golden[f"{img['name']}/{case['name']}/model_point_coords"][0]
            np.testing.assert_array_equal(got, expected, err_msg=f"{img['name']}/{case['name']}")
