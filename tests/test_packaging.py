"""Packaging: the runtime side imports no torch, no generic top-level names, clear dependency errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from importlib import metadata
from pathlib import Path

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
    assert "'.[cpu]'" in result.stdout and "'.[gpu]'" in result.stdout


def test_both_onnxruntime_wheels_are_refused(monkeypatch):
    from sam_onnx.runtime.core import backend

    monkeypatch.setattr(backend.metadata, "version", lambda name: "1.0")
    with pytest.raises(DependencyConflictError, match="onnxruntime and onnxruntime-gpu"):
        backend.onnxruntime_module()
    assert issubclass(DependencyConflictError, ImportError) and issubclass(
        MissingDependencyError, ImportError
    )


def test_exactly_one_onnxruntime_installed_here():
    from sam_onnx.runtime.core.backend import installed_ort_distributions

    assert len(installed_ort_distributions()) == 1
    assert metadata.version("sam-onnx")


REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "demo_web" / "dist"
WEB_IN_WHEEL = "sam_onnx/runtime/web/"


def build_wheel(source: Path, out: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``pip wheel`` of ``source`` into ``out`` with this environment's setuptools (no downloads)."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", "-w", str(out)]
    return subprocess.run(
        [*cmd, str(source)], capture_output=True, text=True, timeout=600, env=env, cwd=out.parent
    )


def wheel_files(out: Path) -> dict[str, int]:
    (wheel,) = out.glob("sam_onnx-*.whl")
    with zipfile.ZipFile(wheel) as z:
        return {i.filename: i.file_size for i in z.infolist()}


def test_wheel_carries_the_built_page(tmp_path):
    """The README's runtime install (`pip install '.[cpu]'`, not editable) gets the page: every file
    of demo_web/dist is in the wheel under sam_onnx/runtime/web/, where serve and bundle look."""
    if not (DIST / "index.html").is_file() and shutil.which("npm") is None:
        reason = "needs demo_web/dist or npm to build it"
        if os.environ.get("SAM_REQUIRE_WEB") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    out = tmp_path / "wheels"
    result = build_wheel(REPO, out)
    assert result.returncode == 0, result.stderr[-3000:]
    files = wheel_files(out)
    built = [p for p in DIST.rglob("*") if p.is_file()]
    page = {f"{WEB_IN_WHEEL}{p.relative_to(DIST).as_posix()}": p.stat().st_size for p in built}
    assert f"{WEB_IN_WHEEL}index.html" in page and any(n.endswith(".wasm") for n in page)
    assert {n: s for n, s in files.items() if n.startswith(WEB_IN_WHEEL)} == page


def test_wheel_without_npm_or_page_is_built_without_it(tmp_path):
    """No npm and no built page: the wheel is still built (serve/bundle then name the fix), unless
    SAM_ONNX_REQUIRE_PAGE=1 asks for the page."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("sam_onnx", "export", "runtime", "demo_web"):
        shutil.copytree(REPO / name, source / name, ignore=_not_sources)
    assert not (source / "demo_web" / "dist").exists() and (source / "demo_web" / "package.json").is_file()
    env = {**os.environ, "PATH": str(tmp_path / "no-tools")}  # no npm anywhere
    result = build_wheel(source, tmp_path / "wheels", env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "npm not found" in result.stderr and "built without it" in result.stderr
    files = wheel_files(tmp_path / "wheels")
    assert "sam_onnx/runtime/server/bundle.py" in files and not [
        n for n in files if n.startswith(WEB_IN_WHEEL)
    ]
    strict = build_wheel(source, tmp_path / "strict", {**env, "SAM_ONNX_REQUIRE_PAGE": "1"})
    assert strict.returncode != 0 and "SAM_ONNX_REQUIRE_PAGE=1" in strict.stdout + strict.stderr


def _not_sources(folder: str, names: list[str]) -> list[str]:
    skip = ("dist", "node_modules", "build", "__pycache__")
    return [n for n in names if n in skip or n.endswith(".egg-info")]


def test_checkout_root_shadowing_an_install_still_finds_runtime_and_export():
    """From the clone's root, ``import sam_onnx`` takes the checkout's sam_onnx/ before a
    non-editable install; its runtime/ and export/ live beside it and must still be found. Run
    without site processing (so no editable-install finder can help) and with site-packages only
    on the path."""
    site_packages = Path(sysconfig.get_path("purelib", vars={"base": sys.prefix}))
    code = (
        "import sys; sys.path[:0] = ['']; sys.path.append(sys.argv[1]); "
        "import sam_onnx.runtime, sam_onnx.export; "
        "print(sam_onnx.runtime.__file__); print(sam_onnx.export.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code, str(site_packages)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    runtime_file, export_file = result.stdout.split()
    assert Path(runtime_file) == REPO / "runtime" / "__init__.py"
    assert Path(export_file) == REPO / "export" / "__init__.py"
