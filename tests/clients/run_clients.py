"""Runs AnyLabeling's and samexporter's own SAM code on an export in samexporter's layout.

Test-only, never shipped; run by tests/test_clients.py with the Python of a separate environment
that has ``anylabeling==0.4.43`` and ``samexporter==0.5.0`` (and their onnxruntime), never
torch or sam_onnx. Their code is used unmodified: AnyLabeling's ``SegmentAnything`` model class
loaded from the export's ``config.yaml`` (its Qt imports need a Qt platform: offscreen), and
samexporter's ``SegmentAnythingONNX`` / ``SegmentAnything2ONNX``.

    python run_clients.py JOB.npz OUT.npz

JOB.npz: ``family`` (``sam`` or ``sam2``), ``export_dir``, ``prompts_json`` (image -> case ->
marks, AnyLabeling's prompt format), and per image ``<img>/image`` (RGB) and our features
(``<img>/<name>``: ``image_embeddings`` and for SAM 2 ``high_res_feats_0``, ``high_res_feats_1``).
OUT.npz: ``<client>/<mode>/<img>/<case>`` bool H x W masks (logit > 0, as both clients threshold),
mode ``own`` (the client's encode and decode), ``our_features`` (the client's decode on our
features: what its prompt handling and mask post-processing cost alone) and, for AnyLabeling's
SAM 2, ``bgr_input`` (its encode handed BGR: what its channel swap costs), and
``anylabeling/shapes/<img>/<case>``: how many polygons the app's predict_shapes made.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import cv2
import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(job_path: str, out_path: str) -> None:
    job = dict(np.load(job_path, allow_pickle=False))
    family = str(job["family"])
    export_dir = str(job["export_dir"])
    prompts = json.loads(str(job["prompts_json"]))
    encoder, decoder = (os.path.join(export_dir, f) for f in ("encoder.onnx", "decoder.onnx"))
    out: dict[str, np.ndarray] = {}

    app = load_custom_model(os.path.join(export_dir, "config.yaml"))
    if family == "sam":
        from samexporter.sam_onnx import SegmentAnythingONNX as Samexporter
    else:
        from samexporter.sam2_onnx import SegmentAnything2ONNX as Samexporter
    samexporter = Samexporter(encoder, decoder, providers="cpu")

    for image_name, cases in prompts.items():
        rgb = job[f"{image_name}/image"]
        hw = rgb.shape[:2]
        anylabeling_own = app.model.encode(rgb)  # the app hands its models RGB
        samexporter_own = samexporter.encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))  # cv2.imread's BGR
        ours = our_embedding(family, job, image_name, hw)
        embeddings = {
            ("anylabeling", "own"): (app.model, anylabeling_own),
            ("samexporter", "own"): (samexporter, samexporter_own),
            ("samexporter", "our_features"): (samexporter, {**samexporter_own, **ours}),
        }
        if family == "sam2":  # SAM v1's app frame (its 684 x 1024 canvas) is not ours: no swap there
            embeddings["anylabeling", "our_features"] = (app.model, {**anylabeling_own, **ours})
            # The app hands SegmentAnything2ONNX RGB, which converts "BGR" to RGB: the encoder sees
            # the channels reversed. Fed BGR, the class sees RGB: what the swap alone costs.
            bgr = app.model.encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            embeddings["anylabeling", "bgr_input"] = (app.model, bgr)
        for case, marks in cases.items():
            for (client, mode), (model, embedding) in embeddings.items():
                masks = model.predict_masks(embedding, marks)
                out[f"{client}/{mode}/{image_name}/{case}"] = first_mask(masks) > 0.0
            out[f"anylabeling/shapes/{image_name}/{case}"] = np.array(count_shapes(app, rgb, marks))
    np.savez_compressed(out_path, **out)


def load_custom_model(config_file: str):
    """What AnyLabeling's ModelManager.load_custom_model and _load_model do with a config.yaml,
    less the Qt thread and the user-settings file: read it, add ``config_file``, check the keys
    the manager checks, build the registered model class of its ``type``."""
    import yaml
    from anylabeling.services.auto_labeling.registry import ModelRegistry

    with open(config_file, encoding="utf-8-sig") as f:
        config = yaml.safe_load(f)
    config["config_file"] = os.path.abspath(config_file)
    missing = [key for key in ("type", "display_name", "name") if key not in config]
    if missing or config["type"] != "segment_anything":
        raise ValueError(f"AnyLabeling refuses {config_file}: missing {missing}, type {config.get('type')}")
    import anylabeling.services.auto_labeling.segment_anything  # noqa: F401  (registers the type)

    app = ModelRegistry.get(config["type"])(config, on_message=print)
    app.set_output_mode("polygon")
    return app


def our_embedding(family: str, job, image_name: str, hw) -> dict:
    """Our features in the client's embedding dict (its keys)."""
    if family == "sam":
        return {"image_embedding": job[f"{image_name}/image_embeddings"]}
    return {
        "image_embedding": job[f"{image_name}/image_embeddings"],
        "high_res_feats_0": job[f"{image_name}/high_res_feats_0"],
        "high_res_feats_1": job[f"{image_name}/high_res_feats_1"],
    }


def first_mask(masks: np.ndarray) -> np.ndarray:
    """The mask the app keeps: the first of every leading axis (predict_shapes' loop)."""
    while masks.ndim > 2:
        masks = masks[0]
    return masks


def count_shapes(app, rgb: np.ndarray, marks) -> int:
    """The app's own predict_shapes on the image read from a file, as it reads it: polygons made."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "image.png")
        cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        app.set_auto_labeling_marks(marks)
        app.image_embedding_cache.clear()
        result = app.predict_shapes(object(), filename=path)
    return len(result.shapes)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
