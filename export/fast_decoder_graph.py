"""The fast decoder pair: a per-image graph and a per-click graph, the same masks in less work.

Not part of the official contract (``decoder.onnx`` stays as it is); an addition that the runtime
(``SamPredictor``) uses when an export has it. Both families (SAM v1, SAM 2 / 2.1).

``decoder_image.onnx`` (once per image). Inputs, float32:
  image_embeddings  1 x 256 x 64 x 64 (SAM 2: with ``no_mem_embed`` added, as the encoder gives it)
  high_res_feats_0  1 x 32 x 256 x 256, high_res_feats_1  1 x 64 x 128 x 128 (SAM 2 only)
Outputs: the per-image tensors :func:`image_tensor_names` lists (float32, about 30 MB).

``decoder_click.onnx`` (once per click). Inputs: those tensors by name, then
  point_coords 1 x N x 2, point_labels 1 x N, mask_input 1 x 1 x 256 x 256, has_mask_input 1,
with the meaning of ``decoder.onnx``'s (SAM v1: the caller adds the padding point; SAM 2: the
graph appends it). Outputs, all four mask tokens (token 0 first), no upscaling to the image size:
  low_res_logits   1 x 4 x 256 x 256 logits, not clamped (SAM 2's contract returns its
                   ``low_res_masks`` clamped to +-32, to feed back; the upscaling reads them unclamped)
  iou_predictions  1 x 4 (SAM 2: after the sigmoid)
The caller picks the tokens (single-mask or multimask rule) and resizes only the picked masks to
the original size (``sam_onnx.runtime.core.upscale``), as ``decoder.onnx`` would have.

Why it is faster. The image tokens ``X`` (4096 x 256) after each step of the two-way transformer
are written as ``s * (B + Z @ R)``: ``B`` depends only on the image (per-image graph), ``s`` is a
per-position scale and ``Z`` (4096 x r) / ``R`` (r x 256) come from the prompt with r about 50-100
(``8 (T - 1)`` attention weights per image->token attention, T prompt tokens, plus the mask
input's 16 channels when there is one, and a few single rows). It holds exactly:
  * the image->token attention adds ``A @ U + b`` with ``A`` the 4096 x 8T softmax weights and
    ``U`` the 8T x 256 value rows already pushed through ``out_proj``; as each head's weights sum
    to 1, its last token's column of ``A`` folds into a column of ones (and ``b``); the new
    columns of ``Z`` are divided by ``s``;
  * a LayerNorm of ``s * (B + Z @ R)`` is ``s' * (B' + Z' @ R')`` with ``B' = (B - mean B) *
    gamma`` (per image), ``s' = s / sigma``, ``Z' = [Z, 1 / s']``, ``R' = [(R - mean R) * gamma;
    beta]``; its variance needs ``mean((B - mean B)^2)`` (per image), the cross term ``sum(Z * G)`` per
    pixel with ``G = (B - mean B) @ R^T``, and ``Z @ (R_c R_c^T)``. ``G`` costs no product over
    256 channels: each row of ``R`` is a fixed row (the mask downscaler's weights, biases) or
    ``v[h, t] @ W_h`` for an attention's value row and head ``h``'s fixed ``out_proj`` rows, so
    ``G``'s columns are ``(B - mean B) @ F^T`` for fixed rows ``F`` (per image) or ``v_h``
    times those (per click, ``8 T d`` per pixel);
  * every linear map ``W`` of the tokens is ``s * (B W + Z @ (R W))``, with ``B W`` per image.
So per click no product runs over 4096 x 256 x 256 except the first transposed convolution's,
done as ``4096 x r x 256``; the LayerNorm after it is a root-mean-square scaling (its terms come
centred), and the second transposed convolution (after a GELU) runs as before.

Layout. The click graph holds ``Z`` (and ``G``) transposed, ``r x 4096`` (:class:`LowRank`), and
the image->token attention weights as ``heads x T x 4096``: each per-pixel scale, the softmax over
the T tokens and each growth of ``Z`` then run along contiguous rows of 4096 values. Pixels first,
each of those was a broadcast against ``4096 x 1`` over rows of about 7 values, and the click
took about 15 % longer (ViT-B, onnxruntime, 2 threads).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from sam_onnx.contract import (
    CLICK_OUTPUTS,
    FAST_CONTRACT,
    FAST_FILES,
    POINT_COORDS,
    POINT_LABELS,
    PROMPT_INPUTS,
)
from sam_onnx.families import SAM, SAM2
from sam_onnx.modeling.transformer import Attention, TwoWayTransformer

from .sam2_decoder_graph import append_padding_point


def fast_decoder_pair(model: nn.Module) -> tuple[FastDecoderImageGraph, FastDecoderClickGraph]:
    """The two graphs of the pair on a loaded :class:`Sam` or :class:`Sam2`."""
    sam2 = model.variant.sam2_decoder
    prompt_encoder, mask_decoder = model.prompt_modules
    return (
        FastDecoderImageGraph(prompt_encoder, mask_decoder, sam2=sam2),
        FastDecoderClickGraph(prompt_encoder, mask_decoder, sam2=sam2),
    )


def fast_metadata(common: Mapping[str, str], key: str, wrapper: nn.Module) -> dict[str, str]:
    """``metadata_props`` of one graph of the pair: ``role`` is its export.json key."""
    names = image_tensor_names(wrapper.depth, high_res_skips=wrapper.sam2)
    return {
        **common,
        "role": key,
        "contract": FAST_CONTRACT,
        "pair": ",".join(FAST_FILES.values()),
        "num_masks": "4",
        "image_tensors": ",".join(names),
        "outputs": ",".join(wrapper.output_names),
    }


def image_tensor_names(depth: int, *, high_res_skips: bool) -> tuple[str, ...]:
    """Names of the per-image tensors, in the per-image graph's output order: per transformer
    layer ``i``: ``l{i}_tk`` (token->image keys of ``B``, heads x d x 4096), ``l{i}_tv`` (its
    values, heads x 4096 x d), ``l{i}_iq`` (image->token queries, heads x d x 4096; ``l0_tk``
    and ``l0_iq`` of ``B`` plus the positional encoding, bias included), ``l{i}_var``
    (1 x 4096, ``mean((B - mean B)^2)``), ``l{i}_fb`` (s x 4096: ``S (B - mean)^T`` for the
    single fixed rows ``S``) and ``l{i}_fw{j}`` for ``j <= i`` (heads x d x 4096: layer ``j``'s
    ``out_proj`` weight rows times ``(B - mean)^T``), see :class:`FoldedDecoder`; then
    ``final_tk``/``final_tv``, ``up1`` (4096 x 4C/4 rows, the first transposed convolution of
    ``B``, each output pixel's C/4 channels centred), and with SAM 2 the skip rows ``skip1``
    (16384 x C/4) and ``skip0`` (2 x 16384 x 2C/8), see :func:`skip_rows`."""
    names = []
    for i in range(depth):
        names += [f"l{i}_{part}" for part in ("tk", "tv", "iq", "var", "fb")]
        names += [f"l{i}_fw{j}" for j in range(i + 1)]
    names += ["final_tk", "final_tv", "up1"]
    return tuple(names + (["skip1", "skip0"] if high_res_skips else []))


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``N x (heads*d)`` -> ``heads x N x d``."""
    return x.reshape(x.shape[0], heads, -1).transpose(0, 1)


class FoldedDecoder(nn.Module):
    """Export-only: the constants both graphs of the pair share, read off one loaded decoder.

    Arguments:
      transformer: the mask decoder's :class:`TwoWayTransformer`.
      no_mask_embed: ``C`` (the dense embedding without a mask input).
      mask_out: the mask downscaler's last 1x1 convolution (C/16 -> C).
    The fixed rows ``F`` of each LayerNorm (see the module docstring) are built here once, in
    two kinds: ``single_rows(i)`` (``s x C``: the mask downscaler's 16 output channels and its
    bias, then per layer so far ``out_proj``'s bias and each earlier ``norm4``'s bias) and
    ``weight_blocks(i)`` (per layer ``j <= i``, ``out_proj``'s weight transposed, ``heads*d x
    C``), each as it stands before layer ``i``'s ``norm4``.
    """

    def __init__(self, transformer: TwoWayTransformer, no_mask_embed: torch.Tensor, mask_out: nn.Conv2d):
        super().__init__()
        self.transformer = transformer
        self._singles, self._blocks = [], []
        with torch.no_grad():  # constants of the traced graphs
            singles = torch.cat([mask_out.weight[:, :, 0, 0].t(), (mask_out.bias - no_mask_embed)[None]])
            blocks = []
            for layer in transformer.layers:
                out = layer.cross_attn_image_to_token.out_proj
                singles, blocks = torch.cat([singles, out.bias[None]]), [*blocks, out.weight.t().detach()]
                self._singles.append(singles)
                self._blocks.append(blocks)
                norm = layer.norm4
                blocks = [(b - b.mean(-1, keepdim=True)) * norm.weight for b in blocks]
                centred = (singles - singles.mean(-1, keepdim=True)) * norm.weight
                singles = torch.cat([centred, norm.bias[None]])

    def single_rows(self, i: int) -> torch.Tensor:
        """``s x C``: the fixed rows before layer ``i``'s ``norm4`` that are not ``out_proj`` weights."""
        return self._singles[i]

    def weight_blocks(self, i: int) -> list[torch.Tensor]:
        """Per layer ``j <= i``: its ``out_proj`` weight rows as they stand before layer ``i``'s
        ``norm4``, ``heads*d x C``."""
        return self._blocks[i]


def folded_decoder(prompt_encoder: nn.Module, mask_decoder: nn.Module) -> FoldedDecoder:
    """The :class:`FoldedDecoder` of a loaded prompt encoder and mask decoder."""
    no_mask = prompt_encoder.no_mask_embed.weight[0]
    return FoldedDecoder(mask_decoder.transformer, no_mask, prompt_encoder.mask_downscaling[-1])


class _PairGraph(nn.Module):
    """What both graphs of the pair hold: the loaded prompt encoder and mask decoder, the family
    switch, the shared constants (:class:`FoldedDecoder`) and the two-way transformer's depth."""

    def __init__(self, prompt_encoder: nn.Module, mask_decoder: nn.Module, *, sam2: bool) -> None:
        super().__init__()
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.sam2 = sam2
        self.folded = folded_decoder(prompt_encoder, mask_decoder)
        self.depth = len(mask_decoder.transformer.layers)

    def _pe_columns(self, linear: nn.Linear, heads: int) -> torch.Tensor:
        """The dense positional encoding through ``linear`` (bias included), heads x d x N: a
        constant of the graph."""
        with torch.no_grad():
            pe = self.prompt_encoder.get_dense_pe()[0]
            return (linear.weight @ pe.reshape(pe.shape[0], -1) + linear.bias[:, None]).reshape(
                heads, -1, pe[0].numel()
            )


class FastDecoderImageGraph(_PairGraph):
    """Export-only wrapper: the per-image half of the fast decoder (see the module docstring).

    Arguments:
      prompt_encoder, mask_decoder: the loaded model's (SAM v1 or SAM 2; SAM 2 needs the
        high-res features as inputs).
    """

    @property
    def input_names(self) -> tuple[str, ...]:
        return (SAM2 if self.sam2 else SAM).feature_names

    @property
    def output_names(self) -> tuple[str, ...]:
        return image_tensor_names(len(self.mask_decoder.transformer.layers), high_res_skips=self.sam2)

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {}

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(0)
        emb = torch.randn(1, 256, 64, 64, generator=gen)
        if not self.sam2:
            return (emb,)
        return emb, torch.randn(1, 32, 256, 256, generator=gen), torch.randn(1, 64, 128, 128, generator=gen)

    def forward(self, image_embeddings: torch.Tensor, *high_res: torch.Tensor) -> tuple[torch.Tensor, ...]:
        transformer = self.mask_decoder.transformer
        c = image_embeddings.shape[1]
        # Channels first, C x N (N pixels row-major), as the embedding comes: the click graph's
        # per-pixel scalars and reductions then run along contiguous rows of N.
        base = image_embeddings[0].reshape(c, -1) + self.prompt_encoder.no_mask_embed.weight.t()
        out = []
        for i, layer in enumerate(transformer.layers):
            t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
            keys = _project(t2i.k_proj, base, t2i.num_heads)
            queries = _project(i2t.q_proj, base, i2t.num_heads)
            if i == 0:  # s = 1 here: the positional encoding is added once per image, not per click
                keys = keys + self._pe_columns(t2i.k_proj, t2i.num_heads)
                queries = queries + self._pe_columns(i2t.q_proj, i2t.num_heads)
            out += [keys, _project(t2i.v_proj, base, t2i.num_heads).transpose(1, 2), queries]
            centred = base - base.mean(0, keepdim=True)
            out += [(centred * centred).mean(0, keepdim=True), self.folded.single_rows(i) @ centred]
            blocks = self.folded.weight_blocks(i)
            out += [(w @ centred).reshape(i2t.num_heads, -1, centred.shape[1]) for w in blocks]
            base = centred * layer.norm4.weight[:, None]
        final = transformer.final_attn_token_to_image
        out.append(_project(final.k_proj, base, final.num_heads))
        out.append(_project(final.v_proj, base, final.num_heads).transpose(1, 2))
        up1 = self.mask_decoder.output_upscaling[0]
        out.append(centred_groups(base.t() @ up1_matrix(up1), up1.out_channels))
        if self.sam2:
            out += list(skip_rows(high_res, self.mask_decoder.output_upscaling[3]))
        return tuple(out)


def _project(linear: nn.Linear, columns: torch.Tensor, heads: int) -> torch.Tensor:
    """``linear``'s weight (no bias) times channels-first ``C x N`` columns: ``heads x d x N``."""
    return (linear.weight @ columns).reshape(heads, -1, columns.shape[1])


def skip_rows(high_res, up2: nn.ConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM 2's skip features in the click graph's row order: ``skip1`` ``4hw x C1`` (pixels of
    the 2h x 2w map, row-major, each centred over its channels; the first transposed
    convolution's bias rides elsewhere) and
    ``skip0`` ``2 x 4hw x (dx, C2)`` with the second's bias added (the 4h x 4w map's pixel
    ``(2Y + dy, 2X + dx)`` at ``[dy, (Y, X)]``)."""
    feat_s0, feat_s1 = high_res
    c1, c0 = feat_s1.shape[1], feat_s0.shape[1]
    skip1 = centred_groups(feat_s1[0].reshape(c1, -1).t(), c1)
    h2, w2 = feat_s1.shape[-2:]
    skip0 = feat_s0[0].reshape(c0, h2, 2, w2, 2).permute(2, 1, 3, 4, 0).reshape(2, h2 * w2, 2 * c0)
    return skip1, skip0 + up2.bias.repeat(2)


def softmax_tokens(x: torch.Tensor) -> torch.Tensor:
    """Softmax over axis 1 of ``heads x T x N`` (the T prompt tokens of each pixel), written out:
    with N last every pass and reduction runs along contiguous rows of N (onnxruntime's Softmax
    over a short last axis, and broadcasts against ``N x 1``, are slow)."""
    e = torch.exp(x - x.amax(dim=1, keepdim=True))
    return e / e.sum(dim=1, keepdim=True)


def centred_groups(x: torch.Tensor, c: int) -> torch.Tensor:
    """``x`` (``... x (k c)``) minus the mean of each group of ``c`` consecutive columns: the
    LayerNorm after the first transposed convolution centres each output pixel's ``c`` channels,
    and the mean of a sum is the sum of the means, so each term of it is centred on its own (the
    image's once per image) and the click graph's normalisation needs no mean."""
    grouped = x.reshape(*x.shape[:-1], -1, c)
    return (grouped - grouped.mean(-1, keepdim=True)).reshape(x.shape)


def up1_matrix(up1: nn.ConvTranspose2d) -> torch.Tensor:
    """The 2x2 stride-2 transposed convolution as ``C_in x (dy, dx, C_out)`` (see
    :meth:`MaskDecoder.upscale_rows`)."""
    return up1.weight.permute(0, 2, 3, 1).reshape(up1.in_channels, -1)


class LowRank:
    """Image tokens of one click, channels first: ``X^T = s * (B^T + R^T @ Zt)`` (the module
    docstring's ``s * B + Z @ R`` with ``s`` factored out of ``Z``, transposed: a LayerNorm then
    scales ``s`` and appends a row to ``Zt``, and rescales none of its rows).

    ``s``: ``1 x N`` or None (1); ``zt``: ``r x N``; ``r``: ``r x C``. Growing ``Z`` by columns
    is a concatenation of whole rows of N. ``parts``: for each block of rows of ``zt``, in
    order, how its rows of ``R`` come from the fixed rows of the next LayerNorm (see
    :class:`FoldedDecoder`):
      * an index into the single rows (a slice, or a run-time index tensor): those rows;
      * ``(None, v, j)``, ``v`` heads x T' x d, for the image->token attention of layer ``j``
        (heads x T' rows): row ``(h, t)`` is ``v[h, t]`` times head ``h``'s ``d`` rows of that
        layer's ``out_proj`` weight block;
      * ``(index, v, j)``, ``v`` heads x 1 x d: one row, the single row ``index`` plus the sum
        over heads of ``v[h, 0]`` times head ``h``'s rows of that block.
    ``singles``: how many single rows there are so far.
    """

    def __init__(self, s, zt, r, parts, singles: int):
        self.s, self.zt, self.r, self.parts, self.singles = s, zt, r, parts, singles

    def grown(self, zt_rows, r_rows, parts, singles: int) -> LowRank:
        """These tokens plus ``r_rows^T @ zt_rows``: more rows of ``Z`` and ``R``, their
        ``parts``, and ``singles`` more single fixed rows."""
        zt, r = torch.cat([self.zt, *zt_rows]), torch.cat([self.r, *r_rows])
        return LowRank(self.s, zt, r, self.parts + parts, self.singles + singles)

    def cross_rows(self, singles_b: torch.Tensor, blocks_b: list[torch.Tensor]) -> torch.Tensor:
        """``R @ (B - mean B)^T`` (``r x N``): the product of each row of ``R`` with the centred
        image tokens ``B``, per pixel, from the per-image ``singles_b`` (``s x N``) and
        ``blocks_b`` (per layer, heads x d x N), see :func:`image_tensor_names`; ``8 T d N``
        multiply-adds per attention block instead of ``r C N``."""
        rows = []
        for part in self.parts:
            if not isinstance(part, tuple):
                rows.append(singles_b[part] if isinstance(part, slice) else singles_b.index_select(0, part))
                continue
            index, v, j = part
            block = v @ blocks_b[j]  # heads x T' x N
            if index is None:
                rows.append(block.reshape(-1, singles_b.shape[1]))
            else:
                rows.append(singles_b[index] + block.sum(0))
        return torch.cat(rows)

    def scaled(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (``... x N``) times ``s``."""
        return t if self.s is None else t * self.s

    def unscaled(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (``... x N``) divided by ``s``: a term of ``X`` as a term of ``Zt``'s rows."""
        return t if self.s is None else t / self.s


class FastDecoderClickGraph(_PairGraph):
    """Export-only wrapper: the per-click half of the fast decoder (see the module docstring).

    Arguments:
      prompt_encoder, mask_decoder: the same loaded modules as the per-image graph's.
      sam2: SAM 2's prompt (padding point appended), high-res skips, clamped low-res output.
    """

    @property
    def input_names(self) -> tuple[str, ...]:
        return image_tensor_names(self.depth, high_res_skips=self.sam2) + PROMPT_INPUTS

    @property
    def output_names(self) -> tuple[str, ...]:
        return CLICK_OUTPUTS

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {POINT_COORDS: {1: "num_points"}, POINT_LABELS: {1: "num_points"}}

    def example_inputs(self, num_points: int = 3) -> tuple[torch.Tensor, ...]:
        """Inputs to trace with: the per-image graph's outputs on a random image, a prompt."""
        image_graph = FastDecoderImageGraph(self.prompt_encoder, self.mask_decoder, sam2=self.sam2)
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            tensors = image_graph(*image_graph.example_inputs())
        return (
            *tensors,
            torch.rand(1, num_points, 2, generator=gen) * 1024,
            torch.randint(0, 4, (1, num_points), generator=gen).float(),
            torch.randn(1, 1, 256, 256, generator=gen),
            torch.ones(1),
        )

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        names = image_tensor_names(self.depth, high_res_skips=self.sam2)
        image = dict(zip(names, inputs[: len(names)], strict=True))
        point_coords, point_labels, mask_input, has_mask_input = inputs[len(names) :]
        decoder = self.mask_decoder
        tokens = self._tokens(point_coords, point_labels)
        state = self._mask_state(mask_input, has_mask_input)
        queries = tokens
        for i, layer in enumerate(decoder.transformer.layers):
            queries, state = self._layer(layer, i, queries, tokens, state, image)
            blocks = [image[f"l{i}_fw{j}"] for j in range(i + 1)]
            state = self._norm(layer.norm4, state, image[f"l{i}_var"], image[f"l{i}_fb"], blocks)
        # Only the IoU and mask tokens are read after the final attention (each query attends on
        # its own), so the object-score and prompt tokens skip it.
        first = 1 if decoder.has_object_score else 0
        read = slice(first, first + 1 + decoder.num_mask_tokens)
        final = decoder.transformer.final_attn_token_to_image
        q = queries[read] + tokens[read]
        attended = self._token_to_image(final, q, state, image["final_tk"], image["final_tv"])
        queries = decoder.transformer.norm_final_attn(queries[read] + attended)
        mlps = decoder.output_hypernetworks_mlps
        hyper_in = torch.stack([mlp(queries[1 + i]) for i, mlp in enumerate(mlps)])
        iou = decoder.iou_prediction_head(queries[0])[None]
        if decoder.iou_sigmoid:
            iou = torch.sigmoid(iou)
        return self._upscale(state, hyper_in, image), iou

    # -- prompt side --------------------------------------------------------------------------

    def _tokens(self, point_coords: torch.Tensor, point_labels: torch.Tensor) -> torch.Tensor:
        """Output tokens then prompt tokens, ``T x C`` (one prompt)."""
        if self.sam2:
            point_coords, point_labels = append_padding_point(point_coords, point_labels)
        sparse = self.prompt_encoder.embed_labeled_points(point_coords, point_labels)[0]
        decoder = self.mask_decoder
        heads = [decoder.iou_token.weight, decoder.mask_tokens.weight]
        if decoder.has_object_score:
            heads.insert(0, decoder.obj_score_token.weight)
        return torch.cat([*heads, sparse])

    def _mask_state(self, mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> LowRank:
        """Layer 0's image tokens minus ``B``: the dense embedding's difference from no-mask,
        ``has * (W^T M16 + b - no_mask)`` with M16 the downscaler's 16 channels before its
        last 1x1 convolution (16 x 4096, channels first as the convolution gives them)."""
        downscale = self.prompt_encoder.mask_downscaling
        m16 = downscale[:-1](mask_input)[0]
        m16 = m16.reshape(m16.shape[0], -1)
        has = has_mask_input.reshape(1, 1)
        zt = torch.cat([m16 * has, has.expand(1, m16.shape[1])])
        rows = self.folded.single_rows(0)[: zt.shape[0]]
        # Without a mask input the 16 channel rows are zeros: drop them (a run-time row count,
        # so every later product over Z is that much narrower). The ``has`` row (zeros too)
        # stays: a tensor with no rows crashes OpenVINO's CPU plugin.
        absent = (has_mask_input[0] == 0).to(torch.int64) * m16.shape[0]
        keep = torch.arange(absent, zt.shape[0])
        zt, rows = zt.index_select(0, keep), rows.index_select(0, keep)
        return LowRank(None, zt, rows, [keep], m16.shape[0] + 1)

    # -- image side ---------------------------------------------------------------------------

    def _layer(self, layer, i: int, queries, tokens, state: LowRank, image: dict):
        """One :class:`TwoWayAttentionBlock` with the image side in low-rank form; returns the
        tokens and the image tokens before ``norm4`` (as a :class:`LowRank`)."""
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(queries[None], queries[None], queries[None])[0]
        else:
            q = (queries + tokens)[None]
            queries = queries + layer.self_attn(q, q, queries[None])[0]
        queries = layer.norm1(queries)
        attended = self._token_to_image(
            layer.cross_attn_token_to_image, queries + tokens, state, image[f"l{i}_tk"], image[f"l{i}_tv"]
        )
        queries = layer.norm2(queries + attended)
        queries = layer.norm3(queries + layer.mlp(queries))
        i2t = layer.cross_attn_image_to_token
        state = self._image_to_token(i2t, i, state, queries + tokens, queries, image[f"l{i}_iq"])
        return queries, state

    def _logits(
        self, linear: nn.Linear, state: LowRank, base: torch.Tensor, rows: torch.Tensor
    ) -> torch.Tensor:
        """Attention logits ``heads x T x N`` of the prompt side's ``rows`` (``heads x T x d``,
        already scaled by 1/sqrt(d)) against the image tokens plus positional encoding through
        ``linear`` (the image side's projection); ``base``: ``B`` through ``linear``, heads x d x N
        (layer 0: ``B`` plus the positional encoding, through ``linear`` with its bias)."""
        heads = rows.shape[0]
        rw = (state.r @ linear.weight.t()).reshape(state.r.shape[0], heads, -1).permute(1, 2, 0)  # h x d x r
        image = rows @ base + (rows @ rw) @ state.zt  # heads x T x N
        if state.s is None:  # layer 0: the per-image tensor holds the positional encoding too
            return image
        return state.scaled(image) + rows @ self._pe_columns(linear, heads)

    def _token_to_image(self, attn: Attention, q_tokens, state: LowRank, base_k, base_v) -> torch.Tensor:
        """``attn(q_tokens, image + pe, image)`` for tokens ``T x C`` -> ``T x C``; ``base_k``:
        ``B`` through ``k_proj``, heads x d x N; ``base_v``: through ``v_proj``, heads x N x d."""
        heads = attn.num_heads
        q = _heads(attn.q_proj(q_tokens) / attn.sqrt_head_dim, heads)  # heads x T x d
        wt = self._logits(attn.k_proj, state, base_k, q).softmax(dim=-1)  # heads x T x N
        wt = state.scaled(wt)
        rv = (state.r @ attn.v_proj.weight.t()).reshape(state.r.shape[0], heads, -1).transpose(0, 1)
        pooled = wt @ base_v + (wt @ state.zt.t()) @ rv + attn.v_proj.bias.reshape(heads, 1, -1)  # h x T x d
        return attn.out_proj(pooled.transpose(0, 1).reshape(q_tokens.shape[0], -1))

    def _image_to_token(
        self, attn: Attention, layer: int, state: LowRank, k_tokens, v_tokens, base_q
    ) -> LowRank:
        """``state + attn(image + pe, k_tokens, v_tokens)`` for the transformer layer ``layer``,
        the update in low-rank form; ``base_q``: ``B`` through ``q_proj``, heads x d x N."""
        heads, t = attn.num_heads, k_tokens.shape[0]
        k = _heads(attn.k_proj(k_tokens) / attn.sqrt_head_dim, heads)  # heads x T x d
        weights = softmax_tokens(self._logits(attn.q_proj, state, base_q, k))  # heads x T x N
        v = _heads(attn.v_proj(v_tokens), heads)  # heads x T x d
        # Each head's weights sum to 1 over the T tokens, so its last token's row of A is 1 minus
        # the others': that token folds into the row of ones (whose row of R becomes out_proj of
        # the last token's values, bias included) and the others' rows of R into differences
        # from it. T - 1 rows per head instead of T; exact up to the softmax's rounding.
        last = v[:, -1:]  # heads x 1 x d
        rest = v[:, :-1] - last
        a = state.unscaled(weights[:, :-1]).reshape(heads * (t - 1), weights.shape[-1])
        wo = attn.out_proj.weight.t().reshape(heads, -1, attn.out_proj.out_features)  # h x d x C
        u = (rest @ wo).reshape(heads * (t - 1), -1)
        ones_row = attn.out_proj(last.transpose(0, 1).reshape(1, -1))  # 1 x C
        parts = [(None, rest, layer), (slice(state.singles, state.singles + 1), last, layer)]
        ones = state.unscaled(torch.ones_like(a[:1]))
        return state.grown([a, ones], [u, ones_row], parts, 1)

    def _norm(self, norm: nn.LayerNorm, state: LowRank, var_b, singles_b, blocks_b) -> LowRank:
        """``norm`` of the image tokens as a :class:`LowRank` (see the module docstring);
        ``var_b``, ``singles_b``, ``blocks_b``: the layer's per-image ``var``, ``fb`` and ``fw*``."""
        c = state.r.shape[1]
        r_c = state.r - state.r.mean(-1, keepdim=True)  # the mean of B is in B' (per image)
        cross = (state.zt * state.cross_rows(singles_b, blocks_b)).sum(0, keepdim=True)
        quad = (((r_c @ r_c.t()) @ state.zt) * state.zt).sum(0, keepdim=True)
        var = var_b + (2.0 / c) * cross + quad / c  # of B + Z R, per pixel; X's is s^2 times it
        s = state.scaled(torch.rsqrt(state.scaled(state.scaled(var)) + norm.eps))  # 1 x N
        # X' = s' (B' + Z R_c gamma) + beta: beta's row of Z is 1 / s'
        zt = torch.cat([state.zt, 1.0 / s])
        r = torch.cat([r_c * norm.weight, norm.bias[None]])
        beta = slice(state.singles, state.singles + 1)
        return LowRank(s, zt, r, [*state.parts, beta], state.singles + 1)

    # -- upscaling ----------------------------------------------------------------------------

    def _upscale(self, state: LowRank, hyper_in: torch.Tensor, image: dict) -> torch.Tensor:
        """All mask tokens' low-res logits ``1 x M x 256 x 256`` (as :meth:`MaskDecoder.upscale_rows`)."""
        up1, norm, act1, up2, act2 = self.mask_decoder.output_upscaling
        c1, c2 = up1.out_channels, up2.out_channels
        # The first transposed convolution of X / s (the last LayerNorm's row of 1 / s ends Z,
        # so the bias, divided by s, rides on its row of R W1), each pixel's channels centred
        # (:func:`centred_groups`): y = (conv(X) - mean) / s, N x (dy, dx, C1).
        rw1 = state.r @ up1_matrix(up1)
        rw1 = centred_groups(torch.cat([rw1[:-1], rw1[-1:] + up1.bias.repeat(4)]), c1)
        y = image["up1"] + state.zt.t() @ rw1
        h, w = self.prompt_encoder.image_embedding_hw
        # Rows into image order (2h x 2w pixels) once, on 64-float blocks, so that the masks
        # need only cheap reorders at the end instead of one over every 2 x 2 offset.
        y = y.reshape(h, w, 2, 2, c1).permute(0, 2, 1, 3, 4).reshape(4 * h * w, c1)
        inv_s = state.unscaled(torch.ones(1, h * w)).reshape(h, 1, w, 1).expand(h, 2, w, 2).reshape(-1)
        if self.sam2:
            y = y + image["skip1"] * inv_s[:, None]
        # The LayerNorm of s * y (centred) is y over the root mean square of y with eps / s^2: a
        # few passes that onnxruntime-web runs in about 60 % of its LayerNormalization's time
        # (natively about 85 %). The per-pixel scalars stay a flat vector (onnxruntime
        # broadcasts over a trailing axis of 1 element by element).
        rms = torch.sqrt(torch.linalg.vector_norm(y, dim=-1).square() / c1 + norm.eps * inv_s * inv_s)
        x = act1(y / rms[:, None] * norm.weight + norm.bias)
        m = hyper_in.shape[0]
        # Per output row offset dy: the second transposed convolution's (dx, C2) columns, then
        # each dx group of C2 channels times the hypernetwork weights (one product with a
        # block-diagonal (2 C2) x (M, dx) matrix). Each dy's masks are then M x (2h x 2w x dx),
        # one cheap move of the M axis, and the two dy halves interleave by a concatenation.
        w2 = up2.weight.permute(0, 2, 3, 1).reshape(c1, 2, 2 * c2)  # C1 x dy x (dx, C2)
        eye = torch.eye(2, dtype=x.dtype)
        blocks = (eye[:, None, None, :] * hyper_in.t()[None, :, :, None]).reshape(2 * c2, 2 * m)
        halves = []
        for dy in range(2):
            bias = image["skip0"][dy] if self.sam2 else up2.bias.repeat(2)
            masks = act2(x @ w2[:, dy] + bias) @ blocks  # 4N x (M, dx)
            halves.append(masks.reshape(-1, m, 2).transpose(0, 1).reshape(m, 2 * h, 1, 4 * w))
        return torch.cat(halves, dim=2).reshape(1, m, 4 * h, 4 * w)
