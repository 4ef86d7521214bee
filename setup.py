"""Build hook: the wheel carries the web demo's built page as ``sam_onnx/runtime/web``.

Everything else about the package is in pyproject.toml. When a (non-editable) wheel is built, the
page in ``demo_web/dist`` is copied into the wheel; if it is missing or older than its sources and
``npm`` is on PATH, it is built first (``npm ci`` when ``node_modules`` is missing, then
``npm run build``). Without npm an existing ``dist`` is copied as it is, and without either the
wheel is built without the page: ``sam-onnx serve`` and ``sam-onnx bundle`` then say so and name
the command that fixes it. ``SAM_ONNX_REQUIRE_PAGE=1`` turns a wheel without the page into a
build failure (for release builds). Editable installs skip all this: they serve ``demo_web/dist``
from the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DEMO = Path(__file__).resolve().parent / "demo_web"
DIST = DEMO / "dist"
# what the built page is made from: a newer one of these makes dist stale
PAGE_SOURCES = (
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
)


def _say(message: str) -> None:
    print(f"sam-onnx build: {message}", file=sys.stderr, flush=True)


def _newest_source_mtime() -> float:
    newest = 0.0
    for name in PAGE_SOURCES:
        path = DEMO / name
        files = path.rglob("*") if path.is_dir() else [path]
        newest = max([newest, *(f.stat().st_mtime for f in files if f.is_file())])
    return newest


def _page_is_fresh() -> bool:
    index = DIST / "index.html"
    return index.is_file() and index.stat().st_mtime >= _newest_source_mtime()


def _run_npm(npm: str) -> bool:
    """Build the page with npm; False (and why, on stderr) if that fails."""
    steps = ([] if (DEMO / "node_modules").is_dir() else [[npm, "ci", "--no-audit", "--no-fund"]]) + [
        [npm, "run", "build"]
    ]
    for step in steps:
        _say(f"{' '.join(step[1:])} in {DEMO}")
        if subprocess.run(step, cwd=DEMO).returncode != 0:
            _say(f"'npm {' '.join(step[1:])}' failed")
            return False
    return True


def built_page() -> Path | None:
    """``demo_web/dist``, built first when it is stale and npm can build it; None if there is none."""
    has_sources = (DEMO / "package.json").is_file()  # False in an sdist that carries only dist
    if has_sources and not _page_is_fresh():
        npm = shutil.which("npm")
        if npm is None:
            _say("npm not found: the web page cannot be built here (Node 20 with npm 11 builds it)")
        elif not _run_npm(npm):
            _say("building the web page failed")
    if (DIST / "index.html").is_file():
        if has_sources and not _page_is_fresh():
            _say(f"warning: {DIST} is older than its sources; packaging it as it is")
        return DIST
    return None


class BuildPyWithPage(build_py):
    """``build_py`` that also puts the built page into the wheel (see the module doc)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "sam_onnx" / "runtime" / "web"
        shutil.rmtree(target, ignore_errors=True)  # asset names carry hashes: never mix two builds
        page = built_page()
        if page is not None:
            shutil.copytree(page, target)
            _say(f"web page from {page} packaged as sam_onnx/runtime/web")
            return
        message = "no built web page: the wheel is built without it (sam-onnx serve/bundle will say so)"
        if os.environ.get("SAM_ONNX_REQUIRE_PAGE") == "1":
            raise SystemExit(f"sam-onnx build: {message}; SAM_ONNX_REQUIRE_PAGE=1 forbids that")
        _say(f"warning: {message}")


setup(cmdclass={"build_py": BuildPyWithPage})
