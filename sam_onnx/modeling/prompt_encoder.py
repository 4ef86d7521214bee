"""Prompt encoder of SAM: points, boxes and a mask -> sparse tokens and a dense embedding.

Coordinates are (x, y) in the frame of the image resized to long side 1024 (not padded). They
are encoded with random Fourier features of the normalised position; a learned embedding per
label is added. Labels: 1 positive point, 0 negative point, 2 box top-left, 3 box bottom-right,
-1 padding ("not a point").
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import LayerNorm2d


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features: position in [0, 1]^2 -> ``2 * num_pos_feats`` sin/cos values."""

    def __init__(self, num_pos_feats: int = 64, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn(2, num_pos_feats))

    def encode(self, coords_01: torch.Tensor) -> torch.Tensor:
        """``... x 2`` (x, y) normalised to [0, 1] -> ``... x 2F`` features."""
        coords = (2 * coords_01 - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def grid(self, hw: tuple[int, int]) -> torch.Tensor:
        """Dense encoding of the centres of an ``H x W`` grid -> ``2F x H x W``."""
        h, w = hw
        ones = torch.ones((h, w), device=self.positional_encoding_gaussian_matrix.device)
        y = (ones.cumsum(dim=0) - 0.5) / h
        x = (ones.cumsum(dim=1) - 0.5) / w
        return self.encode(torch.stack([x, y], dim=-1)).permute(2, 0, 1)

    def encode_pixels(self, coords_xy: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
        """``... x 2`` (x, y) pixel coordinates in an image of size (H, W) -> ``... x 2F``."""
        h, w = image_hw
        return self.encode((coords_xy / coords_xy.new_tensor([w, h])).to(torch.float))


class PromptEncoder(nn.Module):
    """Encodes prompts for the mask decoder.

    Arguments:
      embed_dim: token width (256).
      image_embedding_hw: (H, W) of the image embedding grid (64, 64).
      input_image_hw: (H, W) of the padded encoder input (1024, 1024).
      mask_in_chans: hidden channels of the mask downscaler (16).
      box_as_points: SAM 2's prompt order: :meth:`forward` turns a box into two corner points
        (labels 2, 3) placed before the points, so the padding point is always appended. Off
        (SAM v1): the box corners follow the points and replace the padding point.
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        image_embedding_hw: tuple[int, int],
        input_image_hw: tuple[int, int],
        mask_in_chans: int = 16,
        box_as_points: bool = False,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.box_as_points = box_as_points
        self.image_embedding_hw = image_embedding_hw
        self.input_image_hw = input_image_hw
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        # 0 negative point, 1 positive point, 2 box top-left, 3 box bottom-right
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    @property
    def num_point_embeddings(self) -> int:
        return len(self.point_embeddings)

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image embedding grid, ``1 x C x 64 x 64``."""
        return self.pe_layer.grid(self.image_embedding_hw).unsqueeze(0)

    def embed_labeled_points(self, coords_xy: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Points with labels in {-1, 0, 1, 2, 3} -> tokens, as arithmetic (no branches).

        ``coords_xy``: ``B x N x 2`` (x, y) in the 1024-frame; ``labels``: ``B x N``.
        Returns ``B x N x C``. Padding points (label -1) get only ``not_a_point_embed``.
        """
        coords = coords_xy + 0.5  # pixel centres
        emb = self.pe_layer.encode_pixels(coords, self.input_image_hw)
        labels = labels[..., None]
        emb = emb * (labels != -1) + self.not_a_point_embed.weight * (labels == -1)
        for i, point_embedding in enumerate(self.point_embeddings):
            emb = emb + point_embedding.weight * (labels == i)
        return emb

    def embed_mask(self, masks: torch.Tensor) -> torch.Tensor:
        """``B x 1 x 256 x 256`` low-res mask logits -> ``B x C x 64 x 64``."""
        return self.mask_downscaling(masks)

    def dense_with_flag(self, masks: torch.Tensor, has_mask: torch.Tensor) -> torch.Tensor:
        """The ONNX contract's dense embedding, as arithmetic (no branch): ``embed_mask(masks)``
        where ``has_mask`` (``B``, 1.0 / 0.0) is set, ``no_mask_embed`` elsewhere.

        ``masks``: ``B x 1 x 256 x 256`` logits. Returns ``B x C x 64 x 64``.
        """
        no_mask = self.no_mask_embed.weight.reshape(1, -1, 1, 1)
        use_mask = has_mask.reshape(-1, 1, 1, 1)
        return use_mask * self.embed_mask(masks) + (1 - use_mask) * no_mask

    def no_mask_dense(self, batch: int) -> torch.Tensor:
        """Dense embedding when no mask is given: ``B x C x 64 x 64`` of ``no_mask_embed``."""
        h, w = self.image_embedding_hw
        return self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, h, w)

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Official ``PromptEncoder.forward`` semantics.

        Arguments:
          points: (coords ``B x N x 2`` (x, y), labels ``B x N``) or None.
          boxes: ``B x 4`` (x0, y0, x1, y1) or None. Without a box, one padding point is
            appended to the points (with ``box_as_points``, always).
          masks: ``B x 1 x 256 x 256`` logits or None.
        Returns sparse ``B x T x C`` and dense ``B x C x 64 x 64`` embeddings.
        """
        if self.box_as_points and boxes is not None:
            points, boxes = box_corners_first(boxes, points), None
        batch = self._batch_size(points, boxes, masks)
        device = self.no_mask_embed.weight.device
        sparse = [torch.empty((batch, 0, self.embed_dim), device=device)]
        if points is not None:
            coords, labels = points
            if boxes is None:
                coords = torch.cat([coords, torch.zeros_like(coords[:, :1])], dim=1)
                labels = torch.cat([labels, -torch.ones_like(labels[:, :1])], dim=1)
            sparse.append(self.embed_labeled_points(coords, labels))
        if boxes is not None:
            corners = boxes.reshape(-1, 2, 2)
            corner_labels = torch.tensor([[2, 3]], device=device).expand(corners.shape[0], 2)
            sparse.append(self.embed_labeled_points(corners, corner_labels))
        dense = self.embed_mask(masks) if masks is not None else self.no_mask_dense(batch)
        return torch.cat(sparse, dim=1), dense

    @staticmethod
    def _batch_size(points, boxes, masks) -> int:
        if points is not None:
            return points[0].shape[0]
        if boxes is not None:
            return boxes.shape[0]
        if masks is not None:
            return masks.shape[0]
        return 1


def box_corners_first(
    boxes: torch.Tensor, points: tuple[torch.Tensor, torch.Tensor] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM 2's merge of a box into the points: corners ``B x 2 x 2`` (labels 2, 3), then the points.

    ``boxes``: ``B x 4`` (x0, y0, x1, y1); ``points``: (``B x N x 2`` (x, y), ``B x N``) or None.
    Returns coordinates ``B x (2 + N) x 2`` and int labels ``B x (2 + N)``.
    """
    corners = boxes.reshape(-1, 2, 2)
    labels = torch.tensor([[2, 3]], dtype=torch.int, device=boxes.device).expand(corners.shape[0], 2)
    if points is None:
        return corners, labels
    coords, point_labels = points
    return torch.cat([corners, coords], dim=1), torch.cat([labels, point_labels.to(labels.dtype)], dim=1)
