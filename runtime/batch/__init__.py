"""Many images: the jobs behind ``sam-onnx embed|amg`` and where their results go.

- :mod:`.jobs`: a job (``EmbedJob``, ``AmgJob``) over the images of a folder or list, one process;
- :mod:`.outputs`: the files a prediction or a mask set is written to (PNG, JSON, COCO);
- :mod:`.distributed`: the same jobs on Ray Data (``--engine ray``; Ray imported only there).
"""
