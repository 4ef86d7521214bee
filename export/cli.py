"""``sam-export``: a thin command line over :func:`sam_onnx.export.api.export_sam`.

Exit status: 0 exported and validated; 1 validation failed (nothing written); 2 bad arguments,
checkpoint or output directory (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..contract import LAYOUTS
from ..errors import ExportValidationError, SamOnnxError
from ..variants import OFFICIAL_SAM2_VARIANTS, OFFICIAL_VARIANTS
from .encoder_graph import INPUT_KINDS
from .onnx_file import MAX_OPSET, MIN_OPSET


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sam-export",
        description="Export a SAM checkpoint to ONNX: image encoder, official-contract decoder and batched "
        "decoder, each validated against the PyTorch model.",
    )
    p.add_argument(
        "checkpoint",
        type=Path,
        help="official .pth/.pt (e.g. sam_vit_b_01ec64.pth, sam2.1_hiera_tiny.pt) or Hugging Face directory",
    )
    p.add_argument(
        "-o", "--output", type=Path, required=True, help="output directory (new, empty, or a previous export)"
    )
    p.add_argument(
        "--model-type",
        choices=[*OFFICIAL_VARIANTS, *OFFICIAL_SAM2_VARIANTS],
        help="SAM (vit_*) or SAM 2.1 (hiera_*): checked against the weights; detected if omitted",
    )
    p.add_argument("--opset", type=int, default=17, help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET} (default 17)")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--encoder-only", action="store_true", help="write only the encoder graph")
    only.add_argument("--decoder-only", action="store_true", help="write only the decoder graphs")
    p.add_argument(
        "--encoder-input",
        choices=INPUT_KINDS,
        default="normalized",
        help="normalized: 1x3x1024x1024 float32; "
        "uint8: the resized h x w x 3 image, normalised and padded in the graph",
    )
    p.add_argument(
        "--multimask", action="store_true", help="decoder.onnx returns all 4 mask tokens (token 0 first)"
    )
    p.add_argument(
        "--use-stability-score", action="store_true", help="official option: stability score replaces IoU"
    )
    p.add_argument(
        "--return-extra-metrics",
        action="store_true",
        help="official option: add stability_scores and areas outputs",
    )
    p.add_argument(
        "--image-only",
        action="store_true",
        help="SAM 2.1: skip the video graphs (video_heads, video_mask_prompt, memory_attention, "
        "memory_encoder), written by default when the checkpoint holds the video modules",
    )
    p.add_argument("--no-batched-decoder", action="store_true", help="skip decoder_batched.onnx")
    p.add_argument(
        "--no-fast-decoder",
        action="store_true",
        help="skip the fast decoder pair decoder_image.onnx + decoder_click.onnx",
    )
    p.add_argument(
        "--fp16", action="store_true", help="also write encoder.fp16.onnx (norms and softmax kept fp32)"
    )
    p.add_argument(
        "--int8", action="store_true", help="also write int8 dynamically quantised copies of every graph"
    )
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default=None,
        help="sam-onnx (default): our graphs; samexporter: encoder.onnx + decoder.onnx with the names "
        "and order samexporter writes and AnyLabeling / X-AnyLabeling read (docs/ANYLABELING.md)",
    )
    p.add_argument(
        "--anylabeling-config",
        action="store_true",
        help="with --layout samexporter: also write AnyLabeling's config.yaml beside the graphs",
    )
    p.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    p.add_argument(
        "--no-validate", action="store_true", help="skip the parity check against PyTorch (not advised)"
    )
    p.add_argument(
        "--validate-images", type=Path, nargs="+", metavar="IMAGE", help="validate on these images"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors, no progress bars")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        from .api import ExportOptions, export_sam

        layout = {} if args.layout is None else {"layout": args.layout}  # the library's default
        options = ExportOptions(
            **layout,
            anylabeling_config=args.anylabeling_config,
            model_type=args.model_type,
            opset=args.opset,
            encoder=not args.decoder_only,
            decoder=not args.encoder_only,
            batched_decoder=not args.no_batched_decoder,
            fast_decoder=not args.no_fast_decoder,
            encoder_input=args.encoder_input,
            multimask=args.multimask,
            use_stability_score=args.use_stability_score,
            return_extra_metrics=args.return_extra_metrics,
            fp16=args.fp16,
            int8=args.int8,
            simplify=not args.no_simplify,
            validate=not args.no_validate,
            image_only=args.image_only,
        )
        images = _read_images(args.validate_images) if args.validate_images else None
        progress = False if args.quiet else None  # bars when stderr is a terminal
        result = export_sam(args.checkpoint, args.output, options, images=images, log=log, progress=progress)
    except ExportValidationError as exc:
        print(f"sam-export: validation failed, nothing written: {exc}", file=sys.stderr)
        return 1
    except SamOnnxError as exc:
        print(f"sam-export: error: {exc}", file=sys.stderr)
        return 2
    if log:
        for key, paths in result.files.items():
            log(f"wrote {key}: {', '.join(str(p) for p in paths)}")
    return 0


def _read_images(paths: Sequence[Path]):
    from ..images import read_image_file

    return {path.name: read_image_file(path) for path in paths}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
