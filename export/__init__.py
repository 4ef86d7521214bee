"""ONNX export of SAM (installed as ``sam_onnx.export``; needs the ``[export]`` extra).

One module per exported graph (``encoder_graph``, ``decoder_graph``), and one per step of an
export: ``onnx_file`` (tracing, metadata, onnxsim, external data), ``precision`` (fp16/int8),
``validate`` (parity with PyTorch), ``staging`` (atomic output), ``api`` (:func:`export_sam`) and
``cli`` (``sam-export``).
"""

from .api import ExportOptions, ExportResult, export_sam

__all__ = ["ExportOptions", "ExportResult", "export_sam"]
