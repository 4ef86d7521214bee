"""Atomic output: an export is built in a staging directory and swapped in only when complete.

The staging directory is a hidden sibling ``.<name>.sam-export-<pid>-*`` of the output directory;
every file is fsynced before the swap, which :mod:`sam_onnx.atomic` does (one step on Linux: the
output path holds the old export or the new one, whole, at every instant).

On any failure, including a validation failure, the staging directory is removed and the output
path is untouched. A process killed outright (SIGKILL) can leave its staging sibling behind, never
a partial file at the output path; the next export to the same path removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from .. import atomic
from ..errors import OutputDirectoryError

MANIFEST = "export.json"
TOOL_NAME = "sam-onnx"
STAGING_MARK = ".sam-export-"


def check_output_dir(out: Path) -> None:
    """Raise :class:`OutputDirectoryError` unless ``out`` is new, empty, or a previous export."""
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputDirectoryError(out, "exists and is not a directory")
    entries = sorted(p.name for p in out.iterdir())
    if not entries or _is_previous_export(out):
        return
    shown = ", ".join(repr(e) for e in entries[:3]) + (" ..." if len(entries) > 3 else "")
    raise OutputDirectoryError(
        out,
        f"holds {len(entries)} entries that are not a sam-export output ({shown}); "
        "name a new or empty directory, or a previous export to replace it",
    )


def _is_previous_export(out: Path) -> bool:
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("tool") == TOOL_NAME


@contextlib.contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """Yield an empty staging directory; on normal exit swap it in at ``out``, else remove it."""
    out = Path(os.path.abspath(out))
    check_output_dir(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic.sweep_stale(out, STAGING_MARK)
        staging = atomic.make_staging(out, STAGING_MARK)
    except OSError as exc:
        raise OutputDirectoryError(out, f"cannot create files beside it ({exc.strerror or exc})") from exc
    try:
        yield staging
        _fsync_tree(staging)
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp made it private; give it a normal mode
        check_output_dir(out)  # it may have changed while we worked
        atomic.swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_tree(root: Path) -> None:
    """fsync every file and the directory; give files the mode the umask asks for (onnx writes
    external data files private)."""
    mode = 0o666 & ~_umask()
    for path in root.iterdir():
        os.chmod(path, mode)
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
