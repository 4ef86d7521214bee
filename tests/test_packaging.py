"""Packaging: the runtime side imports no torch, no generic top-level names, clear dependency errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

from sam_onnx.errors import DependencyConflictError, MissingDependencyError


def run_python(code: str, tmp_path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter outside the repository (so only installed names resolve)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_runtime_side_imports_no_torch(tmp_path):
    result = run_python(
        """
        import sys
        import numpy as np
        import sam_onnx, sam_onnx.errors, sam_onnx.variants, sam_onnx.preprocess, sam_onnx.runtime
        from sam_onnx.preprocess import normalize_and_pad, resize_longest_side
        x = normalize_and_pad(resize_longest_side(np.zeros((48, 64, 3), np.uint8)))
        assert x.shape == (1, 3, 1024, 1024), x.shape
        assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
        print("ok")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_no_generic_top_level_packages(tmp_path):
    result = run_python(
        """
        import importlib.util, pathlib
        import sam_onnx.export, sam_onnx.runtime
        assert importlib.util.find_spec("runtime") is None
        assert importlib.util.find_spec("export") is None
        for module in (sam_onnx.export, sam_onnx.runtime):
            print(pathlib.Path(module.__file__).parent.name)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["export", "runtime"]


def test_runtime_without_onnxruntime_says_which_extra(tmp_path):
    result = run_python(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "onnxruntime" or name.startswith("onnxruntime."):
                    raise ImportError("No module named 'onnxruntime'")
        sys.meta_path.insert(0, Block())
        from sam_onnx.errors import MissingDependencyError
        try:
            import sam_onnx.runtime
        except MissingDependencyError as exc:
            print(exc)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "sam-onnx[cpu]" in result.stdout and "sam-onnx[gpu]" in result.stdout


def test_both_onnxruntime_wheels_are_refused(monkeypatch):
    from sam_onnx.runtime import backend

    monkeypatch.setattr(backend.metadata, "version", lambda name: "1.0")
    with pytest.raises(DependencyConflictError, match="onnxruntime and onnxruntime-gpu"):
        backend.onnxruntime_module()
    assert issubclass(DependencyConflictError, ImportError) and issubclass(
        MissingDependencyError, ImportError
    )


def test_exactly_one_onnxruntime_installed_here():
    from sam_onnx.runtime.backend import installed_ort_distributions

    assert len(installed_ort_distributions()) == 1
    assert metadata.version("sam-onnx")
