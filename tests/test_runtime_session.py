"""Opening graphs in onnxruntime: typed errors for bad files, and the provider actually in use."""

from __future__ import annotations

import warnings

import onnx
import pytest

from sam_onnx.errors import ModelLoadError, ProviderError
from sam_onnx.runtime.core import session as session_module
from sam_onnx.runtime.core.session import SessionConfig, open_session


def test_opens_an_exported_graph(tiny_export):
    session = open_session(tiny_export.files["decoder"][0], SessionConfig(intra_op_threads=1), role="decoder")
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_missing_graph(tmp_path):
    with pytest.raises(ModelLoadError, match="decoder graph file does not exist"):
        open_session(tmp_path / "decoder.onnx", SessionConfig(), role="decoder")


@pytest.mark.parametrize("keep", [0, 1000, 0.5])
def test_corrupt_or_truncated_graph(tiny_export, tmp_path, keep):
    data = tiny_export.files["decoder"][0].read_bytes()
    cut = tmp_path / "decoder.onnx"
    cut.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model") as info:
        open_session(cut, SessionConfig(), role="decoder")
    assert str(cut) in str(info.value)


def test_missing_external_data(tiny_export, tmp_path):
    model = onnx.load(str(tiny_export.files["encoder"][0]))
    path = tmp_path / "encoder.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="encoder.onnx.data")
    (tmp_path / "encoder.onnx.data").unlink()
    with pytest.raises(ModelLoadError, match="external data"):
        open_session(path, SessionConfig(), role="encoder")


def test_cuda_requested_without_it(tiny_export, monkeypatch):
    """Strict mode raises naming the provider; default mode warns once and runs on CPU."""
    monkeypatch.setattr(session_module, "_warned", set())  # as in a fresh process
    path = tiny_export.files["decoder"][0]
    with pytest.raises(ProviderError, match="CUDAExecutionProvider"):
        open_session(path, SessionConfig(providers=("cuda",), strict=True), role="decoder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = open_session(path, SessionConfig(providers=("cuda",)), role="decoder")
        open_session(path, SessionConfig(providers=("cuda",)), role="decoder")
        open_session(tiny_export.files["encoder"][0], SessionConfig(providers=("cuda",)), role="encoder")
    assert first.get_providers() == ["CPUExecutionProvider"]
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "running on CPUExecutionProvider" in messages[0]


def test_bad_thread_count(tiny_export):
    with pytest.raises(ProviderError, match="intra_op_threads"):
        open_session(tiny_export.files["decoder"][0], SessionConfig(intra_op_threads=-1), role="decoder")
