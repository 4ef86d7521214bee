"""AnyLabeling's ``config.yaml`` for a ``--layout samexporter`` export (``--anylabeling-config``).

AnyLabeling / X-AnyLabeling load a custom SAM model from a ``config.yaml``: the model manager
requires ``type`` (``segment_anything``), ``name`` and ``display_name``; the ``segment_anything``
model requires ``encoder_model_path`` and ``decoder_model_path`` (relative to the config's
folder) and reads ``input_size``, ``max_width`` and ``max_height`` unconditionally (a config
without them fails to load although they are not in its required list). The app picks SAM v1 or
SAM 2 by the decoder's input names (``high_res_feats_0``), so the config is the same for both.
"""

from __future__ import annotations

from ..variants import IMAGE_SIZE

CONFIG_FILE = "config.yaml"


def anylabeling_config(name: str, display_name: str) -> str:
    """The config text for the graphs ``encoder.onnx`` and ``decoder.onnx`` beside it."""
    keys = {
        "type": "segment_anything",
        "name": name,
        "display_name": display_name,
        "encoder_model_path": "encoder.onnx",
        "decoder_model_path": "decoder.onnx",
        "input_size": IMAGE_SIZE,
        "max_height": IMAGE_SIZE,
        "max_width": IMAGE_SIZE,
    }
    return "".join(f"{key}: {_yaml_scalar(value)}\n" for key, value in keys.items())


def _yaml_scalar(value: str | int) -> str:
    """A YAML scalar: ints bare, strings double-quoted (JSON escaping is valid YAML)."""
    if isinstance(value, int):
        return str(value)
    import json

    return json.dumps(value)
