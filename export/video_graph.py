"""What SAM 2.1's video graph wrappers share: the model they wrap and their names from the contract.

Each video graph (``video_heads``, ``video_mask_prompt``, ``memory_attention``, ``memory_encoder``)
is a :class:`VideoGraph` naming its ``role``; its input and output names, in graph order, are
``VIDEO_GRAPHS[role]``'s (:mod:`sam_onnx.contract`). The subclass adds its ``dynamic_axes``,
``example_inputs`` and ``forward``.
"""

from __future__ import annotations

from torch import nn

from sam_onnx.contract import VIDEO_GRAPHS
from sam_onnx.modeling.sam2_video import Sam2Video


class VideoGraph(nn.Module):
    """Export-only wrapper of a :class:`Sam2Video` for the video graph ``role``."""

    role: str

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        interface = VIDEO_GRAPHS[cls.role]
        cls.input_names = interface.input_names
        cls.output_names = interface.output_names

    def __init__(self, model: Sam2Video) -> None:
        super().__init__()
        self.model = model
