"""Runs AnyLabeling's and samexporter's own SAM code on an export in samexporter's layout.

Test-only, never shipped; run by tests/test_clients.py with the Python of a separate environment
that has ``anylabeling==0.4.43`` and ``samexporter==0.5.0`` (and their onnxruntime), never
torch or sam_onnx. Their code is used unmodified: AnyLabeling's ``SegmentAnything`` model class
loaded from the export's ``config.yaml`` (its Qt imports need a Qt platform: offscreen), and
samexporter's ``SegmentAnythingONNX`` / ``SegmentAnything2ONNX``.

    python run_clients.py JOB.npz OUT.npz

Both families run in this one process (the clients' imports and Qt start once). JOB.npz:
``families_json`` (family -> ``export_dir`` and ``prompts``: image -> case -> marks, AnyLabeling's
prompt format), and per family and image ``<family>/<img>/image`` (RGB) and, where the test has
them, our features (``<family>/<img>/<name>``: SAM 2's ``image_embeddings``, ``high_res_feats_0``,
``high_res_feats_1``). OUT.npz, every key under ``<family>/``: ``<client>/<mode>/<img>/<case>``
bool H x W masks (logit > 0, as both clients threshold), mode ``own`` (the client's encode and
decode; AnyLabeling's encode is the one its ``predict_shapes`` makes from the image file at the
first click, then cached as in the app), ``our_features`` (the client's decode on our features:
what its prompt handling and mask post-processing cost alone) and, for AnyLabeling's SAM 2,
``bgr_input`` (its encode handed BGR: what its channel swap costs);
``anylabeling/shapes/<img>/<case>``: how many polygons the app's ``predict_shapes`` made;
``samexporter/features/<img>/<key>``: samexporter's own encode of the image (its embedding dict's
arrays).
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
    out: dict[str, np.ndarray] = {}
    for family, spec in json.loads(str(job["families_json"])).items():
        features = {k.split("/", 1)[1]: v for k, v in job.items() if k.startswith(f"{family}/")}
        results = run_family(family, spec["export_dir"], spec["prompts"], features)
        out.update({f"{family}/{key}": value for key, value in results.items()})
    np.savez_compressed(out_path, **out)


def run_family(family: str, export_dir: str, prompts: dict, job: dict) -> dict[str, np.ndarray]:
    encoder, decoder = (os.path.join(export_dir, f) for f in ("encoder.onnx", "decoder.onnx"))
    app = load_custom_model(os.path.join(export_dir, "config.yaml"))
    if family == "sam":
        from samexporter.sam_onnx import SegmentAnythingONNX as Samexporter
    else:
        from samexporter.sam2_onnx import SegmentAnything2ONNX as Samexporter
    samexporter = Samexporter(encoder, decoder, providers="cpu")
    out: dict[str, np.ndarray] = {}
    for image_name, cases in prompts.items():
        rgb = job[f"{image_name}/image"]
        with tempfile.TemporaryDirectory() as tmp:
            image_file = os.path.join(tmp, "image.png")
            cv2.imwrite(image_file, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            shapes = {case: app_shapes(app, image_file, marks) for case, marks in cases.items()}
            anylabeling_own = app.image_embedding_cache.get(image_file)  # the app's own encode
        samexporter_own = samexporter.encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))  # cv2.imread's BGR
        embeddings = {
            ("anylabeling", "own"): (app.model, anylabeling_own),
            ("samexporter", "own"): (samexporter, samexporter_own),
        }
        ours = our_features(job, image_name)
        if ours:
            embeddings["samexporter", "our_features"] = (samexporter, {**samexporter_own, **ours})
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
            out[f"anylabeling/shapes/{image_name}/{case}"] = np.array(shapes[case])
        for key, value in samexporter_own.items():
            if isinstance(value, np.ndarray):
                out[f"samexporter/features/{image_name}/{key}"] = value
    return out


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


def our_features(job: dict, image_name: str) -> dict:
    """Our features of an image, if the job has them, in the client's embedding dict (its keys)."""
    keys = {"image_embeddings": "image_embedding", "high_res_feats_0": "high_res_feats_0"}
    keys["high_res_feats_1"] = "high_res_feats_1"
    return {keys[name]: job[f"{image_name}/{name}"] for name in keys if f"{image_name}/{name}" in job}


def first_mask(masks: np.ndarray) -> np.ndarray:
    """The mask the app keeps: the first of every leading axis (predict_shapes' loop)."""
    while masks.ndim > 2:
        masks = masks[0]
    return masks


def app_shapes(app, image_file: str, marks) -> int:
    """The app's own predict_shapes on the image file, as a click in the app runs it (the first
    click of an image encodes it and caches the embedding): how many polygons it made."""
    app.set_auto_labeling_marks(marks)
    result = app.predict_shapes(object(), filename=image_file)
    return len(result.shapes)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
