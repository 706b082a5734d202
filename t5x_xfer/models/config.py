"""Model configuration of the T5 family (T5, T5 v1.1, mT5, CodeT5+ encoder-decoders).

Field names follow Hugging Face's ``T5Config`` so that ``config.json`` maps one to one; the
compute ``dtype`` is ours (parameters are always float32).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from t5x_xfer.models.base import DTYPES

FEED_FORWARD_PROJ = ("relu", "gelu", "silu", "gated-gelu", "gated-relu", "gated-silu")


@dataclasses.dataclass(frozen=True)
class T5Config:
    """Hyper-parameters of an encoder-decoder T5; validated on construction.

    ``feed_forward_proj`` picks the variant: "relu" (original T5, CodeT5+) or "gated-gelu"
    (T5 v1.1, mT5). ``tie_word_embeddings`` shares input and output embeddings and rescales
    the decoder output by ``d_model**-0.5`` before the logits, as the original T5 does.
    """

    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_decoder_layers: int | None = None
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "relu"
    tie_word_embeddings: bool = True
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "d_model",
            "d_kv",
            "d_ff",
            "num_layers",
            "num_heads",
            "relative_attention_num_buckets",
            "relative_attention_max_distance",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"T5Config.{name} must be a positive integer, got {value!r}")
        if self.num_decoder_layers is None:  # Hugging Face's default: as many as the encoder
            object.__setattr__(self, "num_decoder_layers", self.num_layers)
        if self.num_decoder_layers < 1:
            raise ValueError(
                f"T5Config.num_decoder_layers must be a positive integer or None, "
                f"got {self.num_decoder_layers!r}"
            )
        if self.feed_forward_proj not in FEED_FORWARD_PROJ:
            raise ValueError(
                f"T5Config.feed_forward_proj={self.feed_forward_proj!r} is not supported; "
                f"allowed: {', '.join(FEED_FORWARD_PROJ)}"
            )
        if self.dtype not in DTYPES:
            raise ValueError(f"T5Config.dtype={self.dtype!r}; allowed: {', '.join(DTYPES)}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"T5Config.dropout_rate must be in [0, 1), got {self.dropout_rate!r}")

    @property
    def is_gated(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")

    @property
    def activation(self) -> str:
        """Activation as Hugging Face resolves it ("gated-gelu" is the tanh-approximate GELU)."""
        if self.feed_forward_proj == "gated-gelu":
            return "gelu_new"
        return self.feed_forward_proj.split("-")[-1]

    def replace(self, **changes: Any) -> T5Config:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> T5Config:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown T5Config fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> T5Config:
        return cls.from_dict(json.loads(Path(path).read_text()))
