"""An int8 encoder for OpenVINO: nncf post-training quantisation, written as an ONNX QDQ graph.

    python -m sam_onnx.export.openvino_int8 EXPORT_DIR [--images IMG ...]

Reads ``encoder.onnx`` of a ``sam-export`` directory, calibrates activation ranges on images (the
export's synthetic validation images by default, see :func:`export.validate.default_images`) and
writes ``encoder.ov-int8.onnx`` beside it, listed in ``export.json`` as ``encoder_ov_int8``. Unlike
``encoder.int8.onnx`` (onnxruntime's dynamic quantisation: weights only, attention stays fp32),
nncf places QuantizeLinear/DequantizeLinear pairs on the activations too, so that OpenVINO's
CPU plugin runs the weight products and the attention products on int8 (VNNI); inputs and outputs
stay float32. The graph is meant for the ``openvino`` provider (onnxruntime's CPU provider runs it,
slowly). Why an ONNX QDQ graph rather than an OpenVINO IR: the runtime opens every graph through
onnxruntime, and the OpenVINO provider compiles QDQ graphs as int8.

Measured on the kit's ViT-B (docs/BENCHMARKS.md): nncf's ``TRANSFORMER`` model type (SmoothQuant,
products of two activations quantised) kept the embedding close (cosine 0.9997 on a random input)
but OpenVINO ran it 2-5x slower than the fp32 graph; nncf's default model type runs faster than
fp32 on OpenVINO and is what this module writes. Bias correction is off: it runs every layer's
subgraph again on the calibration set, which the export's time budget on CPUs does not allow.

Needs the ``[openvino]`` extra (nncf; onnxruntime for the statistics) and ``[export]`` (onnx).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from ..errors import ExportError, MissingDependencyError
from ..preprocess import normalize_and_pad, resize_longest_side
from .onnx_file import save_model, set_metadata

OUTPUT_FILE = "encoder.ov-int8.onnx"
MANIFEST_KEY = "encoder_ov_int8"


def calibration_feeds(images: Mapping[str, np.ndarray], input_kind: str) -> list[np.ndarray]:
    """Encoder inputs of ``images`` (name -> ``H x W x 3`` uint8 RGB): ``1 x 3 x 1024 x 1024``
    float32 for a ``normalized`` encoder, the resized ``h x w x 3`` uint8 image for ``uint8``."""
    resized = [resize_longest_side(image) for image in images.values()]
    return resized if input_kind == "uint8" else [normalize_and_pad(r) for r in resized]


def quantize_encoder(model: onnx.ModelProto, feeds: list[np.ndarray]) -> onnx.ModelProto:
    """An nncf int8 QDQ copy of the encoder ``model``, calibrated on ``feeds`` (one per sample)."""
    try:
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    except ImportError as exc:
        raise MissingDependencyError(
            f"the OpenVINO int8 encoder needs nncf ({exc}); install the [openvino] extra"
        ) from exc
    name = model.graph.input[0].name
    dataset = nncf.Dataset(feeds, lambda feed: {name: feed})
    return nncf.quantize(
        model,
        dataset,
        subset_size=len(feeds),
        advanced_parameters=AdvancedQuantizationParameters(disable_bias_correction=True),
    )


def write_openvino_int8(
    export_dir: str | os.PathLike[str], images: Mapping[str, np.ndarray] | None = None
) -> Path:
    """Write ``encoder.ov-int8.onnx`` into ``export_dir`` and list it in its ``export.json``.

    Arguments:
      export_dir: a ``sam-export`` output directory with ``encoder.onnx`` (SAM v1 or SAM 2).
      images: name -> ``H x W x 3`` uint8 RGB calibration images (default: the export's
        synthetic validation images).
    Returns the written file.
    """
    from .validate import default_images

    export_dir = Path(export_dir)
    manifest_path = export_dir / "export.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        encoder = manifest["graphs"]["encoder"]
    except (OSError, ValueError, KeyError) as exc:
        raise ExportError(f"{manifest_path}: not a sam-export manifest with an encoder ({exc})") from None
    model = onnx.load(str(export_dir / encoder["file"]), load_external_data=True)
    feeds = calibration_feeds(images or default_images(), encoder["metadata"].get("encoder_input", ""))
    quantized = quantize_encoder(model, feeds)
    metadata = {**encoder["metadata"], "precision": "int8-qdq", "quantizer": "nncf", "engine": "openvino"}
    set_metadata(quantized, metadata)
    path = export_dir / OUTPUT_FILE
    files = save_model(quantized, path)
    manifest["graphs"][MANIFEST_KEY] = {
        "file": OUTPUT_FILE,
        "files": [f.name for f in files],
        "bytes": sum(f.stat().st_size for f in files),
        "metadata": metadata,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    from ..images import load_image

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("export_dir", type=Path, help="a sam-export output directory")
    p.add_argument("--images", nargs="+", type=Path, help="calibration images (default: synthetic)")
    args = p.parse_args(argv)
    images = {str(path): load_image(path) for path in args.images} if args.images else None
    print(f"wrote {write_openvino_int8(args.export_dir, images)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
