"""Automatic mask generation: the official ``SamAutomaticMaskGenerator`` on the torch-free core.

- :mod:`.generator`: ``AutomaticMaskGenerator`` and ``AmgOptions`` (family defaults from
  :mod:`sam_onnx.families`);
- :mod:`.crops`: the crop boxes and point grids; :mod:`.masks`: box, stability and NMS helpers;
- :mod:`.rle`: uncompressed and COCO run-length encodings.

``sam_onnx.runtime.amg.AutomaticMaskGenerator`` is the documented path; the package re-exports it.
"""

from .generator import FILTERS, OUTPUT_MODES, AmgOptions, AutomaticMaskGenerator, describe_filters

__all__ = ["FILTERS", "OUTPUT_MODES", "AmgOptions", "AutomaticMaskGenerator", "describe_filters"]
