"""The text prompt into token ids and back, with the detector's own tokenizer (``tokenizers``).

The export ships the model folder's ``tokenizer.json``; its sha256, vocabulary size and separator
ids are in the graph's metadata, and a tokenizer that is not the detector's is refused when it is
opened. A prompt is checked before any graph runs (each refusal is an
:class:`~sam_onnx.errors.InvalidPromptError` naming what came):

- empty, or only separators (``.``/``?``): nothing to look for;
- longer than the model's ``max_text_len`` tokens (``[CLS]`` and ``[SEP]`` included): refused, not
  truncated: transformers' model would drop the tokens past it silently, and with them the last
  phrases and the closing separator of the one it cuts;
- a word the vocabulary cannot spell (it becomes ``[UNK]``: emoji, most scripts beyond the
  vocabulary's): refused naming the words, since the model would score an unknown token as if it
  were one of the phrase's. Accents are stripped and case folded by the tokenizer's own normaliser
  (``café`` is ``cafe``), as for transformers.

Labels are decoded as transformers' ``batch_decode`` does (special tokens kept, and its
``clean_up_tokenization`` when the folder's ``tokenizer_config.json`` asks for it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sam_onnx.errors import InvalidPromptError, MissingDependencyError, ModelMismatchError

UNKNOWN = "[UNK]"
SEPARATOR_TOKENS = ("[CLS]", "[SEP]", ".", "?")
# transformers' clean_up_tokenization, in its order
_CLEAN_UP = (
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
    (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
)  # fmt: skip


def merged_prompt(text: str | Sequence[str]) -> str:
    """A list of phrases as one prompt, as transformers' processor merges candidate labels
    (``["A cat", "a dog"]`` -> ``"a cat. a dog."``); a string is returned as it is."""
    if isinstance(text, str):
        return text
    return ". ".join(t.strip().lower() for t in text) + "."


class PromptTokenizer:
    """The detector's tokenizer, checked against the graph's metadata.

    Arguments:
      path: ``tokenizer.json`` beside ``detector.onnx``.
      metadata: the detector graph's metadata (``tokenizer_sha256``, ``vocab_size``,
        ``separator_token_ids``, ``max_text_len``).
    """

    def __init__(self, path: Path, metadata: dict[str, str]) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise MissingDependencyError(
                "text prompts need the tokenizers package: pip install 'sam-onnx[text]'"
            ) from None
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelMismatchError(self.path, "missing: the detector export ships its tokenizer.json")
        self.separator_ids = np.array([int(i) for i in metadata["separator_token_ids"].split(",")])
        self.max_tokens = int(metadata["max_text_len"])
        self._check_sha256(metadata["tokenizer_sha256"])
        self.tokenizer = Tokenizer.from_file(str(self.path))
        self._check_vocabulary(int(metadata["vocab_size"]))
        self.unknown_id = self.tokenizer.token_to_id(UNKNOWN)
        self.clean_up = bool(_read_json(self.path.with_name("tokenizer_config.json")).get(
            "clean_up_tokenization_spaces", False
        ))  # fmt: skip

    def encode(self, prompt: str) -> np.ndarray:
        """``1 x T`` int64 token ids of ``prompt`` (``[CLS]`` ... ``[SEP]``), checked (module doc)."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidPromptError("at least one phrase, e.g. 'a cat. a remote.'", repr(prompt))
        encoding = self.tokenizer.encode(prompt)
        ids = np.array(encoding.ids, dtype=np.int64)
        if np.isin(ids, self.separator_ids).all():
            raise InvalidPromptError("at least one word besides the separators '.' and '?'", repr(prompt))
        if len(ids) > self.max_tokens:
            raise InvalidPromptError(
                f"at most {self.max_tokens} tokens with [CLS] and [SEP] (refused rather than truncated: "
                "the model would silently drop the last phrases)",
                f"{len(ids)} tokens for a prompt of {len(prompt)} characters",
            )
        self._check_known(prompt, encoding, ids)
        return ids[None]

    def decode(self, ids: Sequence[int]) -> str:
        """A box's label from its token ids, as transformers' ``batch_decode``."""
        text = self.tokenizer.decode(list(map(int, ids)), skip_special_tokens=False)
        if self.clean_up:
            for before, after in _CLEAN_UP:
                text = text.replace(before, after)
        return text

    def _check_known(self, prompt: str, encoding, ids: np.ndarray) -> None:
        unknown = [i for i, token_id in enumerate(ids) if token_id == self.unknown_id]
        if unknown:
            words = sorted({prompt[slice(*encoding.offsets[i])] for i in unknown})
            raise InvalidPromptError(
                "words the detector's vocabulary can spell (each of these would be the unknown token "
                "[UNK], which the model cannot look for)",
                f"{', '.join(map(repr, words))} in {prompt!r}",
            )

    def _check_sha256(self, expected: str) -> None:
        found = hashlib.sha256(self.path.read_bytes()).hexdigest()
        if found != expected:
            raise ModelMismatchError(
                self.path,
                f"is not the tokenizer the detector was exported with (sha256 {found[:12]}..., the "
                f"graph's metadata says {expected[:12]}...): copy the tokenizer.json of the model "
                "folder the export came from, or export again",
            )

    def _check_vocabulary(self, vocab_size: int) -> None:
        ids = [self.tokenizer.token_to_id(t) for t in SEPARATOR_TOKENS]
        size = self.tokenizer.get_vocab_size()
        if size != vocab_size or ids != self.separator_ids.tolist():
            raise ModelMismatchError(
                self.path,
                f"has {size} tokens and the separators {SEPARATOR_TOKENS} at {ids}; the detector's text "
                f"model has {vocab_size} and {self.separator_ids.tolist()}",
            )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
