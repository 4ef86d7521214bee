"""The text-prompt detector (Grounding DINO): its graph's interface and the arithmetic that both
sides must do alike, declared once (torch-free, numpy only).

``sam-export-detector`` traces transformers' ``GroundingDinoForObjectDetection`` with these names;
its validation and the runtime (:mod:`sam_onnx.runtime.text`) feed and read them, and compute
the phrase structure and the image size with the functions here.

The graph, ``detector.onnx`` (metadata ``role = detector``):

=============================  =========  =================  ===========================================
name                           dtype      shape              meaning
=============================  =========  =================  ===========================================
``pixel_values``  (in)         float32    1 x 3 x S x S      the image resized by :func:`resized_hw`,
                                                             rescaled to 0..1, normalised by the
                                                             metadata's mean/std, zero-padded
                                                             bottom/right to the canvas S x S
``pixel_mask``  (in)           int64      1 x S x S          1 over the image, 0 over the padding
``input_ids``  (in)            int64      1 x T              the prompt's token ids, ``[CLS]`` ...
                                                             ``[SEP]``, T <= ``max_text_len``
``text_self_attention_mask``   bool       1 x T x T          :func:`phrase_structure`: which tokens
(in)                                                         attend to which (each phrase to itself)
``position_ids``  (in)         int64      1 x T              :func:`phrase_structure`: each token's
                                                             place in its phrase
``logits``  (out)              float32    1 x Q x L          per query and token; L = ``max_text_len``
                                                             (256), -inf beyond T
``pred_boxes``  (out)          float32    1 x Q x 4          (cx, cy, w, h) relative to the resized
                                                             image (not the canvas)
=============================  =========  =================  ===========================================

Why the phrase structure is an input: transformers computes it inside the model from where the
separators (``.``, ``?``, ``[CLS]``, ``[SEP]``) sit; traced, that computation freezes to the traced
prompt's phrases (the public export's "only the first phrase is scored"), and scripted it stops on
``aten::isin``. As inputs, any number of phrases is scored.

Why a fixed canvas S x S (metadata ``canvas``): the exporter freezes Swin's shifted-window masks and
the deformable attention's level shapes to the traced image size (measured in docs/TEXT.md: traced at
320 x 480 and run at 384 x 384, logits off by 11). The image keeps its aspect ratio (the processor's
rule with ``longest_edge`` <= S) and the model's own ``pixel_mask`` marks the padding, as
transformers does for a padded batch.
"""

from __future__ import annotations

import numpy as np

from .contract import GraphInterface, Tensor

DETECTOR_ROLE = "detector"
DETECTOR_FILE = "detector.onnx"
TOKENIZER_FILE = "tokenizer.json"
# The export folder's manifest says what it holds (``export.json``, ``kind``), so that a detector
# export given where a SAM export is expected (and the reverse) is named as such.
DETECTOR_KIND = "grounding-dino-detector"

PIXEL_VALUES = Tensor("pixel_values", "float32", (1, 3, "S", "S"), "the normalised image on the canvas")
PIXEL_MASK = Tensor("pixel_mask", "int64", (1, "S", "S"), "1 over the image, 0 over the padding")
INPUT_IDS = Tensor("input_ids", "int64", (1, "T"), "token ids, [CLS] ... [SEP]")
TEXT_SELF_ATTENTION_MASK = Tensor(
    "text_self_attention_mask", "bool", (1, "T", "T"), "phrase_structure: token i may attend to token j"
)
POSITION_IDS = Tensor("position_ids", "int64", (1, "T"), "phrase_structure: place in the phrase")
LOGITS = Tensor("logits", "float32", (1, "Q", "L"), "per query and token, -inf beyond T")
PRED_BOXES = Tensor("pred_boxes", "float32", (1, "Q", 4), "(cx, cy, w, h) relative to the resized image")
DETECTOR_GRAPH = GraphInterface(
    (PIXEL_VALUES, PIXEL_MASK, INPUT_IDS, TEXT_SELF_ATTENTION_MASK, POSITION_IDS), (LOGITS, PRED_BOXES)
)
# The axes that stay dynamic in the graph: the text length (the canvas is fixed, see the module doc).
TEXT_AXES = {
    INPUT_IDS.name: {1: "T"},
    TEXT_SELF_ATTENTION_MASK.name: {1: "T", 2: "T"},
    POSITION_IDS.name: {1: "T"},
}


def phrase_structure(input_ids: np.ndarray, separator_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """transformers' ``generate_masks_with_special_tokens_and_transfer_map`` in numpy.

    Arguments:
      input_ids: ``B x T`` int64 token ids.
      separator_ids: the model's separator token ids (metadata ``separator_token_ids``).
    Returns ``B x T x T`` bool (token i attends to token j: i == j, or both in one block closed by
    the same separator that is neither the first nor the last token) and ``B x T`` int64 position ids
    (distance from the previous separator, minus one; 0 outside such blocks).
    """
    batch, seq_len = input_ids.shape
    is_separator = np.isin(input_ids, separator_ids)
    indices = np.broadcast_to(np.arange(seq_len), (batch, seq_len))
    prev = np.maximum.accumulate(np.where(is_separator, indices, -1), axis=1)
    prev = np.concatenate([np.full((batch, 1), -1), prev[:, :-1]], axis=1)
    following = np.where(is_separator, indices, seq_len)[:, ::-1]
    following = np.minimum.accumulate(following, axis=1)[:, ::-1]
    valid = (following != 0) & (following != seq_len - 1) & (following != seq_len)
    mask = (following[:, :, None] == following[:, None, :]) & valid[:, None, :]
    mask |= np.eye(seq_len, dtype=bool)[None]
    position_ids = np.clip(np.where(valid, indices - prev - 1, 0), 0, None).astype(np.int64)
    return mask, position_ids


def resized_hw(orig_hw: tuple[int, int], shortest_edge: int, longest_edge: int) -> tuple[int, int]:
    """The size (H, W) the image is resized to: transformers' ``get_size_with_aspect_ratio`` (the
    shorter side to ``shortest_edge`` unless the longer would pass ``longest_edge``), float for float."""
    height, width = orig_hw
    size, raw_size = shortest_edge, None
    small, large = float(min(height, width)), float(max(height, width))
    if large / small * size > longest_edge:
        raw_size = longest_edge * small / large
        size = int(round(raw_size))  # noqa: RUF046 (transformers' own spelling, kept to compare)
    if (height <= width and height == size) or (width <= height and width == size):
        return height, width
    if width < height:
        return (int(raw_size * height / width) if raw_size is not None else int(size * height / width)), size
    return size, (int(raw_size * width / height) if raw_size is not None else int(size * width / height))
