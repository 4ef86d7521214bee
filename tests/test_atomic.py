"""sam_onnx.atomic: whole-folder swaps (with and without renameat2) and removal of what killed
writers left behind, but never of a live writer's staging folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sam_onnx import atomic

MARK = ".test-mark-"


def folder(path: Path, text: str) -> Path:
    path.mkdir()
    (path / "a.txt").write_text(text)
    return path


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_swap_in_replaces_the_folder_and_leaves_the_old_one_at_the_staging_name(
    tmp_path, monkeypatch, exchange
):
    if not exchange:
        monkeypatch.setattr(atomic, "rename_exchange", lambda a, b: False)
    out = folder(tmp_path / "out", "old")
    staging = atomic.make_staging(out, MARK)
    (staging / "a.txt").write_text("new")
    atomic.swap_in(staging, out)
    assert (out / "a.txt").read_text() == "new"
    assert (staging / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", staging.name])


def test_swap_in_to_a_new_path_is_one_rename(tmp_path):
    out = tmp_path / "out"
    staging = atomic.make_staging(out, MARK)
    (staging / "a.txt").write_text("new")
    atomic.swap_in(staging, out)
    assert (out / "a.txt").read_text() == "new" and not staging.exists()


def test_staging_names_carry_the_process_id(tmp_path):
    staging = atomic.make_staging(tmp_path / "out", MARK)
    assert staging.name.startswith(f".out{MARK}{os.getpid()}-")
    assert staging.parent == tmp_path


def test_sweep_removes_only_siblings_of_finished_processes(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(dead.stdout)
    out = tmp_path / "out"
    gone = folder(tmp_path / f".out{MARK}{dead_pid}-abc", "left by a killed writer")
    gone_aside = folder(tmp_path / f".out{MARK}{dead_pid}-abc-old-xyz", "left mid-fallback")
    mine = atomic.make_staging(out, MARK)
    parent_pid = folder(tmp_path / f".out{MARK}{os.getppid()}-def", "a live writer's")
    other_mark = folder(tmp_path / f".out.other-{dead_pid}-abc", "another tool's")
    other_name = folder(tmp_path / f".outer{MARK}{dead_pid}-abc", "another folder's")
    removed = atomic.sweep_stale(out, MARK)
    assert sorted(removed) == sorted([gone, gone_aside])
    assert not gone.exists() and not gone_aside.exists()
    assert all(p.is_dir() for p in (mine, parent_pid, other_mark, other_name))


def test_sweep_of_a_missing_parent_removes_nothing(tmp_path):
    assert atomic.sweep_stale(tmp_path / "no" / "out", MARK) == []
