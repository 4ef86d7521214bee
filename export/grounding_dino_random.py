"""Grounding DINO folders of random weights, in the Hugging Face layout, for tests and benches.

Export side (needs transformers and torch). The folder is what ``save_pretrained`` writes for
``GroundingDinoForObjectDetection`` (``config.json``, ``model.safetensors``) plus the tokenizer's
files (``tokenizer.json`` ...) built by transformers from a WordPiece vocabulary written here, so
the real loading code runs on small data. The boxes it finds are not objects.

    python -m sam_onnx.export.grounding_dino_random swint OUT_DIR [--seed 0]

Shapes are data (:data:`SHAPES`): ``test`` (0.9 M parameters: Swin embed 24, depths 1,1,1,1,
d_model 32, one encoder and two decoder layers — one decoder layer trips transformers' weight
tying — BERT of width 32) and ``swint`` (Grounding-DINO-tiny's shapes: Swin-T, d_model 256,
6 + 6 layers, BERT-base, 900 queries).

transformers hard-codes the phrase separators' token ids (``[CLS]`` 101, ``[SEP]`` 102, ``.``
1012, ``?`` 1029: BERT-base's), so the vocabulary puts them there and fills the gaps with
``[unusedN]`` entries, as BERT's own vocabulary does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# The words the vocabulary knows besides the special tokens (tests' prompts use these).
_WORD_LIST = (
    "a an the cat cats dog dogs remote control car bird person people tree house chair table cup "
    "bottle phone book clock horse sheep cow boat plane train bus bike red blue green black white "
    "small big left right on in of and with sky road grass water ##s ##ing ##ed sofa lamp window "
    "door shoe hat bag ball box"
)
WORDS = tuple(_WORD_LIST.split(" "))
SEPARATOR_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, ".": 1012, "?": 1029}


@dataclass(frozen=True)
class RandomShape:
    """The numbers of one Grounding DINO shape."""

    swin_embed: int
    swin_depths: tuple[int, ...]
    swin_heads: tuple[int, ...]
    swin_window: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    ffn_dim: int
    heads: int
    num_queries: int
    bert_width: int
    bert_layers: int
    bert_heads: int
    vocab_size: int


SHAPES: dict[str, RandomShape] = {
    "test": RandomShape(24, (1, 1, 1, 1), (1, 1, 2, 2), 7, 32, 1, 2, 64, 2, 50, 32, 1, 2, 1030),
    "swint": RandomShape(96, (2, 2, 6, 2), (3, 6, 12, 24), 7, 256, 6, 6, 2048, 8, 900, 768, 12, 12, 30522),
}


def vocabulary(size: int) -> list[str]:
    """A WordPiece vocabulary of ``size`` entries: the special tokens at BERT-base's ids,
    :data:`WORDS` after ``[MASK]``, ``[unusedN]`` everywhere else."""
    vocab = [f"[unused{i}]" for i in range(size)]
    for token, index in SEPARATOR_IDS.items():
        vocab[index] = token
    for offset, word in enumerate(WORDS):
        vocab[104 + offset] = word
    return vocab


def grounding_dino_config(shape: RandomShape):
    """The transformers ``GroundingDinoConfig`` of ``shape``."""
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    backbone = SwinConfig(
        embed_dim=shape.swin_embed,
        depths=list(shape.swin_depths),
        num_heads=list(shape.swin_heads),
        window_size=shape.swin_window,
        out_features=["stage2", "stage3", "stage4"],
    )
    text = BertConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.bert_width,
        num_hidden_layers=shape.bert_layers,
        num_attention_heads=shape.bert_heads,
        intermediate_size=4 * shape.bert_width,
    )
    return GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=shape.d_model,
        encoder_layers=shape.encoder_layers,
        decoder_layers=shape.decoder_layers,
        encoder_ffn_dim=shape.ffn_dim,
        decoder_ffn_dim=shape.ffn_dim,
        encoder_attention_heads=shape.heads,
        decoder_attention_heads=shape.heads,
        num_queries=shape.num_queries,
    )


def write_tokenizer(out_dir: Path, vocab_size: int) -> None:
    """Let transformers' BERT tokenizer, built on :func:`vocabulary`, save its files
    (``tokenizer.json``, ``tokenizer_config.json``)."""
    from transformers import BertTokenizer

    vocab = {token: index for index, token in enumerate(vocabulary(vocab_size))}
    BertTokenizer(vocab=vocab, do_lower_case=True).save_pretrained(out_dir)


def write_random_grounding_dino(shape: str, out_dir: str | Path, *, seed: int = 0) -> Path:
    """Save a ``GroundingDinoForObjectDetection`` of :data:`SHAPES`\\ [``shape``] with random
    weights (transformers' init, seeded) and its tokenizer into ``out_dir``; returns it."""
    import torch
    from transformers import GroundingDinoForObjectDetection

    dims = SHAPES[shape]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = GroundingDinoForObjectDetection(grounding_dino_config(dims)).eval()
    model.save_pretrained(out)
    write_tokenizer(out, dims.vocab_size)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write_random_grounding_dino(args.shape, args.out_dir, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
