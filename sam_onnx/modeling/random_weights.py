"""Checkpoints of random weights, for trying the toolkit offline and for tests.

The weights have the official layout, so every step (loading, export, validation, runtime) runs
as it would on ``sam_vit_b_01ec64.pth`` — but the masks they give are not objects. The file says
it holds random weights (:func:`~.checkpoint.checkpoint_weights`); its exports carry
``weights = random`` in their metadata, and the web page tells the person.

    python -m sam_onnx.modeling.random_weights vit_b sam_vit_b_random.pth [--seed 0]
    python -m sam_onnx.modeling.random_weights hiera_t sam2.1_hiera_t_random.pt   # SAM 2.1, video too

A SAM 2.1 file holds the video modules as well (``{"model": state_dict}``, as the official ``.pt``),
and its object-score head's last bias is raised by :data:`SAM2_OBJECT_SCORE_OFFSET`, as the
reference kit's video weights are: with plain random weights a tracked object's score sits within
a few thousandths of 0, "present" or "absent" by rounding; with the offset it is present.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from ..variants import SAM2_VARIANTS, VARIANTS, SamVariant
from .build import build_sam, build_sam2_video
from .checkpoint import RANDOM_WEIGHTS, note_weights
from .sam import Sam


def random_sam(variant: SamVariant | str, seed: int = 0) -> Sam:
    """A model of ``variant`` with deterministic random weights (default init plus noise on every
    tensor, so that no norm weight is exactly 1 and no bias exactly 0)."""
    torch.manual_seed(seed)
    model = build_sam(variant)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(0.02 * torch.randn_like(tensor))
    return model


SAM2_OBJECT_SCORE_OFFSET = 0.6  # the video kit's make_checkpoint.py --object-score-offset


def random_sam2_video(variant: str, seed: int = 0) -> torch.nn.Module:
    """A SAM 2.1 video model of ``variant`` (``hiera_t`` ...) with deterministic random weights
    (default init plus noise, as :func:`random_sam`), the object-score bias raised (module doc)."""
    torch.manual_seed(seed)
    model = build_sam2_video(variant)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(0.02 * torch.randn_like(tensor))
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.add_(SAM2_OBJECT_SCORE_OFFSET)
    return model


def write_random_checkpoint(variant: SamVariant | str, path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Save :func:`random_sam` (a SAM v1 variant: an official-layout ``.pth``) or
    :func:`random_sam2_video` (a SAM 2.1 variant: ``{"model": ...}`` as the official ``.pt``),
    written to a temp file then renamed, noted as random weights (:func:`~.checkpoint.note_weights`):
    its exports say so, and so does the web page that runs them."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    video = isinstance(variant, str) and variant in SAM2_VARIANTS  # SAM 2.1: the video model
    model = random_sam2_video(variant, seed) if video else random_sam(variant, seed)
    state_dict = model.state_dict()
    note_weights(state_dict, RANDOM_WEIGHTS)
    torch.save({"model": state_dict} if video else state_dict, tmp)
    os.replace(tmp, path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sam_onnx.modeling.random_weights",
        description="Write a SAM checkpoint of RANDOM weights (official layout) for offline trials.",
    )
    p.add_argument("model_type", choices=[*VARIANTS, *SAM2_VARIANTS])
    p.add_argument("output", type=Path)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    write_random_checkpoint(args.model_type, args.output, args.seed)
    print(f"wrote {args.output} ({args.model_type}, random weights, seed {args.seed})", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
