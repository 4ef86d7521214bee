"""The official SAM ONNX decoder contract's names, shared by the exporter and the runtime (torch-free).

Inputs, all float32: ``image_embeddings`` 1x256x64x64; ``point_coords`` 1xNx2 (x, y) in the
1024-long-side frame; ``point_labels`` 1xN; ``mask_input`` 1x1x256x256; ``has_mask_input`` [1];
``orig_im_size`` [2] = (H, W). Outputs: ``masks`` (logits at H x W), ``iou_predictions``,
``low_res_masks``.
"""

DECODER_INPUTS = (
    "image_embeddings",
    "point_coords",
    "point_labels",
    "mask_input",
    "has_mask_input",
    "orig_im_size",
)
DECODER_OUTPUTS = ("masks", "iou_predictions", "low_res_masks")
