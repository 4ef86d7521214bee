"""Typed errors of sam-onnx, shared by every side of the toolkit (torch-free).

Each message names the input, what was expected and what came, so that a person reading a
traceback in a deployment log knows which file or argument to fix.
"""

from __future__ import annotations

import os


class SamOnnxError(Exception):
    """Base class of every error sam-onnx raises on purpose."""


class MissingDependencyError(SamOnnxError, ImportError):
    """An optional dependency (an extra) is not installed."""


class DependencyConflictError(SamOnnxError, ImportError):
    """Two installed packages provide the same module (onnxruntime and onnxruntime-gpu)."""


class _PathProblem:
    """Mixin for errors about one file or directory: keeps ``path`` and ``problem`` and formats
    the message from the class's ``template``."""

    template = "{path!r}: {problem}"

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(self.template.format(path=self.path, problem=problem))


class CheckpointError(_PathProblem, SamOnnxError):
    """A checkpoint could not be loaded. ``path`` names the file or directory."""

    template = "checkpoint {path!r}: {problem}"


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist."""


class UnreadableCheckpointError(CheckpointError, PermissionError):
    """The checkpoint exists but this process may not read it."""


class CorruptCheckpointError(CheckpointError):
    """The file exists but is truncated, corrupt or not a checkpoint container at all."""


class UnsafeCheckpointError(CheckpointError):
    """The pickle would import or call objects beyond plain tensors; it was refused unopened."""


class NotSamCheckpointError(CheckpointError):
    """The file holds tensors, but not the state dict of a SAM model."""


class VariantMismatchError(CheckpointError):
    """The weights are of another variant than the one asked for."""

    def __init__(self, path: str | os.PathLike[str], requested: str, detected: str) -> None:
        self.requested = requested
        self.detected = detected
        super().__init__(
            path, f"asked to load as {requested!r}, but the tensor shapes are those of {detected!r}"
        )


class ModelFamilyError(NotSamCheckpointError):
    """The weights are of another model family than the loader reads; ``requested`` and
    ``detected`` are :class:`~sam_onnx.families.Family` records (``name`` and ``label`` are read),
    ``loader`` names the function that reads them."""

    def __init__(self, path: str | os.PathLike[str], requested, detected, loader: str) -> None:
        self.requested = requested.name
        self.detected = detected.name
        super().__init__(
            path, f"this is a {detected.label} checkpoint, not {requested.label}: load it with {loader}"
        )


class MissingWeightsError(CheckpointError):
    """A Hugging Face model directory has no weights file."""


class InvalidInputError(SamOnnxError, ValueError):
    """A user-supplied image, prompt or option is malformed.

    ``name`` is the argument, ``expected`` what it should be, ``got`` what came.
    """

    def __init__(self, name: str, expected: str, got: str) -> None:
        self.name = name
        self.expected = expected
        self.got = got
        super().__init__(f"invalid {name}: expected {expected}, got {got}")


class ExportError(SamOnnxError):
    """An export could not be completed; nothing was written at the output path."""


class OutputDirectoryError(_PathProblem, ExportError):
    """The output directory cannot be used: unwritable, a file, or holding files of something else."""

    template = "output directory {path!r}: {problem}"


class ExportWriteError(_PathProblem, ExportError, OSError):
    """Writing a graph failed (disk full, file size limit, I/O error); ``path`` names the file."""

    template = "could not write {path!r}: {problem}"


class ExportValidationError(ExportError):
    """The exported graphs disagree with the PyTorch model beyond tolerance.

    ``report`` is the full :class:`~sam_onnx.export.validate.ValidationReport`.
    """

    def __init__(self, report: object, failures: list[str]) -> None:
        self.report = report
        self.failures = failures
        shown = "; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
        super().__init__(f"exported graphs fail validation against the PyTorch model: {shown}")


class ConflictingOptionsError(InvalidInputError):
    """Two options were given together that cannot both apply."""

    def __init__(self, first: str, second: str, why: str) -> None:
        super().__init__(f"options {first} and {second}", f"not both ({why})", "both")


class OutputOverwritesInputError(InvalidInputError):
    """A file a command would write is one of its inputs (``predict x.png --embedding out/x.npy -o out``
    would write its ``x.json`` over the embedding's). ``output`` and ``input`` are the two paths."""

    def __init__(self, output: str | os.PathLike[str], input_path: str | os.PathLike[str], what: str) -> None:
        self.output = os.fspath(output)
        self.input = os.fspath(input_path)
        super().__init__(
            f"output {self.output!r}",
            "a file that is none of the command's inputs (give -o another folder)",
            f"the same file as its input {what} {self.input!r}",
        )


class InvalidImageError(InvalidInputError):
    """An image could not be read or has a layout the toolkit cannot use."""


class ImageTooLargeError(InvalidImageError):
    """The image has more pixels than the configured limit (refused before decoding)."""


class ModelLoadError(_PathProblem, SamOnnxError):
    """An ONNX graph could not be opened: missing, corrupt, or its external data is missing."""

    template = "ONNX graph {path!r}: {problem}"


class ModelMismatchError(ModelLoadError):
    """An encoder and a decoder that do not belong together (other checkpoint, variant, or role)."""


class ProviderError(SamOnnxError):
    """A requested execution provider is unavailable or was not used (strict mode)."""


class InferenceError(SamOnnxError):
    """onnxruntime failed while running a graph; names the graph and its inputs."""


class NoImageError(SamOnnxError, RuntimeError):
    """``predict`` was called before ``set_image`` in this thread, and no embedding was passed."""


class EmbeddingFileError(_PathProblem, SamOnnxError):
    """A saved embedding (``.npy`` + ``.json``) is missing, corrupt, or of another model."""

    template = "embedding {path!r}: {problem}"


class OutputWriteError(_PathProblem, SamOnnxError, OSError):
    """Writing a runtime output (a bundle, an embedding) failed; nothing partial was left there."""

    template = "could not write {path!r}: {problem}"


class InvalidVideoError(InvalidInputError):
    """A video cannot be read as a clip: an empty folder, frames of mixed sizes, a frame that does
    not decode (named), a file OpenCV cannot open, a clip of no frames. ``name`` is the folder, file
    or frame."""


class TrackingStateError(SamOnnxError, RuntimeError):
    """A video call that the tracking state does not allow yet: propagating before any prompt, or
    with an object that has no prompt on any frame (names the object)."""


class InvalidPromptError(InvalidInputError):
    """A text prompt the detector cannot take: empty, only separators, longer than the model's
    ``max_text_len`` tokens, or words its vocabulary cannot spell. ``name`` is ``text prompt``."""

    def __init__(self, expected: str, got: str) -> None:
        super().__init__("text prompt", expected, got)


class NothingFoundError(SamOnnxError, LookupError):
    """No box of a text prompt scored above the box threshold; ``best_score`` and ``best_label``
    are those of the best box seen (``None`` with no query at all)."""

    def __init__(self, prompt: str, threshold: float, best_score: float | None, best_label: str) -> None:
        self.prompt = prompt
        self.threshold = threshold
        self.best_score = best_score
        self.best_label = best_label
        best = (
            "no box at all"
            if best_score is None
            else f"the best box scored {best_score:.4f} ({best_label!r})"
        )
        super().__init__(
            f"nothing found for {prompt!r}: no box scored above the box threshold {threshold:g}; {best} "
            "(lower --box-threshold to see it)"
        )
