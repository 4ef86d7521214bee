"""``sam-onnx demo``: something to look at offline in one command.

    checkpoint  -> export       -> sample bundle               -> server
    (given, or     (WORK/onnx/    (a synthetic image, embedded,    (the page opens on the sample;
    random         NAME, reused   WORK/bundles/sample)            drop any image to segment it)
    weights)       when there)

Without ``checkpoint`` a checkpoint of **random weights** is written (``WORK/sam_VARIANT_random.pth``):
every step runs as with real weights, but the masks follow textures and edges, not objects.
Making a checkpoint and exporting need the export side (torch, onnx); an export already in the
work folder is served without them. This module imports no torch itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sam_onnx.errors import MissingDependencyError

RANDOM_WEIGHTS_NOTICE = (
    "RANDOM WEIGHTS: this demo's model was never trained, so its masks follow textures and edges, "
    "not objects. For real masks: sam-onnx demo --checkpoint sam_vit_b_01ec64.pth (the official weights)."
)
EXPORT_HINT = "pip install '.[export,cpu]' (in a sam-onnx clone)"


@dataclass(frozen=True)
class DemoFiles:
    """What :func:`prepare_demo` made: the export, the sample bundle, and whether weights are random."""

    model_dir: Path
    bundle_dir: Path
    random_weights: bool


def prepare_demo(
    work_dir: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    variant: str = "vit_b",
    log: Callable[[str], None] = print,
) -> DemoFiles:
    """Make (or reuse) the checkpoint, the export and the sample bundle under ``work_dir``.

    ``variant`` picks the random-weight model when no ``checkpoint`` is given (``"tiny"`` exports
    in seconds; ``"vit_b"`` in minutes); a checkpoint's variant is read from its weights.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    random_weights = checkpoint is None
    name = Path(checkpoint).stem if checkpoint is not None else f"{variant}_random"
    model_dir = work / "onnx" / name
    if not _is_export_of(model_dir, checkpoint):
        export = _export_side()  # torch is needed from here on: say so before anything is written
        if checkpoint is None:
            checkpoint = _random_checkpoint(work / f"sam_{variant}_random.pth", variant, log)
        log(f"[2/3] exporting {checkpoint} to {model_dir} (validated; ViT-B takes minutes on a CPU)")
        export.export_sam(checkpoint, model_dir, log=log)
    else:
        log(f"[2/3] reusing the export in {model_dir}")
    log(f"[3/3] embedding the sample image ({work / 'sample.png'}, for trying the other commands too)")
    image = sample_image()
    Image.fromarray(image).save(work / "sample.png")
    bundle_dir = write_sample_bundle(model_dir, work / "bundles" / "sample", image)
    return DemoFiles(model_dir, bundle_dir, random_weights)


def make_demo_server(files: DemoFiles, web_dir: Path, *, host: str = "127.0.0.1", port: int = 8000):
    """A bound :class:`~.serve.DemoServer` of ``files``: the page opens on the sample bundle."""
    from sam_onnx.runtime.core.graphs import web_decoder_paths
    from sam_onnx.runtime.core.predictor import SamPredictor
    from sam_onnx.runtime.server.serve import ServeOptions, make_server

    options = ServeOptions(web_dir=web_dir, bundle_dirs=(files.bundle_dir,), host=host, port=port)
    predictor = SamPredictor.from_export(files.model_dir)
    return make_server(predictor, web_decoder_paths(files.model_dir), options)


def write_sample_bundle(model_dir: Path, out_dir: Path, image: np.ndarray) -> Path:
    """Embed ``image`` (``H x W x 3`` uint8 RGB) with ``model_dir``'s encoder into a bundle (no page),
    with the export's fast decoder pair when it has one."""
    from sam_onnx.runtime.core.fast_decoder import fast_decoder_paths
    from sam_onnx.runtime.core.graphs import web_decoder_paths
    from sam_onnx.runtime.core.predictor import SamPredictor
    from sam_onnx.runtime.server.bundle import write_bundle

    embedding = SamPredictor.from_export(model_dir).embed(image)
    decoders, fast = web_decoder_paths(model_dir), fast_decoder_paths(model_dir)
    write_bundle(out_dir, image, embedding, decoders, name="sample.png", fast_decoder=fast)
    return out_dir


def sample_image(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    """A synthetic ``h x w x 3`` uint8 RGB scene: a gradient sky, a noisy ground, a striped disc,
    a checkered square and a plain triangle (shapes with distinct textures, nothing copied)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    sky = np.stack([90 + 60 * y / h, 140 + 60 * y / h, 230 - 20 * y / h], axis=-1)
    noise = np.random.default_rng(seed).normal(0, 12, (h, w, 1))
    image = np.where((y > 0.62 * h)[..., None], np.array([95, 125, 60]) + noise, sky)
    disc = (x - 0.27 * w) ** 2 + (y - 0.45 * h) ** 2 < (0.16 * h) ** 2
    stripes = (x + y) // 10 % 2 == 0
    image[disc] = np.where(stripes[disc][:, None], [225, 80, 50], [250, 190, 60])
    square = (abs(x - 0.62 * w) < 0.11 * w) & (abs(y - 0.55 * h) < 0.11 * w)
    checks = (x // 16 + y // 16) % 2 == 0
    image[square] = np.where(checks[square][:, None], [40, 40, 45], [235, 235, 230])
    triangle = (y < 0.85 * h) & (abs(x - 0.86 * w) < (y - 0.35 * h) * 0.35)
    image[triangle] = [120, 60, 160]
    return np.clip(image, 0, 255).astype(np.uint8)


def _is_export_of(model_dir: Path, checkpoint: str | os.PathLike[str] | None) -> bool:
    """An earlier export in ``model_dir`` (of ``checkpoint``, when one is named)."""
    manifest = model_dir / "export.json"
    if not manifest.is_file():
        return False
    if checkpoint is None:  # one made before exports said "random weights" is made again, once
        return json.loads(manifest.read_text()).get("weights") == "random"
    sha256 = json.loads(manifest.read_text()).get("checkpoint_sha256")
    return sha256 == _export_side().checkpoint_sha256(checkpoint)


def _random_checkpoint(path: Path, variant: str, log: Callable[[str], None]) -> Path:
    from sam_onnx.modeling.checkpoint import RANDOM_WEIGHTS, checkpoint_weights
    from sam_onnx.modeling.random_weights import write_random_checkpoint

    if path.is_file() and checkpoint_weights(path) == RANDOM_WEIGHTS:  # older ones did not say so
        log(f"[1/3] reusing the random-weight checkpoint {path}")
        return path
    log(f"[1/3] writing a {variant} checkpoint of random weights to {path}")
    return write_random_checkpoint(variant, path)


def _export_side():
    """``sam_onnx.export.api``, or a :class:`MissingDependencyError` naming the extra to install."""
    try:
        import torch  # noqa: F401  (the export side's own import errors would name it less plainly)

        from sam_onnx.export import api
    except ImportError as exc:
        raise MissingDependencyError(
            f"sam-onnx demo makes and exports a checkpoint, which needs the export side "
            f"({exc.name or exc} is not installed): {EXPORT_HINT}"
        ) from None
    return api
