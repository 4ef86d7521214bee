"""SAM assembled from its three parts, with the official pre- and post-processing in torch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..variants import PIXEL_MEAN, PIXEL_STD, SamVariant
from .image_encoder import ImageEncoderViT
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder


class Sam(nn.Module):
    """Image encoder, prompt encoder and mask decoder, passed in as parts.

    ``pixel_mean`` / ``pixel_std`` are non-persistent buffers (``3 x 1 x 1``, RGB, 0..255
    scale): as officially, checkpoints do not store them.
    """

    mask_threshold: float = 0.0

    def __init__(
        self,
        *,
        image_encoder: ImageEncoderViT,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        variant: SamVariant,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.variant = variant
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), persistent=False)

    @property
    def prompt_modules(self) -> tuple[PromptEncoder, MaskDecoder]:
        """(prompt encoder, mask decoder): the prompt side, whatever the family names them."""
        return self.prompt_encoder, self.mask_decoder

    @property
    def img_size(self) -> int:
        return self.image_encoder.img_size

    def preprocess(self, resized: torch.Tensor) -> torch.Tensor:
        """``B x 3 x h x w`` float resized image (0..255) -> normalised, padded ``B x 3 x S x S``."""
        x = (resized - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        return F.pad(x, (0, self.img_size - w, 0, self.img_size - h))

    def postprocess_masks(
        self, low_res: torch.Tensor, input_hw: tuple[int, int], orig_hw: tuple[int, int]
    ) -> torch.Tensor:
        """Official upscaling: ``B x M x 256 x 256`` -> ``B x M x H x W`` logits.

        Bilinear (align_corners=False) to the padded input size, crop to the resized image
        ``input_hw`` (h, w), bilinear to the original ``orig_hw`` (H, W).
        """
        masks = F.interpolate(low_res, (self.img_size, self.img_size), mode="bilinear", align_corners=False)
        masks = masks[..., : input_hw[0], : input_hw[1]]
        return F.interpolate(masks, tuple(orig_hw), mode="bilinear", align_corners=False)
