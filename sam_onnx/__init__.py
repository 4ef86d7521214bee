"""sam-onnx: split-inference ONNX deployment toolkit for Segment Anything (SAM).

The top-level package is torch-free. The PyTorch model sources and checkpoint loading live in
:mod:`sam_onnx.modeling` (needs the ``[export]`` extra); the onnxruntime side lives in
:mod:`sam_onnx.runtime` (needs the ``[cpu]`` or ``[gpu]`` extra).
"""

__version__ = "0.1.0"
