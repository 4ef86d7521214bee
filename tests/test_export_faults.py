"""sam-export under bad input and faults: typed errors, exit codes, and nothing partial on disk."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sam_onnx.errors import OutputDirectoryError
from sam_onnx.export import ExportOptions, export_sam
from sam_onnx.export.cli import main

DECODER_ONLY = ExportOptions(encoder=False, batched_decoder=False, fast_decoder=False)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


# --- the command line -------------------------------------------------------------------------


def test_cli_exports_and_reports(capsys, tiny_checkpoint, tmp_path):
    code, err = run_cli(capsys, tiny_checkpoint, "-o", tmp_path / "out", "--decoder-only")
    assert code == 0, err
    assert "exporting decoder.onnx: done in" in err and "validating decoder.onnx against PyTorch" in err
    assert "masks agree" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "decoder.onnx",
        "decoder_batched.onnx",
        "decoder_click.onnx",
        "decoder_image.onnx",
        "export.json",
    ]


def test_missing_checkpoint(capsys, tmp_path):
    code, err = run_cli(capsys, tmp_path / "nope.pth", "-o", tmp_path / "out")
    assert code == 2
    assert "nope.pth" in err and "no such file or directory" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_corrupt_checkpoint(capsys, tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    code, err = run_cli(capsys, bad, "-o", tmp_path / "out")
    assert code == 2 and "bad.pth" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_checkpoint_is_a_directory_without_weights(capsys, tmp_path):
    (tmp_path / "hf").mkdir()
    code, err = run_cli(capsys, tmp_path / "hf", "-o", tmp_path / "out")
    assert code == 2 and "model.safetensors" in err


def test_model_type_mismatch(capsys, tiny_checkpoint, tmp_path):
    code, err = run_cli(capsys, tiny_checkpoint, "-o", tmp_path / "out", "--model-type", "vit_h")
    assert code == 2 and "'vit_h'" in err and "'tiny'" in err
    assert not (tmp_path / "out").exists()


def test_unknown_model_type(capsys, tiny_checkpoint, tmp_path):
    with pytest.raises(SystemExit) as info:
        main([str(tiny_checkpoint), "-o", str(tmp_path / "out"), "--model-type", "vit_x"])
    assert info.value.code == 2
    assert "invalid choice: 'vit_x'" in capsys.readouterr().err


@pytest.mark.parametrize("opset", ["16", "21"])
def test_opset_out_of_range(capsys, tiny_checkpoint, tmp_path, opset):
    code, err = run_cli(capsys, tiny_checkpoint, "-o", tmp_path / "out", "--opset", opset)
    assert code == 2 and "invalid opset: expected an integer from 17" in err and opset in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--encoder-only", "--decoder-only"], "not allowed with argument"),
        (["--decoder-only", "--fp16"], "fp16 applies to the encoder"),
        (["--decoder-only", "--encoder-input", "uint8"], "applies to the encoder"),
        (["--encoder-only", "--multimask"], "multimask applies to the decoder"),
        (["--encoder-only", "--return-extra-metrics"], "applies to the decoder"),
    ],
)
def test_conflicting_options(capsys, tiny_checkpoint, tmp_path, flags, message):
    try:
        code, err = run_cli(capsys, tiny_checkpoint, "-o", tmp_path / "out", *flags)
    except SystemExit as exc:  # argparse's own mutually exclusive group
        code, err = exc.code, capsys.readouterr().err
    assert code == 2 and message in err
    assert not (tmp_path / "out").exists()


def test_unreadable_validation_image(capsys, tiny_checkpoint, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    code, err = run_cli(capsys, tiny_checkpoint, "-o", tmp_path / "out", "--validate-images", text)
    assert code == 2 and "invalid image file" in err and "notes.png" in err


# --- the output directory ---------------------------------------------------------------------


def test_output_is_a_file(capsys, tiny_checkpoint, tmp_path):
    target = tmp_path / "file.onnx"
    target.write_text("keep me")
    code, err = run_cli(capsys, tiny_checkpoint, "-o", target)
    assert code == 2 and "exists and is not a directory" in err
    assert target.read_text() == "keep me"


def test_output_directory_of_something_else(capsys, tiny_checkpoint, tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"jpeg")
    code, err = run_cli(capsys, tiny_checkpoint, "-o", out, "--decoder-only")
    assert code == 2 and "not a sam-export output" in err and "holiday.jpg" in err
    assert snapshot(out) == {"holiday.jpg": b"jpeg"}


def test_output_parent_unwritable(tiny_checkpoint):
    """/proc accepts no new entries, even from root."""
    if not Path("/proc/self").exists():
        pytest.skip("needs Linux /proc")
    with pytest.raises(OutputDirectoryError, match="cannot create files beside it"):
        export_sam(tiny_checkpoint, "/proc/sam-export-test-out", DECODER_ONLY)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through directory permissions")
def test_output_parent_read_only(tiny_checkpoint, tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir(mode=0o555)
    try:
        with pytest.raises(OutputDirectoryError, match="cannot create files beside it"):
            export_sam(tiny_checkpoint, parent / "out", DECODER_ONLY)
    finally:
        parent.chmod(0o755)


def test_reexport_replaces_previous_export(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    export_sam(tiny_checkpoint, out, ExportOptions(encoder=False))
    assert (out / "decoder_batched.onnx").exists()
    export_sam(tiny_checkpoint, out, DECODER_ONLY)
    assert sorted(p.name for p in out.iterdir()) == ["decoder.onnx", "export.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_existing_empty_directory_is_used(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    export_sam(tiny_checkpoint, out, DECODER_ONLY)
    assert (out / "decoder.onnx").exists() and oct(out.stat().st_mode & 0o777) != "0o700"


# --- faults in a subprocess -------------------------------------------------------------------


def cli_command(checkpoint: Path, out: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "sam_onnx.export.cli", str(checkpoint), "-o", str(out), *flags]


def test_disk_full_leaves_nothing(tiny_checkpoint, tmp_path):
    """A 2 MB file size limit (RLIMIT_FSIZE) stops the first graph write: typed message, no files."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))

    out = tmp_path / "out"
    proc = subprocess.run(
        cli_command(tiny_checkpoint, out), preexec_fn=limit, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stderr
    assert "could not write" in proc.stderr and "no space left" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_disk_full_keeps_previous_export(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    export_sam(tiny_checkpoint, out, ExportOptions(decoder=False))
    before = snapshot(out)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))

    proc = subprocess.run(
        cli_command(tiny_checkpoint, out, "--encoder-only"),
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "no space left" in proc.stderr
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _staging_dirs(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if ".sam-export-" in p.name]


def kill_once_staged(proc: subprocess.Popen, parent: Path, filename: str | None) -> None:
    """SIGKILL ``proc`` as soon as its staging directory holds ``filename`` (or any file)."""
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            files = [f.name for d in _staging_dirs(parent) for f in d.iterdir() if f.is_file()]
            if (filename is None and files) or filename in files:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the export ended before it could be interrupted"


@pytest.mark.parametrize("filename", [None, "decoder_batched.onnx"])
def test_killed_export_keeps_previous_export(tiny_checkpoint, tmp_path, filename):
    """SIGKILL while the new export is being written: the old one stays whole, nothing partial."""
    out = tmp_path / "out"
    export_sam(tiny_checkpoint, out, ExportOptions(encoder=False))
    before = snapshot(out)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    proc = subprocess.Popen(cli_command(tiny_checkpoint, out, "--int8"), **quiet)
    kill_once_staged(proc, tmp_path, filename)
    assert _staging_dirs(tmp_path), "the kill should have caught the export in its staging directory"
    assert snapshot(out) == before
    # A later export is not disturbed by the abandoned staging directory.
    export_sam(tiny_checkpoint, out, DECODER_ONLY)
    assert sorted(p.name for p in out.iterdir()) == ["decoder.onnx", "export.json"]


def test_killed_first_export_leaves_no_output(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    kill_once_staged(subprocess.Popen(cli_command(tiny_checkpoint, out), **quiet), tmp_path, None)
    assert not out.exists()


def test_readme_offline_commands(tmp_path):
    """The README's offline path: write a random-weight checkpoint, export it (tiny variant here)."""
    ckpt = tmp_path / "sam_tiny_random.pth"
    make = [sys.executable, "-m", "sam_onnx.modeling.random_weights", "tiny", str(ckpt)]
    assert subprocess.run(make, capture_output=True, timeout=120).returncode == 0
    proc = subprocess.run(
        cli_command(ckpt, tmp_path / "onnx", "--no-batched-decoder"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote encoder:" in proc.stderr and "wrote decoder:" in proc.stderr
