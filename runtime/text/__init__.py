"""Text prompts (Grounded SAM): a Grounding DINO detector export finds boxes for a phrase prompt,
SAM turns them into masks (docs/TEXT.md).

- :mod:`.tokens`: the prompt into token ids with the export's ``tokenizer.json`` (``tokenizers``),
  checked; labels decoded back;
- :mod:`.detector`: ``Detector``: image and prompt -> ``Detections`` (boxes, scores, phrases), the
  graph on onnxruntime and transformers' post-processing in numpy;
- :mod:`.grounded`: ``TextPredictor.predict_text(image, "a cat. a remote.")``: the boxes through
  ``SamPredictor.predict_boxes``, one mask per box;
- :mod:`.textcli`: ``sam-onnx predict --text``'s flags and files (masks, labelled overlay, JSON with RLE).

Builds on ``core``; imports no other room.
"""

from .detector import Detections, Detector
from .grounded import TextMask, TextPredictor

__all__ = ["Detections", "Detector", "TextMask", "TextPredictor"]
