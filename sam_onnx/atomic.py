"""Whole-folder replacement shared by ``sam-export`` (an export folder) and ``sam-onnx bundle``
(a bundle folder), and single-file replacement (:func:`atomic_write`: embeddings, PNGs, JSON).
Standard library only: the runtime imports it too.

A folder ``out`` is built in a hidden staging sibling ``.<name><mark><pid>-<random>`` (same file
system, so the last step is a rename) and swapped in when complete:

* nothing at ``out``: one ``rename``;
* an earlier folder there: Linux ``renameat2(RENAME_EXCHANGE)`` swaps the two in one step, so at
  every instant ``out`` holds the old folder or the new one, whole; the old one, now at the
  staging name, is then removed. Where that call is missing the old folder is renamed aside
  first (a window of two renames in which ``out`` is briefly absent, never partial).

A process killed outright (SIGKILL) cannot clean up: it may leave its staging sibling behind, never
a partial ``out``. The staging name carries the writer's process id, and the next writer of the
same ``out`` removes the siblings whose process is gone (:func:`sweep_stale`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def staging_prefix(out: Path, mark: str) -> str:
    """The name every staging sibling of ``out`` starts with, before the process id."""
    return f".{out.name}{mark}"


def make_staging(out: Path, mark: str) -> Path:
    """Create and return an empty private staging folder beside ``out``, named for this process."""
    prefix = f"{staging_prefix(out, mark)}{os.getpid()}-"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))


def sweep_stale(out: Path, mark: str) -> list[Path]:
    """Remove the staging siblings of ``out`` left by processes that no longer run; returns them.

    Siblings of a live process (another writer at work, or this one) are left alone.
    """
    pattern = re.compile(re.escape(staging_prefix(out, mark)) + r"(\d+)-")
    removed = []
    try:
        siblings = list(out.parent.iterdir())
    except OSError:
        return removed
    for path in siblings:
        found = pattern.match(path.name)
        if found is None or _process_alive(int(found.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or a number we cannot ask about: leave it
    return True


def swap_in(staging: Path, out: Path) -> None:
    """Put ``staging`` at ``out``; an earlier ``out`` ends up at ``staging`` (the caller removes it)."""
    if not out.exists():
        os.rename(staging, out)
        return
    if rename_exchange(staging, out):
        return
    aside = Path(tempfile.mkdtemp(prefix=f"{staging.name}-old-", dir=out.parent))
    os.rmdir(aside)
    os.rename(out, aside)
    os.rename(staging, out)
    os.rename(aside, staging)


def rename_exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths with ``renameat2``; False where the call is unavailable."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), exchange) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (38, 22, 95):  # ENOSYS, EINVAL, EOPNOTSUPP: kernel or file system lacks it
        return False
    raise OSError(errno, os.strerror(errno), os.fspath(b))


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a temporary sibling and a rename; nothing is left on failure."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
