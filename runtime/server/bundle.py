"""Static bundles for the web demo: an image, its embedding and the decoder graphs in one folder.

``sam-onnx bundle`` writes::

    OUT/bundle.json        {"format": "sam-onnx-bundle", "version": 1, "name", "image", "embedding",
                            "orig_hw": [H, W], "input_hw": [h, w], "variant", "checkpoint_sha256",
                            "family": "sam" | "sam2", "resize": "long_side" | "square",
                            "features": {"image_embeddings": "embedding.npy"[, "high_res_feats_0":
                                         "embedding.high_res_feats_0.npy", "high_res_feats_1": ...]},
                            "decoders": {"fp32": "decoder.onnx"[, "int8": "decoder.int8.onnx"]},
                            "random_weights": true | false}
    OUT/image.png          the image as the encoder saw it (EXIF orientation applied)
    OUT/embedding*.npy, embedding.json  the embedding (see :mod:`.embedding`); a SAM 2 one has the
                            two high-res feature maps beside ``embedding.npy``
    OUT/decoder*.onnx      the official-contract decoder graphs (SAM 2: its extension)
    OUT/decoder_image.onnx, decoder_click.onnx  the fast decoder pair, when the export has it

``family`` and ``resize`` are the decoders' metadata: they tell the page which contract to feed
(SAM 2: three image features, the square 1024 frame, no padding point from the page).
``features`` names each image-feature input of the decoder and the float32 ``.npy`` file that
holds it; the page reads exactly these. Bundles written before SAM 2 lack ``family``, ``resize``
and ``features`` and are SAM v1 with ``embedding`` as ``image_embeddings``. ``random_weights`` is
true when the decoders were exported from a checkpoint of random weights (their metadata says
``weights`` = ``random``, see :mod:`sam_onnx.modeling.random_weights`): the page says so, since
such masks ignore the click; older bundles lack it (false).
    OUT/index.html, assets/  the built page (``sam-onnx bundle`` refuses to go on without one unless
                            told ``--no-web``), so OUT is a complete static site

With ``--with-encoder`` the page also embeds the person's own images itself, offline: the export's
fp32 SAM v1 encoder is copied to ``OUT/encoder.onnx`` and ``bundle.json`` gains::

    "encoder": {"file": "encoder.onnx", "input": "image" | "resized_image", "gmacs": 45.2,
                "bytes": N, "variant", "checkpoint_sha256"}

``gmacs`` (:func:`encoder_gmacs`, multiply-accumulates per image, in billions) is what the page's
size rule reads. Such a bundle may leave the image out (a page-only bundle): then ``name``,
``image``, ``embedding``, ``orig_hw``, ``input_hw`` and ``features`` are absent.

When the export has the fast decoder pair (:func:`.fast_decoder.fast_decoder_paths`) the bundle
carries it (``sam-onnx bundle --no-fast-decoder`` leaves it out) and ``bundle.json`` gains::

    "fast_decoder": {"image": "decoder_image.onnx", "click": "decoder_click.onnx"}

The page then runs ``image`` once per image and ``click`` per prompt (all four low-res tokens),
picks the single-mask token and upscales only that mask itself. Both graphs must come from the
decoders' checkpoint (:class:`ModelMismatchError` otherwise). ``decoders`` is in every bundle: the
page falls back to ``decoder.onnx`` without the pair, and runs it for the other precisions.

The page opens ``bundle.json`` next to it (or ``?bundle=URL``). Any static server will do; one
that sends COOP/COEP headers (``sam-onnx serve --bundle OUT``) gives the page its wasm threads.
The folder is assembled in a hidden sibling ``.<name>.sam-bundle-<pid>-*`` and swapped into place
by :mod:`sam_onnx.atomic`, so it is never half written; an existing bundle at ``OUT`` is replaced,
any other non-empty folder is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from sam_onnx import atomic
from sam_onnx.errors import InvalidInputError, OutputWriteError
from sam_onnx.families import DEFAULT_FAMILY, FAMILIES, family_of
from sam_onnx.variants import EncoderNumbers, get_variant

from ..core.embedding import ImageEmbedding, feature_paths

FORMAT = "sam-onnx-bundle"
FORMAT_VERSION = 1
RANDOM_WEIGHTS = "random"  # graph metadata "weights" of an export of random weights
STAGING_MARK = ".sam-bundle-"  # staging siblings: .<name>.sam-bundle-<pid>-*
WEB_ENV = "SAM_ONNX_WEB"


# The page inside an installed wheel (setup.py copies demo_web/dist there), and in a checkout.
PACKAGED_WEB_DIR = Path(__file__).resolve().parent.parent / "web"  # sam_onnx/runtime/web
CHECKOUT = Path(__file__).resolve().parents[2]


def default_web_dir() -> Path | None:
    """The built page: ``$SAM_ONNX_WEB``, else the one packaged in the installed wheel, else
    ``demo_web/dist`` of the source checkout (an editable install); None if none is built."""
    candidates = [Path(os.environ[WEB_ENV])] if os.environ.get(WEB_ENV) else []
    candidates += [PACKAGED_WEB_DIR, CHECKOUT / "demo_web" / "dist"]
    return next((p for p in candidates if (p / "index.html").is_file()), None)


def build_page_hint() -> str:
    """The command that gives this installation its page (the wheel carries it when npm was there)."""
    if (CHECKOUT / "demo_web" / "package.json").is_file():
        return f"build it once: cd {CHECKOUT / 'demo_web'} && npm ci && npm run build"
    return (
        "this installation was built without it (npm was missing); with Node 20 + npm on PATH, "
        f"reinstall from the clone: {sys.executable} -m pip install --force-reinstall --no-deps CLONE_DIR"
    )


def check_web_dir(web_dir: Path) -> Path:
    if not (web_dir / "index.html").is_file():
        raise InvalidInputError(
            f"web folder {str(web_dir)!r}",
            "the built page (index.html; build it with: cd demo_web && npm ci && npm run build)",
            "no index.html there",
        )
    return web_dir


def write_bundle(
    out_dir: str | os.PathLike[str],
    image: np.ndarray | None,
    embedding: ImageEmbedding | None,
    decoders: dict[str, Path],
    *,
    name: str = "image",
    web_dir: Path | None = None,
    encoder: Path | None = None,
    fast_decoder: tuple[Path, Path] | None = None,
) -> Path:
    """Write a bundle folder (see the module doc); returns the path of its ``bundle.json``.

    ``image`` is ``H x W x 3`` uint8 RGB, ``embedding`` its embedding, ``decoders`` maps a
    precision to a decoder graph whose checkpoint must be the embedding's. ``encoder``: a SAM v1
    encoder graph for the page (from the decoders' checkpoint); with one, ``image`` and
    ``embedding`` may both be None (a page-only bundle). ``fast_decoder``: the export's
    ``(decoder_image.onnx, decoder_click.onnx)`` (``fast_decoder_paths``), from the decoders' checkpoint.
    """
    out_dir = Path(out_dir)
    family = decoders_family(decoders)
    random_weights = decoders_random_weights(decoders)
    if (image is None) != (embedding is None) or (image is None and encoder is None):
        raise InvalidInputError(
            "bundle contents",
            "an image with its embedding, or an encoder for the page (or both)",
            f"image {'none' if image is None else 'given'}, embedding "
            f"{'none' if embedding is None else 'given'}, encoder {'none' if encoder is None else 'given'}",
        )
    if embedding is not None:
        _check_embedding(image, embedding, decoders, family)
    encoder_meta = web_encoder(encoder, decoders) if encoder is not None else None
    fast_meta = web_fast_decoder(fast_decoder, decoders) if fast_decoder is not None else None
    _check_target(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    atomic.sweep_stale(out_dir, STAGING_MARK)
    staging = atomic.make_staging(out_dir, STAGING_MARK)
    try:
        if web_dir is not None:
            shutil.copytree(check_web_dir(web_dir), staging, dirs_exist_ok=True)
        meta = {"format": FORMAT, "version": FORMAT_VERSION}
        if embedding is not None:
            meta.update(_write_image(staging, image, embedding, name))
        else:
            meta.update({k: encoder_meta[k] for k in ("variant", "checkpoint_sha256")})
        files = {}
        for precision, path in decoders.items():
            files[precision] = path.name
            shutil.copyfile(path, staging / path.name)
        meta.update(family)
        meta["decoders"] = files
        meta["random_weights"] = random_weights
        if fast_meta is not None:
            for path in fast_decoder:
                shutil.copyfile(path, staging / path.name)
            meta["fast_decoder"] = fast_meta
        if encoder_meta is not None:
            shutil.copyfile(encoder, staging / encoder_meta["file"])
            meta["encoder"] = encoder_meta
        (staging / "bundle.json").write_text(json.dumps(meta, indent=1))
        staging.chmod(0o755)
        atomic.swap_in(staging, out_dir)  # the earlier bundle, if any, is now at `staging`
        shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        why = exc.strerror or str(exc)
        raise OutputWriteError(
            out_dir, f"{why} (disk full or file size limit?); nothing was changed"
        ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir / "bundle.json"


def _check_embedding(
    image: np.ndarray, embedding: ImageEmbedding, decoders: dict[str, Path], family: dict[str, str]
) -> None:
    from ..core.graphs import check_decoders_belong, decoder_identity

    if image.shape[:2] != embedding.orig_hw:
        (h, w), (emb_h, emb_w) = image.shape[:2], embedding.orig_hw
        raise InvalidInputError(
            "embedding",
            f"the embedding of this image ({h} x {w} pixels, H x W)",
            f"the embedding of an image of {emb_h} x {emb_w} pixels",
        )
    check_decoders_belong(decoders, embedding.checkpoint_sha256, "the embedding")
    if embedding.rules is not family_of(family["family"]):
        wanted = f"an embedding of the decoders' family {family['family']!r}"
        raise InvalidInputError("embedding", wanted, repr(embedding.family))
    variant = decoder_identity(decoders["fp32"]).get("variant")
    if embedding.variant != variant:  # one checkpoint, two variants: a sidecar edited or mixed up
        wanted = f"one of the decoders' variant {variant!r} (sha256 {embedding.checkpoint_sha256[:12]}…)"
        raise InvalidInputError(
            "embedding", wanted, f"one that claims {embedding.variant!r} for that checkpoint"
        )


def _write_image(staging: Path, image: np.ndarray, embedding: ImageEmbedding, name: str) -> dict:
    """Write the image and its embedding into ``staging``; returns their ``bundle.json`` entries."""
    Image.fromarray(image).save(staging / "image.png")
    npy, _ = embedding.save(staging / "embedding.npy", image=name)
    return {
        "name": name,
        "image": "image.png",
        "embedding": "embedding.npy",
        **{k: v for k, v in embedding.metadata().items() if k not in ("format", "version")},
        "features": feature_files(embedding, npy),
    }


def web_encoder(encoder: Path, decoders: dict[str, Path]) -> dict:
    """``bundle.json``'s ``encoder`` entry for an encoder graph the page will run (see the module
    doc). Refuses, with :class:`InvalidInputError`, a SAM 2 encoder (the page preprocesses as SAM
    v1 does), an encoder with external weights (over 2 GiB: no browser engine takes it) and one
    from another checkpoint than ``decoders`` (:class:`ModelMismatchError`)."""
    from ..core.graphs import Graph, check_decoders_belong
    from ..core.session import SessionConfig

    external = encoder.with_name(encoder.name + ".data")
    if external.exists():
        raise InvalidInputError(
            f"encoder {str(encoder)!r}",
            "a graph in one file (the page runs encoders up to about ViT-B)",
            f"weights over 2 GiB in {external.name}",
        )
    meta = Graph.open(encoder, SessionConfig(), role="encoder").metadata
    family = FAMILIES.get(meta.get("family", DEFAULT_FAMILY.name))
    if meta.get("role", "encoder") != "encoder" or family is None or not family.page_encoder:
        what = f"role {meta.get('role')!r}, family {meta.get('family', DEFAULT_FAMILY.name)!r}"
        runs = " or ".join(f.label for f in FAMILIES.values() if f.page_encoder)
        raise InvalidInputError(f"encoder {str(encoder)!r}", f"a {runs} image encoder", what)
    check_decoders_belong(decoders, meta.get("checkpoint_sha256", ""), "the encoder")
    numbers = encoder_numbers(meta)
    return {
        "file": "encoder.onnx",
        "input": "resized_image" if meta.get("encoder_input") == "uint8" else "image",
        "gmacs": round(encoder_gmacs(numbers), 1),
        "bytes": encoder.stat().st_size,
        "variant": meta.get("variant", ""),
        "checkpoint_sha256": meta.get("checkpoint_sha256", ""),
    }


def web_fast_decoder(paths: tuple[Path, Path], decoders: dict[str, Path]) -> dict[str, str]:
    """``bundle.json``'s ``fast_decoder`` entry for the pair ``paths`` (image graph, click graph):
    ``{"image": name, "click": name}``. Raises :class:`ModelMismatchError` unless each graph is its
    role of the pair and comes from the checkpoint of every decoder in ``decoders``."""
    from ..core.fast_decoder import FastDecoder
    from ..core.graphs import check_decoders_belong
    from ..core.session import SessionConfig

    pair = FastDecoder.open_unchecked(paths, SessionConfig())
    for graph in (pair.image, pair.click):
        owner = f"the fast decoder {graph.path.name}"
        check_decoders_belong(decoders, graph.metadata["checkpoint_sha256"], owner)
    return {"image": pair.image.path.name, "click": pair.click.path.name}


def encoder_numbers(meta: dict[str, str]) -> EncoderNumbers:
    """The ViT numbers of an encoder graph, from its metadata (exports that predate them: from the
    variant name)."""
    if "encoder_embed_dim" not in meta:
        return get_variant(meta.get("variant", "")).encoder_numbers
    return EncoderNumbers(
        int(meta["encoder_embed_dim"]),
        int(meta["encoder_depth"]),
        int(meta["encoder_num_heads"]),
        int(meta["encoder_mlp_dim"]),
        tuple(json.loads(meta["encoder_global_attn_indexes"])),
        int(meta["encoder_window_size"]),
    )


def encoder_gmacs(n: EncoderNumbers, image_size: int = 1024, patch: int = 16) -> float:
    """Multiply-accumulates of one SAM v1 encoder run, in billions: the patch embedding, per block
    the q/k/v and output projections and the MLP (on the real tokens, as our graph computes them),
    the attention products with their relative-position terms (over the padded windows), and the
    neck (1x1 to 256 channels, then 3x3). Norms, softmax and additions are left out."""
    grid = image_size // patch
    tokens = grid * grid

    def attention(side: int, windows: int) -> int:  # q.k, attn.v, and q against the h and w tables
        t = side * side
        return windows * (2 * t * t * n.width + 2 * t * side * n.width)

    per_block = tokens * (4 * n.width * n.width + 2 * n.width * n.mlp)
    windowed = attention(n.window, (-(-grid // n.window)) ** 2)
    global_blocks = len(n.global_blocks)
    blocks = n.depth * per_block + global_blocks * attention(grid, 1) + (n.depth - global_blocks) * windowed
    stem_and_neck = tokens * n.width * (patch * patch * 3 + 256) + tokens * 256 * 256 * 9
    return (blocks + stem_and_neck) / 1e9


def decoders_family(decoders: dict[str, Path]) -> dict[str, str]:
    """``{"family", "resize"}`` of the web decoders (from the fp32 graph's metadata; graphs
    exported before SAM 2 say neither and are SAM v1, resized to the long side)."""
    from ..core.graphs import decoder_identity

    meta = decoder_identity(decoders["fp32"])
    family = family_of(meta.get("family"), f"decoder {str(decoders['fp32'])!r} family")
    return {"family": family.name, "resize": meta.get("resize", family.resize)}


def decoders_random_weights(decoders: dict[str, Path]) -> bool:
    """Whether the web decoders come from a checkpoint of random weights (the fp32 graph's metadata
    says ``weights`` = ``random``; exports of any other checkpoint have no ``weights`` key)."""
    from ..core.graphs import decoder_identity

    return decoder_identity(decoders["fp32"]).get("weights") == RANDOM_WEIGHTS


def feature_files(embedding: ImageEmbedding, npy: Path) -> dict[str, str]:
    """Decoder input name -> file name of each image feature, as ``embedding.save(npy)`` wrote them."""
    files = feature_paths(npy, embedding.rules)
    return {name: path.name for name, path in zip(embedding.decoder_inputs(), files, strict=True)}


def _check_target(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError(f"bundle folder {str(out_dir)!r}", "a folder (or nothing)", "a file")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "bundle.json").is_file():
        raise InvalidInputError(
            f"bundle folder {str(out_dir)!r}", "a new or empty folder, or an earlier bundle", "other files"
        )
