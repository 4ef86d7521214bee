"""The image-encoder graph, with its input either normalised-and-padded or the resized uint8 image.

``input_kind="normalized"``: ``image`` float32 ``1 x 3 x 1024 x 1024``, RGB, normalised with the
pixel mean/std and zero-padded at the bottom and right (what :func:`sam_onnx.preprocess.
normalize_and_pad` returns).

``input_kind="uint8"``: ``resized_image`` uint8 ``h x w x 3`` (HWC, RGB), the image already resized
so that its long side is 1024 (:func:`sam_onnx.preprocess.resize_longest_side`); h and w are
symbolic. The graph normalises and pads it. A long side other than 1024 is not checked inside the
graph (it cannot raise a readable error): the runtime checks it before the call.

Output: ``image_embeddings`` float32 ``1 x 256 x 64 x 64``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

from sam_onnx.families import SAM
from sam_onnx.modeling.sam import Sam

InputKind = Literal["normalized", "uint8"]
INPUT_KINDS: tuple[InputKind, ...] = ("normalized", "uint8")
OUTPUT_NAMES = SAM.feature_names
# Global attention in 16 runs of 4 query rows (256 queries): its logits held at once shrink from
# 12 x 4096 x 4096 float32 (805 MB per ViT-B block, several alive with the position biases and
# the softmax) to a sixteenth; the products are the same size in total, so the time is unchanged.
# ViT-B fp32 on onnxruntime's CPU provider (arena off) peaked at 2257 MiB with 4 runs, 1928 with
# 8 and 1720 with 16, in 3.2-3.4 s each; OpenVINO bf16 ran all three in 1.28-1.30 s.
GLOBAL_QUERY_CHUNKS = 16


class EncoderGraph(nn.Module):
    """Export-only wrapper around the image encoder; see the module docstring for the I/O."""

    def __init__(self, sam: Sam, input_kind: InputKind = "normalized") -> None:
        super().__init__()
        if input_kind not in INPUT_KINDS:
            raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")
        self.sam = sam
        self.input_kind = input_kind
        self.query_chunks = GLOBAL_QUERY_CHUNKS

    @property
    def input_names(self) -> tuple[str, ...]:
        return ("image",) if self.input_kind == "normalized" else ("resized_image",)

    @property
    def output_names(self) -> tuple[str, ...]:
        return OUTPUT_NAMES

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        if self.input_kind == "normalized":
            return {}
        return {"resized_image": {0: "resized_height", 1: "resized_width"}}

    def example_inputs(self) -> tuple[torch.Tensor]:
        """Inputs to trace with; for uint8, a landscape size (h and w stay symbolic)."""
        gen = torch.Generator().manual_seed(0)
        size = self.sam.img_size
        if self.input_kind == "normalized":
            return (torch.randn(1, 3, size, size, generator=gen),)
        return (torch.randint(0, 256, (size * 3 // 4, size, 3), generator=gen, dtype=torch.uint8),)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.input_kind == "uint8":
            image = self.sam.preprocess(image.permute(2, 0, 1).unsqueeze(0).to(torch.float32))
        with chunked_global_attention(self.sam.image_encoder, self.query_chunks):
            return self.sam.image_encoder(image)


@contextlib.contextmanager
def chunked_global_attention(encoder: nn.Module, chunks: int) -> Iterator[None]:
    """Global-attention blocks attend in ``chunks`` runs of query rows while inside (see
    ``Attention.query_chunks``); the model is left as it was, so the PyTorch reference that
    validation compares with stays the unchunked official computation."""
    attentions = [block.attn for block in encoder.blocks if block.window_size == 0]
    for attn in attentions:
        attn.query_chunks = chunks
    try:
        yield
    finally:
        for attn in attentions:
            attn.query_chunks = 1
