"""The web side: ``sam-onnx serve``, ``bundle`` and ``demo`` behind the page in ``demo_web/``.

- :mod:`.serve`: the HTTP server (page, graphs, embeddings, ``api/config``);
- :mod:`.bundle`: a static folder with the page, the decoder graphs and precomputed embeddings;
- :mod:`.webcli`: the three commands' arguments and runs (``sam-onnx demo`` itself, which needs
  torch to make its checkpoint, is :mod:`sam_onnx.demo`).
"""
