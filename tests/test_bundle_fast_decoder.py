"""``sam-onnx bundle`` and the fast decoder pair: the bundle carries the export's
``decoder_image.onnx`` and ``decoder_click.onnx`` and names them in ``bundle.json``; ``--no-fast-decoder``
leaves them out; a pair from another checkpoint, or its two graphs swapped, are refused. The page
running the pair is tests/test_demo_web.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam_onnx.errors import ModelMismatchError
from sam_onnx.runtime.cli import main as cli_main
from sam_onnx.runtime.core.fast_decoder import fast_decoder_paths
from sam_onnx.runtime.core.graphs import decoder_identity, web_decoder_paths
from sam_onnx.runtime.server.bundle import write_bundle


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(path)
    return path


def bundle(photo: Path, model_dir: str, out: Path, *extra: str) -> dict:
    args = ["bundle", str(photo), "-m", model_dir, "-o", str(out), "--no-web", "-q", *extra]
    assert cli_main(args) == 0
    return json.loads((out / "bundle.json").read_text())


def test_bundle_carries_the_fast_decoder_pair(photo, tiny_model_dir, tmp_path):
    out = tmp_path / "site"
    meta = bundle(photo, tiny_model_dir, out)
    assert meta["fast_decoder"] == {"image": "decoder_image.onnx", "click": "decoder_click.onnx"}
    image, click = fast_decoder_paths(tiny_model_dir)
    assert sha256(out / meta["fast_decoder"]["image"]) == sha256(image)
    assert sha256(out / meta["fast_decoder"]["click"]) == sha256(click)
    # the official decoder stays: the page falls back to it
    assert sha256(out / meta["decoders"]["fp32"]) == sha256(Path(tiny_model_dir) / "decoder.onnx")


def test_no_fast_decoder_leaves_the_pair_out(photo, tiny_model_dir, tmp_path):
    out = tmp_path / "site"
    meta = bundle(photo, tiny_model_dir, out, "--no-fast-decoder")
    assert "fast_decoder" not in meta
    assert sorted(p.name for p in out.glob("*.onnx")) == sorted(meta["decoders"].values())
    # rewriting an earlier bundle with the pair in it removes the pair's files
    bundle(photo, tiny_model_dir, out)
    meta = bundle(photo, tiny_model_dir, out, "--no-fast-decoder")
    assert "fast_decoder" not in meta and not (out / "decoder_click.onnx").exists()


def with_checkpoint(path: Path, out: Path, checkpoint_sha256: str) -> Path:
    """A copy of the graph at ``path`` whose metadata names another checkpoint."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "checkpoint_sha256":
            prop.value = checkpoint_sha256
    onnx.save(model, str(out))
    return out


def test_a_pair_from_another_checkpoint_is_refused(tiny_model_dir, tmp_path):
    decoders = web_decoder_paths(tiny_model_dir)
    image, click = fast_decoder_paths(tiny_model_dir)
    own = decoder_identity(decoders["fp32"])["checkpoint_sha256"]
    other = with_checkpoint(click, tmp_path / "decoder_click.onnx", "0" * 64)
    assert own != "0" * 64
    encoder = Path(tiny_model_dir) / "encoder.onnx"

    def page_only(pair):  # a bundle without an image: no embedding to check against
        return write_bundle(tmp_path / "site", None, None, decoders, encoder=encoder, fast_decoder=pair)

    with pytest.raises(ModelMismatchError, match=r"decoder_click\.onnx") as refused:
        page_only((image, other))
    assert "0" * 64 in str(refused.value) and own in str(refused.value)
    assert not (tmp_path / "site").exists()
    with pytest.raises(ModelMismatchError, match="given as the decoder_image"):
        page_only((click, image))


def test_a_page_only_bundle_carries_the_pair_too(tiny_model_dir, tmp_path):
    out = tmp_path / "site"
    assert cli_main(["bundle", "-m", tiny_model_dir, "-o", str(out), "--with-encoder", "--no-web", "-q"]) == 0
    meta = json.loads((out / "bundle.json").read_text())
    assert (out / meta["fast_decoder"]["image"]).is_file() and (out / meta["fast_decoder"]["click"]).is_file()
