"""Video: the official SAM 2 video predictor's calls on numpy and onnxruntime (``VideoPredictor``).

Modules: ``frames`` (the clip, decoded one frame at a time as the official loader reads it),
``state`` (objects, prompts, stored outputs), ``bfloat16`` (memories stored as the official
stores them), ``holes`` (hole filling), ``model`` (the six steps of a frame, as an interface),
``predictor`` (``VideoPredictor``).
"""

from .predictor import VideoPredictor
from .state import InferenceState

__all__ = ["InferenceState", "VideoPredictor"]
