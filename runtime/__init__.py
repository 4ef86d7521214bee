"""Torch-free onnxruntime side of sam-onnx (installed as ``sam_onnx.runtime``).

Needs exactly one of the ``[cpu]`` (onnxruntime) or ``[gpu]`` (onnxruntime-gpu) extras.
Importing this package never imports torch.
"""

from .backend import onnxruntime_module

ort = onnxruntime_module()

__all__ = ["ort"]
