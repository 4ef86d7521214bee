def batched_nms(*args, **kwargs):
    raise NotImplementedError("torchvision stand-in: batched_nms is not needed to export")


def box_area(*args, **kwargs):
    raise NotImplementedError("torchvision stand-in: box_area is not needed to export")
