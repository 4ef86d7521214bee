"""ONNX export of SAM (installed as ``sam_onnx.export``; needs the ``[export]`` extra).

One module per exported graph; each declares its interface once.
"""
