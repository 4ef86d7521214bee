"""The predictor core: everything one prompt on one image needs, nothing else.

- :mod:`.backend`, :mod:`.session`: which onnxruntime is installed; sessions, engines, precisions;
- :mod:`.graphs`: an export folder's graphs, their roles, metadata and contract checks;
- :mod:`.embedding`: the image embedding (``ImageEmbedding``) and its ``.npy`` + sidecar files;
- :mod:`.prompts`: points, boxes and mask prompts into the decoder's feeds;
- :mod:`.decoders`, :mod:`.fast_decoder`: the contract decoder graph and the fast pair, one interface;
- :mod:`.upscale`: low-res logits to the image's size (NumPy/OpenCV);
- :mod:`.predictor`: ``SamPredictor``, the official predictor's API over the above.

The other rooms build on this one (``amg``, ``batch``, ``server``); it imports none of them.
"""
