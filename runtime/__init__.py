"""Torch-free onnxruntime side of sam-onnx (installed as ``sam_onnx.runtime``).

Needs exactly one of the ``[cpu]`` (onnxruntime), ``[gpu]`` (onnxruntime-gpu) or ``[openvino]``
(onnxruntime-openvino) extras. Sessions run on the fastest engine the environment has unless told
otherwise (OpenVINO, bf16 on CPUs with native bf16, where onnxruntime-openvino is installed; else
onnxruntime's CPU provider): ``SamPredictor.engine`` says which.
Importing this package never imports torch::

    from sam_onnx.runtime import SamPredictor

    predictor = SamPredictor.from_export("onnx/vit_b")
    predictor.set_image("photo.jpg")
    pred = predictor.predict(point_coords=[[500, 375]], point_labels=[1])
"""

from . import _moved
from .core.backend import onnxruntime_module

_moved.install()  # the modules' paths before the rooms keep importing (deprecated)
ort = onnxruntime_module()

from .core.embedding import ImageEmbedding  # noqa: E402  (after the onnxruntime check)
from .core.predictor import Prediction, SamPredictor  # noqa: E402
from .core.session import SessionConfig  # noqa: E402

__all__ = ["ImageEmbedding", "Prediction", "SamPredictor", "SessionConfig", "ort"]
