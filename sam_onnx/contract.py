"""Every exported graph's interface, declared once (torch-free): names, dtypes, shapes, meaning.

The exporter traces graphs with these names, the validator and the runtime feed and read them,
and the web page reads the same names from ``demo_web/src/contract.json``, which
:mod:`sam_onnx.web_contract` generates from this module and :mod:`sam_onnx.families` (a test fails
when the page's copy is stale).

Shapes: an int is fixed; a string names a dynamic axis: ``N`` prompt points, ``B`` prompts of a
batched run, ``M`` masks returned, ``H`` x ``W`` the original image (rows x columns), ``h`` x ``w``
the resized image. Coordinates are (x, y); sizes are (H, W).

=====================  ========================================================================
role                   graph
=====================  ========================================================================
``encoder``            image -> the family's image features (:data:`IMAGE_EMBEDDINGS`, and SAM 2's
                       :data:`HIGH_RES_FEATS`); see :mod:`sam_onnx.families` for which
``decoder``            the official decoder contract: features + :data:`PROMPT` + ``orig_im_size``
                       -> :data:`DECODER_OUTPUTS` (M = 1, or 4 with ``--multimask``)
``decoder_batched``    the same with a leading prompt axis B; all 4 mask tokens
``decoder_image``      the fast pair's per-image graph: features -> per-image tensors (named in
                       its metadata, ``image_tensors``)
``decoder_click``      the fast pair's per-click graph: per-image tensors + :data:`PROMPT`
                       -> :data:`CLICK_OUTPUTS` (all 4 tokens, low-res, no upscaling)
``video_heads``        SAM 2 video: one frame's prompt encoder + mask decoder for B objects,
                       the official output choice, object score gate and object pointer
``video_mask_prompt``  SAM 2 video: a mask prompt used as the output (``add_new_mask``)
``memory_attention``   SAM 2 video: the frame's features conditioned on M memories, P pointers
``memory_encoder``     SAM 2 video: the frame's features and mask -> the memory to store
=====================  ========================================================================

The video graphs' interfaces are :data:`VIDEO_GRAPHS` (role -> :class:`GraphInterface`), their
files :data:`VIDEO_FILES`; the section "SAM 2.1 video" below says how a frame goes through them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Tensor:
    """One input or output of a graph.

    Attributes:
      name: the graph's input/output name.
      dtype: numpy dtype name (``float32``, ``uint8``).
      shape: ints for fixed axes, strings for dynamic ones (see the module doc).
      meaning: what it holds, in which frame.
    """

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    meaning: str


# -- image features: the encoder's outputs, the decoders' image inputs ----------------------------
IMAGE_EMBEDDINGS = Tensor(
    "image_embeddings", "float32", (1, 256, 64, 64), "the image embedding (SAM 2: no_mem_embed added)"
)
HIGH_RES_FEATS = (
    Tensor("high_res_feats_0", "float32", (1, 32, 256, 256), "SAM 2: conv_s0 of the finest Hiera map"),
    Tensor("high_res_feats_1", "float32", (1, 64, 128, 128), "SAM 2: conv_s1 of the second map"),
)

# -- encoder inputs -------------------------------------------------------------------------------
ENCODER_IMAGE = Tensor(
    "image",
    "float32",
    (1, 3, 1024, 1024),
    "RGB normalised by the family's pixel statistics; SAM v1: long side resized to 1024, zero-padded "
    "bottom/right; SAM 2: resized to the 1024 square",
)
ENCODER_RESIZED_IMAGE = Tensor(
    "resized_image", "uint8", ("h", "w", 3), "SAM v1 --encoder-input uint8: RGB, long side 1024"
)
ENCODER_ORIGINAL_IMAGE = Tensor(
    "image", "uint8", ("H", "W", 3), "SAM 2 --encoder-input uint8: the original RGB image"
)

# -- prompts (the decoders' and the click graph's prompt inputs) ----------------------------------
PROMPT = (
    Tensor("point_coords", "float32", (1, "N", 2), "points (x, y) in the 1024 frame of the family"),
    Tensor("point_labels", "float32", (1, "N"), "1 positive, 0 negative, 2/3 box corners, -1 padding"),
    Tensor("mask_input", "float32", (1, 1, 256, 256), "low-res logits of an earlier prediction"),
    Tensor("has_mask_input", "float32", (1,), "1 when mask_input holds a mask, else 0"),
)
ORIG_IM_SIZE = Tensor("orig_im_size", "float32", (2,), "(H, W) of the original image")
PROMPT_INPUTS = tuple(t.name for t in PROMPT)
POINT_COORDS, POINT_LABELS, MASK_INPUT, HAS_MASK_INPUT = PROMPT_INPUTS

# -- decoder outputs ------------------------------------------------------------------------------
DECODER_OUTPUT_TENSORS = (
    Tensor("masks", "float32", (1, "M", "H", "W"), "mask logits at the original size (threshold 0)"),
    Tensor("iou_predictions", "float32", (1, "M"), "predicted IoU of each mask"),
    Tensor("low_res_masks", "float32", (1, "M", 256, 256), "low-res logits, to feed back as mask_input"),
)
OBJECT_SCORE = Tensor(
    "object_score_logits", "float32", ("B", 1), "SAM 2 batched decoder: object presence logit"
)
CLICK_OUTPUT_TENSORS = (
    Tensor("low_res_logits", "float32", (1, 4, 256, 256), "all four tokens' low-res logits, unclamped"),
    Tensor("iou_predictions", "float32", (1, 4), "all four tokens' predicted IoU"),
)

DECODER_OUTPUTS = tuple(t.name for t in DECODER_OUTPUT_TENSORS)
CLICK_OUTPUTS = tuple(t.name for t in CLICK_OUTPUT_TENSORS)
MASKS, IOU_PREDICTIONS, LOW_RES_MASKS = DECODER_OUTPUTS
# SAM v1's official decoder inputs (a family's own list: Family.decoder_inputs)
DECODER_INPUTS = (IMAGE_EMBEDDINGS.name, *PROMPT_INPUTS, ORIG_IM_SIZE.name)

# -- the fast decoder pair and the extended decoders, as their metadata says ----------------------
FAST_FILES = {"decoder_image": "decoder_image.onnx", "decoder_click": "decoder_click.onnx"}
FAST_CONTRACT = (
    "sam-onnx fast decoder pair: decoder_image.onnx (image features -> per-image tensors, once per "
    "image) and decoder_click.onnx (those tensors + point_coords, point_labels, mask_input, "
    "has_mask_input -> low_res_logits 1 x 4 x 256 x 256, iou_predictions 1 x 4, all four mask tokens, "
    "no upscaling); the official decoder contract's values up to rounding"
)

# -- layouts: the same values under another client's names and order ------------------------------
# ``sam-onnx`` is the layout above (the default). ``samexporter`` is the layout samexporter 0.5.0
# writes and AnyLabeling / X-AnyLabeling read (SegmentAnythingONNX, SegmentAnything2ONNX), which
# read some inputs and outputs by position: only encoder.onnx and decoder.onnx, these names, this
# order. Our graphs in that layout compute the official values; what the layout cannot carry is
# its ``LayoutGraphs.client_gets`` (written into every graph's metadata and export.json).
DEFAULT_LAYOUT = "sam-onnx"
SAMEXPORTER_LAYOUT = "samexporter"


@dataclass(frozen=True)
class GraphInterface:
    """One graph's inputs and outputs in order (a layout's declaration of it)."""

    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)


@dataclass(frozen=True)
class LayoutGraphs:
    """A client layout of one family: its encoder and decoder, and what the client gets there
    where our own layout gives more (metadata ``layout_client_gets``)."""

    encoder: GraphInterface
    decoder: GraphInterface
    client_gets: str


_SAMEXPORTER_SAM_IMAGE = Tensor(
    "input_image",
    "float32",
    ("h", "w", 3),
    "RGB 0..255, long side at most 1024 (samexporter --use-preprocess): normalised and zero-padded "
    "bottom/right to 1024 x 1024 in the graph",
)
_SAMEXPORTER_SAM2_IMAGE_EMBED = Tensor("image_embed", "float32", (1, 256, 64, 64), IMAGE_EMBEDDINGS.meaning)
# our PROMPT with a leading prompt axis B (samexporter's num_labels), the points in SAM 2's frame
_SAMEXPORTER_SAM2_POINTS = replace(PROMPT[0], meaning="points (x, y) in the square 1024 frame")
_SAMEXPORTER_SAM2_PROMPT = tuple(
    replace(t, shape=("B", *t.shape[1:])) for t in (_SAMEXPORTER_SAM2_POINTS, *PROMPT[1:])
)
SAMEXPORTER_LAYOUTS: dict[str, LayoutGraphs] = {
    "sam": LayoutGraphs(
        encoder=GraphInterface((_SAMEXPORTER_SAM_IMAGE,), (IMAGE_EMBEDDINGS,)),
        decoder=GraphInterface((IMAGE_EMBEDDINGS, *PROMPT, ORIG_IM_SIZE), DECODER_OUTPUT_TENSORS),
        client_gets=(
            "the official decoder contract unchanged (decoder.onnx is ours); the encoder takes the "
            "resized RGB image as float32 h x w x 3 and pads it itself. No batched decoder, no fast pair"
        ),
    ),
    "sam2": LayoutGraphs(
        encoder=GraphInterface(
            (ENCODER_IMAGE,), (HIGH_RES_FEATS[0], HIGH_RES_FEATS[1], _SAMEXPORTER_SAM2_IMAGE_EMBED)
        ),
        decoder=GraphInterface(
            (_SAMEXPORTER_SAM2_IMAGE_EMBED, *HIGH_RES_FEATS, *_SAMEXPORTER_SAM2_PROMPT),
            (
                Tensor("masks", "float32", ("B", "M", 256, 256), "low-res logits, clamped to +-32"),
                Tensor("iou_predictions", "float32", ("B", "M"), "predicted IoU of each mask"),
            ),
        ),
        client_gets=(
            "low-res masks only (B x M x 256 x 256, clamped to +-32): the client resizes them to the "
            "image itself (OpenCV, not the official torch bilinear of the unclamped logits) and the "
            "encoder's square resize and normalisation are the client's (not antialiased); the graph "
            "appends the padding point itself. M = 1 by SAM 2's single-mask rule (the client's "
            "argmax over one score keeps it), 3 with --multimask (tokens 1..3, samexporter's own "
            "export, where the client's argmax of the IoU replaces the stability rule). No "
            "orig_im_size, no batched decoder, no fast pair"
        ),
    ),
}
LAYOUTS = (DEFAULT_LAYOUT, SAMEXPORTER_LAYOUT)

# -- SAM 2.1 video: the tracking graphs ------------------------------------------------------------
# Written by ``sam-export`` of a SAM 2.x checkpoint beside the image graphs (unless --image-only).
# They reuse the image ``encoder.onnx`` unchanged: each takes the encoder's ``image_embeddings``
# (``no_mem_embed`` added) and, where the official video path reads the neck's map without it
# (memory attention, memory encoder, the mask prompt's heads), subtracts ``no_mem_embed`` itself
# (float32: within one rounding of the map, measured in docs/VIDEO.md). The runtime holds no
# weights: temporal encodings (``maskmem_tpos_enc`` rows, ``obj_ptr_tpos_proj`` of a pointer's
# sine) are computed in the graphs from integer slots and distances; the sine position encodings
# are constants inside.
#
# Extra axes: ``B`` objects tracked together on one frame (the official code runs them one at a
# time; any B >= 1, rows independent), ``N`` prompt points of each object, ``M`` >= 1 spatial
# memories of each object, ``P`` 0..16 object pointers of each object; objects batched together
# share N, M and P (group them, or run them one at a time). Do not pad the points of an object
# to batch it with others: a padding point is one more prompt token and changes the result (every
# tracked frame's prompt is the same single padding point, so tracked objects batch exactly).
#
# A frame's way, per object (the official ``track_step``):
#   encoder(frame) -> image_embeddings, high_res_feats_*
#   frame prompted before tracking reached it:  frame_embeddings = image_embeddings (as is)
#   any other frame:  frame_embeddings = memory_attention(image_embeddings, its memories, pointers)
#   video_heads(frame_embeddings, high_res_feats_*, prompt or the padding point) -> low_res_logits,
#     obj_ptr, object_score_logits  (add_new_mask: video_mask_prompt instead of video_heads)
#   memory_encoder(image_embeddings, low_res_logits, object_score_logits, binarize) ->
#     maskmem_features (store them rounded to bfloat16, as the official predictor does)
VIDEO_HEADS_INPUT_TENSORS = (
    Tensor(
        "frame_embeddings",
        "float32",
        ("B", 256, 64, 64),
        "what the heads see: the encoder's image_embeddings (no_mem_embed added) on a frame prompted "
        "before tracking reached it, else memory_attention's conditioned_embeddings",
    ),
    Tensor("high_res_feats_0", "float32", (1, 32, 256, 256), "the frame's, from encoder.onnx (shared by B)"),
    Tensor("high_res_feats_1", "float32", (1, 64, 128, 128), "the frame's, from encoder.onnx (shared by B)"),
    Tensor(
        "point_coords",
        "float32",
        ("B", "N", 2),
        "points (x, y) in the square 1024 frame (x*1024/W, y*1024/H), box corners first; a frame "
        "without prompts: one point (0, 0) labelled -1. The graph appends the padding point itself",
    ),
    Tensor(
        "point_labels",
        "float32",
        ("B", "N"),
        "1 positive, 0 negative, 2/3 box corners, -1 the no-prompt point (never padding: see "
        "above). Labels >= 0 are the frame's points: "
        "0 or 1 of them -> multimask (best IoU of tokens 1..3, pointer from that token); 2 or more "
        "(a box is 2) -> token 0 with the stability fallback, pointer from token 0",
    ),
    Tensor(
        "mask_input",
        "float32",
        ("B", 1, 256, 256),
        "the frame's previous low-res logits clamped to +-32 (a correction on a frame that already "
        "has an output), through the prompt encoder's mask path; zeros when has_mask_input is 0",
    ),
    Tensor("has_mask_input", "float32", ("B",), "1 when mask_input holds logits, else 0"),
)
VIDEO_HEADS_OUTPUT_TENSORS = (
    Tensor(
        "low_res_logits",
        "float32",
        ("B", 1, 256, 256),
        "the chosen mask's logits, not clamped, before hole filling; -1024 everywhere when "
        "object_score_logits <= 0 (official NO_OBJ_SCORE)",
    ),
    Tensor("iou_predictions", "float32", ("B", 1), "the chosen mask's predicted IoU"),
    Tensor(
        "obj_ptr",
        "float32",
        ("B", 256),
        "object pointer: obj_ptr_proj of the chosen token; no_obj_ptr when absent",
    ),
    Tensor("object_score_logits", "float32", ("B", 1), "object presence logit (> 0: present)"),
)
# (the high-res maps only shape the heads' logits, which this path replaces by the mask itself)
VIDEO_MASK_PROMPT_INPUT_TENSORS = (
    IMAGE_EMBEDDINGS,
    Tensor(
        "mask",
        "float32",
        ("B", "H", "W"),
        "add_new_mask's mask at any size (1/0 or bool as float): resized to 1024 x 1024 in the graph "
        "(bilinear, antialiased) and thresholded at 0.5, as the official add_new_mask does",
    ),
)
VIDEO_MASK_PROMPT_OUTPUT_TENSORS = (
    Tensor(
        "low_res_logits", "float32", ("B", 1, 256, 256), "the mask as logits: mask * 20 - 10, shrunk to 256"
    ),
    Tensor(
        "obj_ptr", "float32", ("B", 256), "the heads' pointer on the mask; no_obj_ptr when the mask is empty"
    ),
    Tensor("object_score_logits", "float32", ("B", 1), "+10 when the mask has a pixel, else -10"),
)
MEMORY_ATTENTION_INPUT_TENSORS = (
    Tensor("image_embeddings", "float32", (1, 256, 64, 64), "the frame's, from encoder.onnx (shared by B)"),
    Tensor(
        "memory",
        "float32",
        ("B", "M", 64, 64, 64),
        "M >= 1 stored memories (memory_encoder's maskmem_features, as stored: bfloat16 values), "
        "conditioning frames first, then recent frames oldest first",
    ),
    Tensor(
        "memory_slots",
        "int64",
        ("B", "M"),
        "each memory's temporal slot t_pos: 0 for a conditioning frame, 1..num_maskmem-1 for a "
        "recent one (num_maskmem-1 = the adjacent frame); sam_onnx.video_memory.MemoryPlan.spatial",
    ),
    Tensor(
        "obj_ptrs",
        "float32",
        ("B", "P", 256),
        "P = 0..max_obj_ptrs object pointers (video_heads' obj_ptr of earlier frames); MemoryPlan.pointers",
    ),
    Tensor(
        "obj_ptr_distances",
        "int64",
        ("B", "P"),
        "each pointer's signed temporal distance to this frame (MemoryPlan.pointers)",
    ),
    Tensor(
        "obj_ptr_max_distance",
        "int64",
        (),
        "the distance whose sine position is 1: min(num_frames, max_obj_ptrs) - 1 (MemoryPlan.max_distance)",
    ),
)
MEMORY_ATTENTION_OUTPUT_TENSORS = (
    Tensor(
        "conditioned_embeddings",
        "float32",
        ("B", 256, 64, 64),
        "the frame's features conditioned on the memories: video_heads' frame_embeddings",
    ),
)
MEMORY_ENCODER_INPUT_TENSORS = (
    Tensor("image_embeddings", "float32", (1, 256, 64, 64), "the frame's, from encoder.onnx (shared by B)"),
    Tensor(
        "low_res_logits",
        "float32",
        ("B", 1, 256, 256),
        "a tracked frame: video_heads' low_res_logits (before hole filling); a prompted frame: its "
        "stored logits (after hole filling)",
    ),
    Tensor("object_score_logits", "float32", ("B", 1), "<= 0 adds no_obj_embed_spatial"),
    Tensor(
        "binarize",
        "float32",
        ("B",),
        "1: the mask is logits > 0 (prompted frames, encoded when tracking starts); 0: sigmoid",
    ),
)
MEMORY_ENCODER_OUTPUT_TENSORS = (
    Tensor(
        "maskmem_features",
        "float32",
        ("B", 64, 64, 64),
        "the frame's memory (mem_dim x 64 x 64), float32: round to bfloat16 to store it as the "
        "official predictor does; its position encoding is a constant of memory_attention",
    ),
)
# role -> interface, and role -> file (the role is also the export.json key and metadata ``role``)
VIDEO_GRAPHS: dict[str, GraphInterface] = {
    "video_heads": GraphInterface(VIDEO_HEADS_INPUT_TENSORS, VIDEO_HEADS_OUTPUT_TENSORS),
    "video_mask_prompt": GraphInterface(VIDEO_MASK_PROMPT_INPUT_TENSORS, VIDEO_MASK_PROMPT_OUTPUT_TENSORS),
    "memory_attention": GraphInterface(MEMORY_ATTENTION_INPUT_TENSORS, MEMORY_ATTENTION_OUTPUT_TENSORS),
    "memory_encoder": GraphInterface(MEMORY_ENCODER_INPUT_TENSORS, MEMORY_ENCODER_OUTPUT_TENSORS),
}
VIDEO_FILES = {
    "video_heads": "video_heads.onnx",
    "video_mask_prompt": "video_mask_prompt.onnx",
    "memory_attention": "memory_attention.onnx",
    "memory_encoder": "memory_encoder.onnx",
}
