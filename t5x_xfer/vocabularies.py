"""seqio vocabularies: SentencePiece (T5, mT5; seqio's own) and Hugging Face ``tokenizer.json``.

``HuggingFaceVocabulary`` serves byte-level BPE tokenizers such as CodeT5+'s, which keep every
space, tab and newline (code depends on them), and works both in Python and inside tf.data
pipelines (through ``tf.numpy_function``, since no TF op implements byte-level BPE).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

EOS_CANDIDATES = ("</s>", "<|endoftext|>", "<eos>")
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")  # CodeT5+'s ids 0..3


def train_byte_level_bpe(texts: Sequence[str], path: str | Path, vocab_size: int = 384) -> Path:
    """Train a small CodeT5+-style tokenizer (byte-level BPE, <pad>=0, </s>=2) on ``texts``.

    For the offline debug run and tests, where no real tokenizer can be downloaded; the result
    is a ``tokenizer.json`` that ``HuggingFaceVocabulary`` reads like a real one.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.save(str(path))
    return Path(path)


class HuggingFaceVocabulary(seqio.Vocabulary):
    """A seqio Vocabulary over a Hugging Face ``tokenizers`` JSON file.

    ``tokenizer`` is a ``tokenizer.json`` file, a directory holding one, or a hub id
    (downloaded on first use). The tokenizer is loaded lazily, so gin files and task
    registration never touch the disk or network. seqio pads with id 0, so the tokenizer's
    pad token, if it has one, must be id 0 (true of T5, mT5 and CodeT5+).
    """

    def __init__(self, tokenizer: str, extra_ids: int = 0, eos_token: str | None = None) -> None:
        self._source = str(tokenizer)
        self._eos_token = eos_token
        super().__init__(extra_ids=extra_ids)

    @functools.cached_property
    def tokenizer(self):  # -> tokenizers.Tokenizer
        from tokenizers import Tokenizer

        path = Path(self._source).expanduser()
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.exists():
            hub_id = self._source.count("/") == 1 and not self._source.startswith((".", "/", "~"))
            if not hub_id or self._source.endswith((".json", ".model")) or path.parent.exists():
                raise FileNotFoundError(
                    f"no tokenizer at {path}: give a tokenizer.json, a directory with one, "
                    "or a hub id 'org/name'"
                )
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(self._source, "tokenizer.json"))
        tok = Tokenizer.from_file(str(path))
        pad = tok.token_to_id("<pad>")
        if pad not in (None, 0):
            raise ValueError(f"{path}: <pad> is id {pad}, but seqio pads with id 0")
        return tok

    @functools.cached_property
    def _eos(self) -> int:
        candidates = (self._eos_token,) if self._eos_token else EOS_CANDIDATES
        for token in candidates:
            token_id = self.tokenizer.token_to_id(token)
            if token_id is not None:
                return token_id
        raise ValueError(
            f"tokenizer {self._source} has none of the EOS tokens {list(candidates)}; "
            "pass eos_token= the tokenizer's end-of-sequence token"
        )

    @property
    def eos_id(self) -> int:
        return self._eos

    @property
    def unk_id(self) -> int | None:
        return self.tokenizer.token_to_id("<unk>")

    @property
    def _base_vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def _encode(self, s: str) -> Sequence[int]:
        return self.tokenizer.encode(s, add_special_tokens=False).ids

    def _decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids if 0 <= int(i) < self._base_vocab_size]
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
        def encode(x: bytes | np.ndarray) -> np.ndarray:
            text = x.item() if isinstance(x, np.ndarray) else x
            return np.asarray(self._encode(text.decode("utf-8")), dtype=np.int32)

        def encode_scalar(x: tf.Tensor) -> tf.Tensor:
            ids = tf.numpy_function(encode, [x], tf.int32, stateful=False)
            ids.set_shape([None])
            return ids

        if s.shape.rank == 0:
            return encode_scalar(s)
        return tf.map_fn(
            encode_scalar, s, fn_output_signature=tf.RaggedTensorSpec([None], tf.int32)
        )

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        def decode(x: np.ndarray) -> np.ndarray:
            if x.ndim == 1:
                return np.asarray(self._decode(x.tolist()).encode("utf-8"), dtype=object)
            rows = [self._decode(r.tolist()).encode("utf-8") for r in x.reshape(-1, x.shape[-1])]
            return np.asarray(rows, dtype=object).reshape(x.shape[:-1])

        text = tf.numpy_function(decode, [ids], tf.string, stateful=False)
        text.set_shape(ids.shape[:-1])
        return text

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, HuggingFaceVocabulary)
            and self._source == other._source
            and self.extra_ids == other.extra_ids
            and self._eos_token == other._eos_token
        )

    def __hash__(self) -> int:
        return hash((self._source, self.extra_ids, self._eos_token))

    def __repr__(self) -> str:
        return f"HuggingFaceVocabulary({self._source!r}, extra_ids={self.extra_ids})"


def check_available(vocabulary: Any) -> None:
    """Load the tokenizer now (a local file, or a hub download), so that a missing one fails
    in one line before any work instead of inside TensorFlow's data pipeline."""
    if isinstance(vocabulary, HuggingFaceVocabulary):
        vocabulary.tokenizer  # noqa: B018 (loads and caches it)
        return
    model_file = getattr(vocabulary, "sentencepiece_model_file", None)
    local = isinstance(model_file, str) and "://" not in model_file
    if local and not Path(model_file).expanduser().is_file():
        raise FileNotFoundError(f"no SentencePiece model at {model_file}")


def load_vocabulary(path: str | Path) -> seqio.Vocabulary:
    """The vocabulary of a tokenizer file: ``spiece.model`` (T5, mT5: seqio's
    SentencePieceVocabulary) or ``tokenizer.json`` (CodeT5+ and byte-level BPE:
    HuggingFaceVocabulary).

    ``path`` is either file or a directory holding one (a checkpoint's hf_assets, a Hugging
    Face model dir); SentencePiece wins when both are there, as the T5/mT5 gin files use it.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        if (p / "spiece.model").is_file():
            p = p / "spiece.model"
        elif (p / "tokenizer.json").is_file():
            p = p / "tokenizer.json"
        else:
            raise FileNotFoundError(
                f"no tokenizer in {p}: expected spiece.model or tokenizer.json "
                "(give one with --tokenizer)"
            )
    if not p.is_file():
        raise FileNotFoundError(f"tokenizer {p} does not exist")
    if p.suffix == ".model":
        return seqio.SentencePieceVocabulary(str(p))
    if p.suffix == ".json":
        return HuggingFaceVocabulary(str(p))
    raise ValueError(f"tokenizer {p}: expected a SentencePiece .model or a tokenizer.json")
