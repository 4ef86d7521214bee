"""sam-onnx: split-inference ONNX deployment toolkit for Segment Anything (SAM).

The top-level package is torch-free. The PyTorch model sources and checkpoint loading live in
:mod:`sam_onnx.modeling` (needs the ``[export]`` extra); the onnxruntime side lives in
:mod:`sam_onnx.runtime` (needs the ``[cpu]`` or ``[gpu]`` extra).
"""

__version__ = "0.1.0"

# In a source checkout, export/ and runtime/ sit beside this folder and install as sam_onnx.export
# and sam_onnx.runtime. When Python imports sam_onnx from the checkout itself (the current directory
# is the clone's root, so it shadows a non-editable install), let it find those two there as well.
_checkout = __import__("pathlib").Path(__file__).resolve().parent.parent
if not (_checkout / "sam_onnx" / "runtime").is_dir() and all(
    (_checkout / sub / "__init__.py").is_file() for sub in ("export", "runtime")
):
    __path__.append(str(_checkout))
del _checkout
