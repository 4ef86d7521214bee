"""``sam-export-detector``: a thin command line over :func:`.detector_export.export_detector`.

A sibling of ``sam-export`` rather than one of its options: it reads another kind of model (a
Hugging Face Grounding DINO folder, through transformers) and writes another kind of folder (one
detector graph and a tokenizer), and none of ``sam-export``'s options (variant, decoders, layouts,
precisions) applies to it; the SAM export and the detector export are given to ``sam-onnx predict``
side by side (``-m`` and ``--detector``).

Exit status: 0 exported and validated; 1 validation failed (nothing written); 2 bad arguments,
model folder or output directory (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import ExportValidationError, SamOnnxError
from .detector_export import DEFAULT_CANVAS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sam-export-detector",
        description="Export a Hugging Face Grounding DINO folder (GroundingDinoForObjectDetection) to one "
        "ONNX graph with its tokenizer, validated against transformers.",
    )
    p.add_argument("model_dir", type=Path, help="folder with config.json, model.safetensors, tokenizer.json")
    p.add_argument("-o", "--output", type=Path, required=True, help="output directory (new or empty)")
    p.add_argument(
        "--canvas",
        type=int,
        default=None,
        help=f"the graph's square input side S (default {DEFAULT_CANVAS}): images keep their aspect "
        "ratio, long side at most S, padded to S x S",
    )
    p.add_argument(
        "--no-validate", action="store_true", help="skip the parity check against transformers (not advised)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .detector_export import export_detector

    options = {} if args.canvas is None else {"canvas": args.canvas}
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    try:
        result = export_detector(
            args.model_dir, args.output, validate=not args.no_validate, log=log, progress=None, **options
        )
    except ExportValidationError as exc:
        print(f"sam-export-detector: {exc}", file=sys.stderr)
        return 1
    except SamOnnxError as exc:
        print(f"sam-export-detector: {exc}", file=sys.stderr)
        return 2
    if result.report is None:
        print(f"wrote {result.output_dir} (not validated: --no-validate)")
        return 0
    worst = max((max(case.values()) for case in result.report.cases.values()), default=0.0)
    print(f"wrote {result.output_dir} (validated on {len(result.report.cases)} cases, worst {worst:.2g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
