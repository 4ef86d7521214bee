"""``sam-onnx bundle --with-encoder``: the encoder graph in the bundle for the page to embed images
itself, its cost for the page's size rule, page-only bundles, and the inputs it refuses. The page
running it is tests/test_demo_web_encoder.py."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam_onnx.errors import InvalidInputError, ModelLoadError
from sam_onnx.runtime.cli import main as cli_main
from sam_onnx.runtime.core.graphs import decoder_identity, web_decoder_paths
from sam_onnx.runtime.server.bundle import encoder_gmacs, web_encoder, write_bundle
from sam_onnx.variants import EncoderNumbers, get_variant


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_page_only_bundle_carries_the_encoder_and_its_cost(tiny_model_dir, tmp_path):
    out = tmp_path / "site"
    assert cli_main(["bundle", "-m", tiny_model_dir, "-o", str(out), "--with-encoder", "--no-web", "-q"]) == 0
    meta = json.loads((out / "bundle.json").read_text())
    assert not {"image", "embedding", "orig_hw", "features", "name"} & set(meta)
    encoder = meta["encoder"]
    assert sha256(out / encoder["file"]) == sha256(Path(tiny_model_dir) / "encoder.onnx")
    assert encoder["bytes"] == (out / encoder["file"]).stat().st_size
    assert encoder["gmacs"] == round(encoder_gmacs(get_variant("tiny").encoder_numbers), 1) > 0
    assert encoder["input"] == "image" and encoder["variant"] == meta["variant"] == "tiny"
    decoder_sha = decoder_identity(out / meta["decoders"]["fp32"])["checkpoint_sha256"]
    assert encoder["checkpoint_sha256"] == meta["checkpoint_sha256"] == decoder_sha
    assert (meta["family"], meta["resize"]) == ("sam", "long_side")


def test_bundle_with_an_image_and_the_encoder(tiny_model_dir, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "site"
    args = ["bundle", str(photo), "-m", tiny_model_dir, "-o", str(out), "--with-encoder", "--no-web", "-q"]
    assert cli_main(args) == 0
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["orig_hw"] == [30, 40] and meta["name"] == "photo.png"
    assert (out / meta["encoder"]["file"]).is_file() and (out / meta["embedding"]).is_file()


def test_encoder_cost_agrees_with_the_graphs_products(tiny_model_dir):
    """encoder_gmacs against the exported graph itself: the multiply-accumulates of its MatMul,
    Gemm and Conv nodes from ONNX shape inference. The graph computes the relative-position terms
    with Einsum, which that count leaves out, so it must fall short of ours by their share only."""
    onnx = pytest.importorskip("onnx")
    model = onnx.shape_inference.infer_shapes(onnx.load(str(Path(tiny_model_dir) / "encoder.onnx")))
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info}
    shapes |= {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.output}
    shapes |= {t.name: list(t.dims) for t in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Gemm"):
            macs += int(np.prod(shapes[node.output[0]])) * shapes[node.input[0]][-1]
        elif node.op_type == "Conv":
            macs += int(np.prod(shapes[node.output[0]])) * int(np.prod(shapes[node.input[1]][1:]))
    ours = encoder_gmacs(get_variant("tiny").encoder_numbers) * 1e9
    assert 0.95 * ours < macs <= ours


def test_registry_costs_order_the_size_rule():
    """The figures the README and engine.ts state: SlimSAM-77 and -50 within wasm's 200 GMACs,
    ViT-B within WebGPU's 600, ViT-L and ViT-H beyond both."""
    names = ("vit_b", "vit_l", "vit_h")
    cost = {name: round(encoder_gmacs(get_variant(name).encoder_numbers), 1) for name in names}
    cost["slimsam_77"] = round(encoder_gmacs(EncoderNumbers(168, 12, 12, 696, (2, 5, 8, 11))), 1)
    cost["slimsam_50"] = round(encoder_gmacs(EncoderNumbers(384, 12, 12, 1536, (2, 5, 8, 11))), 1)
    assert cost == {"vit_b": 470.9, "vit_l": 1425.4, "vit_h": 2833.0, "slimsam_77": 45.8, "slimsam_50": 149.7}


def test_bundle_needs_an_image_or_the_encoder(tiny_model_dir, tmp_path, capsys):
    assert cli_main(["bundle", "-m", tiny_model_dir, "-o", str(tmp_path / "site"), "--no-web"]) == 2
    assert "expected an IMAGE, or --with-encoder" in capsys.readouterr().err
    with pytest.raises(InvalidInputError, match="an image with its embedding, or an encoder"):
        write_bundle(tmp_path / "site", None, None, web_decoder_paths(tiny_model_dir))
    assert not (tmp_path / "site").exists()


def test_a_model_folder_without_encoder_is_refused(tiny_model_dir, tmp_path, capsys):
    decoder_only = tmp_path / "decoder_only"
    decoder_only.mkdir()
    shutil.copyfile(Path(tiny_model_dir) / "decoder.onnx", decoder_only / "decoder.onnx")
    args = ["bundle", "-m", str(decoder_only), "-o", str(tmp_path / "site"), "--with-encoder", "--no-web"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert str(decoder_only) in err and "has no encoder.onnx" in err


def graph_with_metadata(path: Path, **metadata: str) -> Path:
    """A one-node ONNX graph (image -> image_embeddings) carrying ``metadata`` as metadata_props."""
    from onnx import TensorProto, helper, save

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 1024, 1024])
    out = helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT, [1, 3, 1024, 1024])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["image_embeddings"])], "g", [image], [out]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, metadata)
    save(model, str(path))
    return path


def test_encoders_the_page_cannot_run_are_refused(tiny_model_dir, tmp_path):
    pytest.importorskip("onnx")
    decoders = web_decoder_paths(tiny_model_dir)
    sha = decoder_identity(decoders["fp32"])["checkpoint_sha256"]
    big = tmp_path / "encoder.onnx"
    shutil.copyfile(Path(tiny_model_dir) / "encoder.onnx", big)
    (tmp_path / "encoder.onnx.data").write_bytes(b"\0")  # as ViT-H's weights beside its graph
    with pytest.raises(InvalidInputError, match=r"weights over 2 GiB in encoder\.onnx\.data"):
        web_encoder(big, decoders)
    sam2 = graph_with_metadata(tmp_path / "sam2.onnx", role="encoder", family="sam2", checkpoint_sha256=sha)
    with pytest.raises(InvalidInputError, match=r"a SAM v1 image encoder.*family 'sam2'"):
        web_encoder(sam2, decoders)
    other = graph_with_metadata(
        tmp_path / "other.onnx", role="encoder", family="sam", checkpoint_sha256="0" * 64
    )
    with pytest.raises(ModelLoadError, match="comes from checkpoint"):
        web_encoder(other, decoders)
