def resize(*args, **kwargs):
    raise NotImplementedError("torchvision stand-in: resize is not needed to export")


def to_pil_image(*args, **kwargs):
    raise NotImplementedError("torchvision stand-in: to_pil_image is not needed to export")
