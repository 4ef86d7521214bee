"""Side-by-side speed of sam-onnx (a benchmark, not a test): one table, ratios first.

    python bench/speed.py MODEL_DIR --checkpoint CKPT.pth [--threads 1 2] [--repeats 3] [--json OUT.json]

Rows (each measured in its own subprocess, so its peak memory is its own):

* encoder, one 1024 x 1024 input: our PyTorch eager model; the plain export (with
  ``--checkpoint``: the same weights traced in the official layout, see
  :func:`export_official_layout`; without it ``encoder.onnx``) with onnxruntime's graph
  optimisation disabled, and as a plain export runs it ("basic": constant folding, no fusion) —
  the baseline every ratio is against; ``encoder.onnx`` with "basic" and with every onnxruntime
  optimisation ("all"); the fp16 and int8 graphs with "all"; beside it, with "all", the
  encoders of SlimSAM-77's and SlimSAM-50's shapes (random weights, exported here: only the
  shape sets the time); the engines as the runtime opens them (``SessionConfig``: memory arena
  off): onnxruntime's CPU provider on ``encoder.onnx`` and ``encoder.int8.onnx``, and OpenVINO
  (onnxruntime-openvino's provider) at f32 and bf16 on ``encoder.onnx`` and on the nncf int8
  encoder ``encoder.ov-int8.onnx`` when the export has one. One environment holds one
  onnxruntime wheel, so OpenVINO rows run in ``--openvino-python`` (another venv's python, with
  the ``[openvino]`` extra) unless this one has the provider;
* decoder, one click, single mask (the official contract with upscaling to the original size)
  at 480 x 640 and 1500 x 2250: the official layout (with ``--checkpoint``), ``decoder.onnx``
  and ``decoder.int8.onnx``, and the fast pair (``decoder_click.onnx`` on its per-image tensors,
  then the picked mask upscaled to a bool mask in numpy, as ``SamPredictor`` does), on
  onnxruntime's CPU provider and, as the runtime opens it in an ``[openvino]`` environment, on
  OpenVINO at f32 (an OpenVINO row, see below);
* predictor end to end (``SamPredictor``: read the image, embed, one click) on 480 x 640.

Each cell is the median over ``--repeats`` timed runs after one warm-up, with the min-max range.
With ``--rounds N`` every row runs N times in turn (a new process each time, rows interleaved so
that a slow minute does not land on one row); the cell pools the runs and the peak is the largest.
Ratios are against the plain fp32 encoder at the same thread count. ``--quality`` adds the
mask IoU of each reduced-precision encoder and engine against onnxruntime's CPU provider on the
fp32 encoder (the same fp32 decoder on CPU for both) over the reference kit's golden clicks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KIT = Path(__file__).resolve().parents[2] / "shared" / "sam_reference"
# Pruned encoders timed beside the export's: (width, depth, heads, MLP width, global blocks) of
# SlimSAM's published uniform checkpoints.
SHAPES = {
    "SlimSAM-77": (168, 12, 12, 696, (2, 5, 8, 11)),
    "SlimSAM-50": (384, 12, 12, 1536, (2, 5, 8, 11)),
}


# --- one measurement (runs in a subprocess) -------------------------------------------------------
def _session(path: Path, threads: int, level: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def measure(spec: dict) -> dict:
    """Run one row; returns times in ms and the process's peak RSS in MiB."""
    threads, repeats = spec["threads"], spec["repeats"]
    model_dir = Path(spec["model_dir"])
    kind = spec["kind"]
    rng = np.random.default_rng(0)
    if kind == "encoder-torch":
        import torch

        from sam_onnx.modeling import load_sam

        torch.set_num_threads(threads)
        model = load_sam(spec["checkpoint"]).eval()
        x = torch.from_numpy(rng.standard_normal((1, 3, 1024, 1024), dtype=np.float32))
        with torch.inference_mode():
            times = _timed(lambda: model.image_encoder(x), repeats)
    elif kind == "encoder-ort":
        session = _session(model_dir / spec["file"], threads, spec["level"])
        inp = session.get_inputs()[0]
        if "uint8" in inp.type:
            x = rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
        else:
            x = rng.standard_normal((1, 3, 1024, 1024), dtype=np.float32)
        times = _timed(lambda: session.run(None, {inp.name: x}), repeats)
    elif kind == "encoder-engine":
        from sam_onnx.runtime.core.session import engine_label, open_session

        config = _engine_config(spec, threads)
        session = open_session(model_dir / spec["file"], config, role="encoder")
        inp = session.get_inputs()[0]
        x = rng.standard_normal((1, 3, 1024, 1024), dtype=np.float32)
        times = _timed(lambda: session.run(None, {inp.name: x}), repeats)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"ms": times, "peak_mib": round(peak, 1), "engine": engine_label(session, config)}
    elif kind == "decoder":
        session = _session(model_dir / spec["file"], threads, "all")  # file may be absolute
        h, w = spec["hw"]
        feeds = _click_feeds(rng, h, w)
        times = _timed(lambda: session.run(None, feeds), repeats)
    elif kind == "fast-click":
        times = _fast_click(spec, model_dir, threads, repeats, rng)
    elif kind == "predictor":
        from sam_onnx.runtime import SamPredictor, SessionConfig

        predictor = SamPredictor.from_export(model_dir, config=SessionConfig(intra_op_threads=threads))
        image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        point, label = np.array([[320.0, 240.0]]), np.array([1])

        def run() -> None:
            emb = predictor.embed(image)
            predictor.predict(point, label, multimask_output=False, embedding=emb)

        times = _timed(run, repeats)
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"ms": times, "peak_mib": round(peak, 1)}


def _engine_config(spec: dict, threads: int):
    """The runtime's ``SessionConfig`` for an engine row (strict: a missing provider fails the row)."""
    from sam_onnx.runtime.core.session import SessionConfig

    precision = spec.get("openvino_precision", "auto")
    return SessionConfig(
        providers=(spec["provider"],), strict=True, intra_op_threads=threads, openvino_precision=precision
    )


def _fast_click(spec: dict, model_dir: Path, threads: int, repeats: int, rng) -> list[float]:
    """One click through the fast decoder pair as ``SamPredictor.predict`` runs it: the click
    graph (its per-image tensors computed once, untimed), then token 0 upscaled to a bool mask at
    the original size in numpy. Same random embedding and prompt as the ``decoder`` rows."""
    from sam_onnx.runtime.core.upscale import upscale_masks

    if "provider" in spec:  # as the runtime opens the pair (OpenVINO: f32, see session.py)
        from sam_onnx.runtime.core.session import open_session

        config = _engine_config(spec, threads)
        image = open_session(model_dir / spec["image"], config, role="decoder_image")
        click = open_session(model_dir / spec["file"], config, role="decoder_click")
    else:
        image = _session(model_dir / spec["image"], threads, "all")
        click = _session(model_dir / spec["file"], threads, "all")
    from sam_onnx.contract import POINT_COORDS, POINT_LABELS, PROMPT_INPUTS
    from sam_onnx.families import family_of

    rules = family_of(click.get_modelmeta().custom_metadata_map.get("family"), "decoder_click family")
    family = rules.name
    h, w = spec["hw"]
    feeds = _click_feeds(rng, h, w)
    image_feeds = {  # the family's image features (SAM 2 adds its high-res maps)
        t.name: feeds[t.name] if t.name in feeds else rng.standard_normal(t.shape, dtype=np.float32)
        for t in rules.features
    }
    if not rules.pad_without_box:  # its graphs append the padding point themselves
        for name in (POINT_COORDS, POINT_LABELS):
            feeds[name] = feeds[name][:, :1]
    names = [o.name for o in image.get_outputs()]
    tensors = dict(zip(names, image.run(None, image_feeds), strict=True))
    prompt = {k: feeds[k] for k in PROMPT_INPUTS}

    def run() -> None:
        low_res, _ = click.run(None, {**tensors, **prompt})
        upscale_masks(low_res[0, :1], (h, w), family)

    return _timed(run, repeats)


def _click_feeds(rng, h: int, w: int) -> dict[str, np.ndarray]:
    scale = 1024 / max(h, w)
    point = np.array([[[w * 0.4 * scale, h * 0.6 * scale], [0, 0]]], np.float32)
    return {
        "image_embeddings": rng.standard_normal((1, 256, 64, 64), dtype=np.float32),
        "point_coords": point,
        "point_labels": np.array([[1, -1]], np.float32),
        "mask_input": np.zeros((1, 1, 256, 256), np.float32),
        "has_mask_input": np.zeros(1, np.float32),
        "orig_im_size": np.array([h, w], np.float32),
    }


# --- the table ------------------------------------------------------------------------------------
BASELINE = "encoder ORT fp32, plain export (basic)"


def rows(files: dict[str, str]) -> list[dict]:
    """The table's rows. ``files``: graph key -> path, with ``official_encoder`` and
    ``official_decoder`` when :func:`export_official_layout` ran (else the plain baseline is
    ``encoder.onnx`` itself)."""
    plain = files.get("official_encoder", files["encoder"])
    out = [{"name": "encoder PyTorch eager fp32", "kind": "encoder-torch", "group": "encoder"}]
    encoders = [
        ("encoder ORT fp32, plain export, no graph optimisation", plain, "disabled"),
        (BASELINE, plain, "basic"),
    ]
    if "official_encoder" in files:
        encoders.append(("encoder ORT fp32, sam-onnx graph (basic)", files["encoder"], "basic"))
    encoders.append(("encoder ORT fp32, sam-onnx graph, all optimisations", files["encoder"], "all"))
    for shape in SHAPES:  # the file is exported by main() only when the row is selected
        label = f"encoder ORT fp32, sam-onnx graph, all optimisations, {shape} shape (random weights)"
        encoders.append((label, files.get(f"shape:{shape}", shape), "all"))
    for key, label in (("encoder_fp16", "fp16"), ("encoder_int8", "int8")):
        if key in files:
            encoders.append((f"encoder ORT {label} (all optimisations)", files[key], "all"))
    for name, file, level in encoders:
        out.append({"name": name, "kind": "encoder-ort", "file": file, "level": level})
    out += engine_rows(files)
    for key, label in (
        ("official_decoder", "fp32 official layout"),
        ("decoder", "fp32"),
        ("decoder_int8", "int8"),
    ):
        if key in files:
            for hw in ((480, 640), (1500, 2250)):
                name = f"decoder click {label} {hw[0]}x{hw[1]}"
                out.append({"name": name, "kind": "decoder", "file": files[key], "hw": hw})
    if "decoder_click" in files:  # the fast pair: click graph + numpy upscaling of the picked mask
        for engine in ("", "OpenVINO f32 "):
            for hw in ((480, 640), (1500, 2250)):
                name = f"decoder click fast pair {engine}{hw[0]}x{hw[1]}"
                row = {"name": name, "kind": "fast-click", "file": files["decoder_click"], "hw": hw}
                if engine:
                    row.update(provider="openvino", openvino_precision="f32", openvino=True)
                out.append({**row, "image": files["decoder_image"], "group": "decoder"})
    out.append({"name": "predictor: embed + click, 480x640", "kind": "predictor"})
    for r in out:
        r.setdefault("group", r["kind"].split("-")[0])
    return out


def engine_rows(files: dict[str, str]) -> list[dict]:
    """Encoder rows as the runtime opens them: onnxruntime CPU (fp32, int8), OpenVINO (f32, bf16
    on ``encoder.onnx``; its int8 graph when exported). OpenVINO rows carry ``"openvino": True``."""
    out = [{"name": "encoder runtime: ORT CPU fp32 (arena off)", "file": files["encoder"], "provider": "cpu"}]
    if "encoder_int8" in files:
        out.append({"name": "encoder runtime: ORT CPU int8 (arena off)", "file": files["encoder_int8"]})
        out[-1]["provider"] = "cpu"
    for precision in ("f32", "bf16"):
        name = f"encoder runtime: OpenVINO {precision}"
        out.append({"name": name, "file": files["encoder"], "openvino_precision": precision})
    if "encoder_ov_int8" in files:
        name = "encoder runtime: OpenVINO int8 (nncf, f32 elsewhere)"
        out.append({"name": name, "file": files["encoder_ov_int8"], "openvino_precision": "f32"})
    for row in out:
        row.update(kind="encoder-engine", group="encoder", openvino="openvino_precision" in row)
        row.setdefault("provider", "openvino")
    return out


def run_row(
    row: dict,
    threads: int,
    repeats: int,
    model_dir: Path,
    checkpoint: str | None,
    openvino_python: str | None = None,
) -> dict:
    """One row in a child process: ``openvino_python`` runs the OpenVINO rows (see the docstring)."""
    if row["kind"] == "encoder-torch" and not checkpoint:
        return {"skipped": "no --checkpoint"}
    python = sys.executable
    if row.get("openvino"):
        python = openvino_python or (sys.executable if _has_openvino() else "")
        if not python:
            return {"skipped": "no OpenVINO here; give --openvino-python"}
    spec = {
        **row,
        "threads": threads,
        "repeats": repeats,
        "model_dir": str(model_dir),
        "checkpoint": checkpoint,
    }
    proc = subprocess.run(
        [python, __file__, "--one", json.dumps(spec)], capture_output=True, text=True, timeout=3600
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def quality(model_dir: Path, files: dict[str, str], openvino_python: str | None = None) -> dict:
    """Mask IoU of each reduced-precision encoder and engine against onnxruntime CPU fp32 over the
    kit's golden clicks; the OpenVINO ones in ``openvino_python`` (as :func:`run_row`)."""
    specs = {r["name"].removeprefix("encoder runtime: "): r for r in engine_rows(files)}
    specs.pop("ORT CPU fp32 (arena off)")  # the reference itself
    if "encoder_fp16" in files:
        specs["ORT CPU fp16"] = {"file": files["encoder_fp16"], "provider": "cpu"}
    out = engine_quality(model_dir, {k: v for k, v in specs.items() if not v.get("openvino")})
    openvino = {k: v for k, v in specs.items() if v.get("openvino")}
    python = openvino_python or (sys.executable if _has_openvino() else None)
    if openvino and python:
        command = [python, __file__, str(model_dir), "--one-quality", json.dumps(openvino)]
        proc = subprocess.run(command, capture_output=True, text=True, check=True)
        out.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def engine_quality(model_dir: Path, specs: dict[str, dict]) -> dict:
    """IoU of the masks decoded (fp32 decoder, CPU) from each spec's embedding and from the fp32
    encoder's on onnxruntime CPU, single mask, over the kit's golden prompts."""
    from sam_onnx.runtime import SamPredictor, SessionConfig

    z = np.load(KIT / "golden" / "vit_b_seed0.npz")
    meta = json.loads(bytes(z["meta_json"]))
    fp32 = SamPredictor.from_export(model_dir, config=SessionConfig(providers=("cpu",)))
    out = {}
    for label, spec in specs.items():
        other = SamPredictor(model_dir / spec["file"], fp32.decoder.path, config=_engine_config(spec, 0))
        ious = []
        for image in meta["images"]:
            pixels = z[f"{image['name']}/image"]
            emb_a, emb_b = fp32.embed(pixels), other.embed(pixels)
            for case in image["cases"]:
                kwargs = {
                    "point_coords": np.array(case["points"]) if case["points"] else None,
                    "point_labels": np.array(case["labels"]) if case["labels"] else None,
                    "box": np.array(case["box"]) if case["box"] else None,
                    "multimask_output": False,
                }
                a = fp32.predict(**kwargs, embedding=emb_a).masks[0]
                b = fp32.predict(**kwargs, embedding=emb_b).masks[0]
                union = np.logical_or(a, b).sum()
                ious.append(float(np.logical_and(a, b).sum() / union) if union else 1.0)
        out[label] = {"mean_iou": float(np.mean(ious)), "min_iou": float(np.min(ious)), "cases": len(ious)}
        out[label]["engine"] = other.engine
    return out


def _has_openvino() -> bool:
    import onnxruntime

    return "OpenVINOExecutionProvider" in onnxruntime.get_available_providers()


def export_official_layout(checkpoint: str, out_dir: Path) -> dict[str, str]:
    """The encoder and the single-mask decoder traced in the official layout: qkv and proj on
    the padded windows (``Block.project_padding``), decoder projections on the image side
    (``DecoderGraph(factored=False)``). The plain exports every ratio is against."""
    from sam_onnx.export.decoder_graph import DecoderGraph
    from sam_onnx.export.encoder_graph import EncoderGraph
    from sam_onnx.export.onnx_file import save_model, simplify, trace_to_onnx
    from sam_onnx.modeling import load_sam

    sam = load_sam(checkpoint).eval()
    for block in sam.image_encoder.blocks:
        block.project_padding = True
    wrappers = {
        "official_encoder": EncoderGraph(sam),
        "official_decoder": DecoderGraph(sam, return_single_mask=True, factored=False),
    }
    files = {}
    for key, wrapper in wrappers.items():
        model = trace_to_onnx(wrapper, opset=17, scratch_dir=out_dir)
        path = out_dir / f"{key}.onnx"
        save_model(simplify(model)[0], path)
        files[key] = str(path)
    return files


def export_shape_encoders(shapes: list[str], out_dir: Path) -> dict[str, str]:
    """``encoder.onnx`` of a random-weights model of each named :data:`SHAPES` entry, as
    ``sam-export`` writes it (traced, simplified; not validated)."""
    from sam_onnx.export.encoder_graph import EncoderGraph
    from sam_onnx.export.onnx_file import save_model, simplify, trace_to_onnx
    from sam_onnx.modeling.random_weights import random_sam
    from sam_onnx.variants import EncoderNumbers, variant_from_numbers

    files = {}
    for shape in shapes:
        sam = random_sam(variant_from_numbers(EncoderNumbers(*SHAPES[shape])))
        model = trace_to_onnx(EncoderGraph(sam), opset=17, scratch_dir=out_dir)
        path = out_dir / f"encoder_{shape}.onnx"
        save_model(simplify(model)[0], path)
        files[f"shape:{shape}"] = str(path)
    return files


def _pool(results: dict[str, dict], key: str, one: dict) -> None:
    """Add one run of a row to ``results[key]``: times pooled, the largest peak kept."""
    before = results.get(key)
    if before is None or "ms" not in before or "ms" not in one:
        results[key] = one if before is None or "ms" not in before else before
        return
    before["ms"] += one["ms"]
    before["peak_mib"] = max(before["peak_mib"], one["peak_mib"])


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime

    versions = f"Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}"
    return f"{cpu}, {os.cpu_count()} cores, {versions}"


def fmt(result: dict) -> str:
    if "ms" not in result:
        return result.get("skipped") or f"error: {result.get('error')}"
    ms = result["ms"]
    return f"{statistics.median(ms):9.1f} ms ({min(ms):.0f}-{max(ms):.0f})"


def table_cells(table: list[dict], results: dict, threads: list[int]) -> list[list[tuple[str, str, str]]]:
    """Per row, per thread count: (time, ratio to the plain fp32 encoder, peak MiB); a decoder
    click's ratio is to the official layout's click at the same size."""
    cells = []
    for row in table:
        line = []
        for t in threads:
            r = results[f"{row['name']} @{t}t"]
            base = results.get(f"{BASELINE} @{t}t", {})
            if "hw" in row:
                official = f"decoder click fp32 official layout {row['hw'][0]}x{row['hw'][1]}"
                base = results.get(f"{official} @{t}t", {})
            ratio = ""
            if (row["group"] == "encoder" or "hw" in row) and "ms" in r and "ms" in base:
                ratio = f"{statistics.median(base['ms']) / statistics.median(r['ms']):.2f}x"
            line.append((fmt(r).strip(), ratio, str(r.get("peak_mib", ""))))
        cells.append(line)
    return cells


def _bench(args, files: dict[str, str], scratch: Path) -> None:
    """The table: exports into ``scratch`` (child processes), every row, the report."""
    if args.checkpoint:  # in a child process, so that this one's peak memory stays small
        proc = subprocess.run(
            [sys.executable, __file__, "--export-official", str(scratch), "--checkpoint", args.checkpoint],
            capture_output=True,
            text=True,
            check=True,
        )
        files.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    table = [r for r in rows(files) if not args.only or any(o in r["name"] for o in args.only)]
    shapes = [shape for shape in SHAPES if any(r.get("file") == shape for r in table)]
    if shapes:  # in a child process too; its files replace the rows' placeholders
        proc = subprocess.run(
            [sys.executable, __file__, "--export-shapes", str(scratch), "--one-shapes", *shapes],
            capture_output=True,
            text=True,
            check=True,
        )
        files.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        table = [r for r in rows(files) if not args.only or any(o in r["name"] for o in args.only)]
    print(f"machine: {machine()}")
    if args.openvino_python:  # its own onnxruntime wheel
        version = "import onnxruntime; print(onnxruntime.__version__)"
        ov = subprocess.run([args.openvino_python, "-c", version], capture_output=True, text=True)
        print(f"OpenVINO rows: onnxruntime-openvino {ov.stdout.strip()} ({args.openvino_python})")
    results: dict[str, dict] = {}
    for _ in range(args.rounds):
        for threads in args.threads:
            for row in table:
                repeats = args.decoder_repeats if row["kind"] in ("decoder", "fast-click") else args.repeats
                one = run_row(row, threads, repeats, args.model_dir, args.checkpoint, args.openvino_python)
                _pool(results, f"{row['name']} @{threads}t", one)
    cells = table_cells(table, results, args.threads)
    name_w = max(len(r["name"]) for r in table) + 2
    header = "".join(f"{f'{t} thread(s)':>26s}{'vs plain':>10s}{'peak MiB':>10s}" for t in args.threads)
    print(f"{'':{name_w}s}{header}")
    for row, line in zip(table, cells, strict=True):
        print(
            f"{row['name']:{name_w}s}" + "".join(f"{a:>26s}{b:>10s}{c:>10s}" for a, b, c in line), flush=True
        )
    if args.markdown:
        head = "| | " + " | ".join(f"{t} thread(s) | vs plain | peak MiB" for t in args.threads) + " |"
        lines = [head, "|---" * (1 + 3 * len(args.threads)) + "|"]
        for row, line in zip(table, cells, strict=True):
            lines.append(f"| {row['name']} | " + " | ".join(" | ".join(c) for c in line) + " |")
        args.markdown.write_text("\n".join(lines) + "\n")
    report = {"machine": machine(), "threads": args.threads, "results": results}
    if args.quality:
        report["quality"] = quality(args.model_dir, files, args.openvino_python)
        for precision, q in report["quality"].items():
            print(
                f"mask IoU {precision} vs ORT CPU fp32 encoder: mean {q['mean_iou']:.4f},"
                f" min {q['min_iou']:.4f} over {q['cases']} golden prompts"
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path, nargs="?")
    p.add_argument("--checkpoint", help="the .pth the export came from (for the PyTorch row)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--decoder-repeats", type=int, default=30)
    p.add_argument("--only", nargs="+", help="rows whose name contains one of these texts")
    p.add_argument(
        "--quality", action="store_true", help="also mask IoU of fp16/int8 vs fp32 (reference kit)"
    )
    p.add_argument(
        "--openvino-python", help="python of a venv with the [openvino] extra: runs the OpenVINO rows"
    )
    p.add_argument("--rounds", type=int, default=1, help="run every row this many times, interleaved")
    p.add_argument("--json", type=Path, help="write every figure here")
    p.add_argument("--markdown", type=Path, help="write the table as markdown here")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--one-quality", help=argparse.SUPPRESS)
    p.add_argument("--one-shapes", nargs="*", help=argparse.SUPPRESS)
    p.add_argument("--export-official", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--export-shapes", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(json.loads(args.one))))
        return
    if args.one_quality:
        print(json.dumps(engine_quality(args.model_dir, json.loads(args.one_quality))))
        return
    if args.export_official:
        print(json.dumps(export_official_layout(args.checkpoint, args.export_official)))
        return
    if args.export_shapes:
        print(json.dumps(export_shape_encoders(args.one_shapes, args.export_shapes)))
        return
    if args.model_dir is None:
        p.error("MODEL_DIR is required")
    files = {
        k: v["file"] for k, v in json.loads((args.model_dir / "export.json").read_text())["graphs"].items()
    }
    scratch = Path(tempfile.mkdtemp(prefix="sam-bench-"))
    try:  # the official-layout export is ~370 MB: gone even when a row fails or ^C stops the run
        _bench(args, files, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
