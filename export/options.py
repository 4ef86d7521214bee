"""``ExportOptions``: what one ``sam-export`` run writes (a frozen record, checked when made)."""

from __future__ import annotations

from dataclasses import dataclass

from ..contract import DEFAULT_LAYOUT, LAYOUTS
from ..errors import ConflictingOptionsError, InvalidInputError
from ..variants import SAM2_VARIANTS, get_variant
from .encoder_graph import INPUT_KINDS, InputKind
from .onnx_file import check_opset
from .validate import MIN_MASK_IOU


@dataclass(frozen=True)
class ExportOptions:
    """What to export. Defaults: fp32 encoder, single-mask official decoder, batched decoder,
    onnxsim, validation on.

    Arguments:
      model_type: ``vit_b``/``vit_l``/``vit_h`` or SAM 2's ``hiera_t``/``hiera_s``/``hiera_b+``/
        ``hiera_l``; ``None`` detects it (and the family) from the checkpoint.
      opset: ONNX opset, 17..20.
      encoder, decoder: export the encoder graph; the decoder graphs (official and batched).
      batched_decoder: also write ``decoder_batched.onnx``.
      fast_decoder: also write the fast decoder pair ``decoder_image.onnx`` + ``decoder_click.onnx``.
      encoder_input: ``normalized`` (1x3x1024x1024 float32) or ``uint8`` (the resized image).
      multimask: ``decoder.onnx`` returns all 4 mask tokens instead of the selected one.
      use_stability_score, return_extra_metrics: the official export's options (``decoder.onnx``).
      fp16: also write ``encoder.fp16.onnx``; int8: also write int8 copies of every graph.
      simplify: run onnxsim (falls back to the traced graph when it fails).
      validate: compare every graph with the PyTorch model and fail beyond tolerance.
      min_mask_iou: the least mean mask IoU of an fp16/int8 graph against fp32.
      layout: ``sam-onnx`` (ours) or ``samexporter``: ``encoder.onnx`` and ``decoder.onnx`` only,
        with the names and order samexporter writes and AnyLabeling reads
        (:data:`sam_onnx.contract.SAMEXPORTER_LAYOUTS`); the layout fixes the encoder's input.
      anylabeling_config: also write AnyLabeling's ``config.yaml`` beside the graphs (samexporter
        layout, encoder and decoder).
      image_only: no SAM 2.1 video graphs (by default written with the decoders when the
        checkpoint holds the video modules; see :mod:`.sam2_video_plan`).
    """

    model_type: str | None = None
    opset: int = 17
    encoder: bool = True
    decoder: bool = True
    batched_decoder: bool = True
    fast_decoder: bool = True
    encoder_input: InputKind = "normalized"
    multimask: bool = False
    use_stability_score: bool = False
    return_extra_metrics: bool = False
    fp16: bool = False
    int8: bool = False
    simplify: bool = True
    validate: bool = True
    min_mask_iou: float = MIN_MASK_IOU
    layout: str = DEFAULT_LAYOUT
    anylabeling_config: bool = False
    image_only: bool = False

    def __post_init__(self) -> None:
        if self.model_type is not None and self.model_type not in SAM2_VARIANTS:
            get_variant(self.model_type)  # raises, listing the SAM v1 names
        check_opset(self.opset)
        if self.encoder_input not in INPUT_KINDS:
            raise InvalidInputError("encoder input", f"one of {INPUT_KINDS}", repr(self.encoder_input))
        if not 0.0 <= self.min_mask_iou <= 1.0:
            raise InvalidInputError("min_mask_iou", "a number from 0 to 1", repr(self.min_mask_iou))
        if not (self.encoder or self.decoder):
            raise ConflictingOptionsError(
                "encoder-only", "decoder-only", "together they leave nothing to export"
            )
        encoder_options = {"fp16": self.fp16, "encoder_input=uint8": self.encoder_input == "uint8"}
        decoder_options = {
            "multimask": self.multimask,
            "use_stability_score": self.use_stability_score,
            "return_extra_metrics": self.return_extra_metrics,
        }
        for name, given in encoder_options.items():
            if given and not self.encoder:
                raise ConflictingOptionsError(name, "decoder-only", f"{name} applies to the encoder graph")
        for name, given in decoder_options.items():
            if given and not self.decoder:
                raise ConflictingOptionsError(name, "encoder-only", f"{name} applies to the decoder graph")
        self._check_layout()

    @property
    def extensions(self) -> bool:
        """Whether the layout has our extensions (the batched decoder, the fast pair): ours only."""
        return self.layout == DEFAULT_LAYOUT

    def _check_layout(self) -> None:
        if self.layout not in LAYOUTS:
            raise InvalidInputError("layout", f"one of {LAYOUTS}", repr(self.layout))
        if self.layout == DEFAULT_LAYOUT:
            if self.anylabeling_config:
                why = "AnyLabeling reads the samexporter layout"
                raise ConflictingOptionsError("anylabeling-config", f"layout={DEFAULT_LAYOUT}", why)
            return
        what = f"layout={self.layout}"
        fixed = {
            "encoder_input=uint8": self.encoder_input == "uint8",  # the layout fixes the encoder input
            "fp16": self.fp16,  # reduced precision is validated on our layout's names only
            "int8": self.int8,
            "use_stability_score": self.use_stability_score,
            "return_extra_metrics": self.return_extra_metrics,
        }
        for name, given in fixed.items():
            if given:
                raise ConflictingOptionsError(name, what, f"{what} writes fp32 graphs with its own interface")
        if self.anylabeling_config and not (self.encoder and self.decoder):
            raise ConflictingOptionsError(
                "anylabeling-config", "encoder-only/decoder-only", "AnyLabeling's config names both graphs"
            )
