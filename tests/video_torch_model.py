"""The video predictor's model interface on our PyTorch ``Sam2Video``: a test double of the
exported graphs that computes the same six steps (tests only; the runtime never imports torch)."""

from __future__ import annotations

import numpy as np

from sam_onnx.runtime.video.model import FrameFeatures, HeadsOutput, MemoryInputs


class TorchVideoModel:
    """``embeddings`` is the map without ``no_mem_embed`` (the model adds it where needed)."""

    def __init__(self, model) -> None:
        import torch

        self.torch = torch
        self.model = model

    def _t(self, x):
        return self.torch.from_numpy(np.ascontiguousarray(x))

    def _heads(self, out) -> HeadsOutput:
        return HeadsOutput(out.low_res_masks.numpy(), out.obj_ptr.numpy(), out.object_score_logits.numpy())

    def encode(self, image):
        with self.torch.no_grad():
            return FrameFeatures(*(t.numpy() for t in self.model.encode_frame(self._t(image))))

    def init_cond_features(self, features):
        with self.torch.no_grad():
            return self.model.init_cond_features(self._t(features.embeddings)).numpy()

    def condition_on_memory(self, features, memory: MemoryInputs):
        m = self.model
        with self.torch.no_grad():
            spatial = m.spatial_memory([self._t(x)[None] for x in memory.memories], memory.t_pos)
            ptrs = m.pointer_memory(
                self._t(memory.obj_ptrs)[None], self.torch.tensor(memory.distances), memory.max_distance
            )
            return m.condition_on_memory(self._t(features.embeddings), *spatial, *ptrs).numpy()

    def track_heads(self, pix_feat, features, coords, labels, mask_input, *, multimask):
        with self.torch.no_grad():
            out = self.model.track_heads(
                self._t(pix_feat),
                self._t(features.high_res_feats_0),
                self._t(features.high_res_feats_1),
                self._t(coords),
                self._t(labels),
                None if mask_input is None else self._t(mask_input),
                multimask=multimask,
            )
        return self._heads(out)

    def mask_as_output(self, features, mask_1024):
        from sam_onnx.modeling.sam2_video import Sam2FrameFeatures

        with self.torch.no_grad():
            feats = Sam2FrameFeatures(*(self._t(x) for x in features))
            return self._heads(self.model.mask_as_output(feats, self._t(mask_1024)))

    def encode_memory(self, features, low_res_masks, object_score, *, binarize):
        with self.torch.no_grad():
            return self.model.encode_memory(
                self._t(features.embeddings), self._t(low_res_masks), self._t(object_score), binarize=binarize
            ).numpy()


def tiny_torch_video_model():
    """The tiny SAM 2 video variant with deterministic random weights (init plus noise), its
    object-score bias raised so that tracked objects are present, behind the model interface."""
    import torch

    from sam_onnx.modeling.build import build_sam2_video

    torch.manual_seed(0)
    model = build_sam2_video("hiera_tiny")
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(0.02 * torch.randn_like(tensor))
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.add_(2.0)  # objects present
    return TorchVideoModel(model)
