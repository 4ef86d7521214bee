"""Many images or videos: the jobs behind ``sam-onnx embed|amg`` and ``sam-onnx track`` of a
folder of videos, and where their results go.

- :mod:`.jobs`: a job (``EmbedJob``, ``AmgJob``, ``TrackJob``) over the items of a folder or
  list: its spec, one item's step, its record and the job's summary;
- :mod:`.local`: the local engine (one item after another here);
- :mod:`.outputs`: the files a prediction or a mask set is written to (PNG, JSON, COCO);
- :mod:`.distributed`: the same jobs on Ray Data (``--engine ray``; Ray imported only there).
"""
