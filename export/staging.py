"""Atomic output: an export is built in a staging directory and swapped in only when complete.

The staging directory is a hidden sibling of the output directory (same file system, so the final
step is a rename). Every file is fsynced before the swap. The swap itself:

* no previous output: one ``rename``;
* a previous export there: Linux ``renameat2(RENAME_EXCHANGE)`` swaps the two directories in one
  step, so at every instant the output path holds either the old export or the new one, whole;
  where that call is missing the old directory is renamed aside first, then the new one renamed in
  (a window of two renames in which the path is briefly absent, never partial).

On any failure, including a validation failure, the staging directory is removed and the output
path is untouched. A process killed outright (SIGKILL) can leave a ``.<name>.sam-export-*`` sibling
behind, never a partial file at the output path.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}{STAGING_MARK}", dir=out.parent))
    except OSError as exc:
        raise OutputDirectoryError(out, f"cannot create files beside it ({exc.strerror or exc})") from exc
    try:
        yield staging
        _fsync_tree(staging)
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp made it private; give it a normal mode
        check_output_dir(out)  # it may have changed while we worked
        _swap_in(staging, out)
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


def _swap_in(staging: Path, out: Path) -> None:
    """Put ``staging`` at ``out``; whatever was at ``out`` ends up at ``staging`` (then removed)."""
    if not out.exists():
        os.rename(staging, out)
        return
    if _rename_exchange(staging, out):
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}{STAGING_MARK}old-", dir=out.parent))
    os.rmdir(aside)
    os.rename(out, aside)
    os.rename(staging, out)
    os.rename(aside, staging)


def _rename_exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths with ``renameat2``; False where the call is unavailable."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if result == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (38, 22, 95):  # ENOSYS, EINVAL, EOPNOTSUPP: kernel or file system lacks it
        return False
    raise OSError(errno, os.strerror(errno), os.fspath(b))
