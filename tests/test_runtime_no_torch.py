"""The runtime runs without torch: in fresh interpreters, one where torch cannot even be imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image

from tests.conftest import REPO

PREDICT = """
import sys
import numpy as np
from sam_onnx.runtime import SamPredictor

predictor = SamPredictor.from_export(sys.argv[1])
predictor.set_image(sys.argv[2])
pred = predictor.predict(point_coords=np.array([[20, 10]]), point_labels=np.array([1]))
np.save(sys.argv[3], pred.masks)
assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
print("torch-free")
"""
# Make `import torch` fail outright (a None entry in sys.modules raises ImportError on import).
BLOCK_TORCH = "import sys; sys.modules['torch'] = None\n"


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_predict_imports_no_torch(tiny_export, tmp_path):
    image = tmp_path / "image.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), np.uint8)).save(image)
    result = run_python(PREDICT, tiny_export.output_dir, image, tmp_path / "masks.npy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "torch-free"
    assert np.load(tmp_path / "masks.npy").shape == (3, 40, 60)


def test_cli_predict_with_torch_unimportable(tiny_export, tmp_path):
    image = tmp_path / "image.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 30, 3), np.uint8)).save(image)
    out = tmp_path / "out"
    code = BLOCK_TORCH + "from sam_onnx.runtime.cli import main; sys.exit(main(sys.argv[1:]))"
    result = run_python(code, "predict", image, "-m", tiny_export.output_dir, "--point", "10,20", "-o", out)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == {"image_mask.png", "image_overlay.png", "image.json"}
    assert json.loads((out / "image.json").read_text())["size_hw"] == [50, 30]


def test_blocking_torch_is_effective():
    """The guard itself: with the block in place, importing torch fails (so the test above means it)."""
    result = run_python(BLOCK_TORCH + "import torch")
    assert result.returncode != 0 and "ModuleNotFoundError: import of torch halted" in result.stderr


def test_every_runtime_module_imports_with_torch_unimportable():
    """serve, bundle, amg ... too: the whole runtime package, every room, module by module."""
    code = BLOCK_TORCH + textwrap.dedent("""
        import importlib, pkgutil
        import sam_onnx.runtime as runtime
        found = pkgutil.walk_packages(runtime.__path__, "sam_onnx.runtime.")
        modules = [m.name for m in found if not m.ispkg and m.name != "sam_onnx.runtime._moved"]
        for module in modules:
            importlib.import_module(module)
        names = [m.rsplit(".", 1)[1] for m in modules]
        video = {"frames", "state", "predictor", "holes", "bfloat16", "model", "graphs"}
        video_found = {m.rsplit(".", 1)[1] for m in modules if m.startswith("sam_onnx.runtime.video.")}
        print(len(names), "serve" in names and "bundle" in names, video <= video_found)
    """)
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    count, has_web, has_video = result.stdout.split()
    assert int(count) >= 22 and has_web == "True" and has_video == "True"


def test_distributed_module_imports_without_torch_and_without_ray():
    """The Ray engine's module imports with torch and ray both unimportable, and imports neither."""
    code = "import sys; sys.modules['torch'] = None; sys.modules['ray'] = None\n" + textwrap.dedent("""
        import sam_onnx.runtime.batch.distributed as distributed
        import sam_onnx.runtime.batch.jobs
        loaded = [m for m, mod in sys.modules.items() if m.split('.')[0] in ('torch', 'ray') and mod]
        print(callable(distributed.run_job), len(loaded))
    """)
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "0"]


SAM2_PATHS = (
    BLOCK_TORCH
    + """
import json
import numpy as np
from sam_onnx.runtime import SamPredictor
from sam_onnx.runtime.amg import AutomaticMaskGenerator
from sam_onnx.runtime.core.embedding import ImageEmbedding

predictor = SamPredictor.from_export(sys.argv[1])
emb = predictor.set_image(sys.argv[2])
point, box = np.array([[20, 10]]), np.array([2, 3, 30, 25])
single = predictor.predict(point_coords=point, point_labels=np.array([1]), multimask_output=False)
multi = predictor.predict(box=box, mask_input=single.low_res_logits)
emb.save(sys.argv[3])
again = predictor.predict(box=box, embedding=ImageEmbedding.load(sys.argv[3], family="sam2"))
generator = AutomaticMaskGenerator(predictor, points_per_side=2, pred_iou_thresh=0.0, use_m2m=True)
anns = generator.generate(sys.argv[2])
loaded = sorted(m for m, mod in sys.modules.items() if m.split(".")[0] == "torch" and mod is not None)
assert not loaded and sys.modules["torch"] is None, loaded  # the block stayed, nothing got past it
shapes = [list(p.masks.shape) for p in (single, multi, again)]
print(json.dumps([predictor.family, *shapes]))
"""
)


def test_sam2_predictor_and_generator_import_no_torch(sam2_tiny_export, tmp_path):
    """SAM 2: from_export, set_image, predict (single-mask rule, refinement), embedding save/load
    and the generator's m2m step, with torch unimportable."""
    image = tmp_path / "image.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (40, 60, 3), np.uint8)).save(image)
    result = run_python(SAM2_PATHS, sam2_tiny_export.output_dir, image, tmp_path / "emb")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["sam2", [1, 40, 60], [3, 40, 60], [3, 40, 60]]
