"""Model configuration of the decoder-only Llama family: Llama (incl. CodeLlama, DeepSeek-Coder),
Qwen2 (incl. Qwen2.5-Coder) and Qwen3, one config with Hugging Face's field names.

What differs between the three is the config: ``model_type`` "qwen2" adds biases to the q, k
and v projections (never to o), "qwen3" adds a per-head RMSNorm of queries and keys before the
rotary embedding; ``attention_bias`` (Llama, Qwen3) puts biases on q, k, v and o, ``mlp_bias``
(Llama) on the MLP. ``head_dim`` may differ from hidden_size / heads (Qwen3).
``num_key_value_heads`` < heads is grouped-query attention. The compute ``dtype``,
``scan_layers`` and ``remat_policy`` are ours.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from t5x_xfer.models.base import DTYPES

MODEL_TYPES = ("llama", "qwen2", "qwen3")
ROPE_TYPES = ("default", "linear", "llama3")
ROPE_FIELDS = {
    "default": (),
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
}
# Activation checkpointing of each layer in training: "none" keeps every activation, "full"
# recomputes the layer in the backward pass, "dots" keeps only matmul outputs.
REMAT_POLICIES = ("none", "full", "dots")


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"DecoderConfig.{name} must be a positive integer, got {value!r}")


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Hyper-parameters of a decoder-only LM of the Llama family; validated on construction.

    ``rope_scaling``: None, or a dict with ``rope_type`` (or HF's older ``type``) "linear"
    (``factor``) or "llama3" (``factor``, ``low_freq_factor``, ``high_freq_factor``,
    ``original_max_position_embeddings``). ``bos_token_id`` None means the tokenizer has no
    BOS (Qwen): sequences then start with EOS, the document separator it was trained with.
    """

    model_type: str = "llama"
    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 4096
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    attention_bias: bool = False
    mlp_bias: bool = False
    attention_dropout: float = 0.0
    tie_word_embeddings: bool = False
    bos_token_id: int | None = 1
    eos_token_id: int = 2
    pad_token_id: int | None = None
    dtype: str = "float32"
    scan_layers: bool = False
    remat_policy: str = "none"

    # Fields that change how the model runs, not which parameters it has.
    RUNTIME_FIELDS = ("attention_dropout", "dtype", "remat_policy", "max_position_embeddings")

    def __post_init__(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise ValueError(
                f"DecoderConfig.model_type={self.model_type!r} is not supported; "
                f"allowed: {', '.join(MODEL_TYPES)}"
            )
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "max_position_embeddings",
        ):
            _positive(name, getattr(self, name))
        if self.num_key_value_heads is None:
            object.__setattr__(self, "num_key_value_heads", self.num_attention_heads)
        if self.head_dim is None:
            if self.hidden_size % self.num_attention_heads:
                raise ValueError(
                    f"DecoderConfig: hidden_size {self.hidden_size} does not divide by "
                    f"num_attention_heads {self.num_attention_heads}; give head_dim"
                )
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        _positive("num_key_value_heads", self.num_key_value_heads)
        _positive("head_dim", self.head_dim)
        if self.head_dim % 2:
            raise ValueError(f"DecoderConfig.head_dim must be even (rotary), got {self.head_dim}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"DecoderConfig.num_attention_heads {self.num_attention_heads} must be a multiple "
                f"of num_key_value_heads {self.num_key_value_heads} (grouped-query attention)"
            )
        if self.hidden_act != "silu":
            raise ValueError(f"DecoderConfig.hidden_act={self.hidden_act!r}; allowed: silu")
        if self.dtype not in DTYPES:
            raise ValueError(f"DecoderConfig.dtype={self.dtype!r}; allowed: {', '.join(DTYPES)}")
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(
                f"DecoderConfig.remat_policy={self.remat_policy!r}; allowed: "
                f"{', '.join(REMAT_POLICIES)}"
            )
        if not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError(
                f"DecoderConfig.attention_dropout must be in [0, 1), got {self.attention_dropout}"
            )
        object.__setattr__(self, "rope_scaling", _check_rope_scaling(self.rope_scaling))

    def __hash__(self) -> int:  # rope_scaling is a dict: hash the JSON form
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    @property
    def rope_type(self) -> str:
        return (self.rope_scaling or {}).get("rope_type", "default")

    @property
    def qkv_bias(self) -> bool:
        return self.model_type == "qwen2" or self.attention_bias

    @property
    def o_bias(self) -> bool:
        return self.model_type != "qwen2" and self.attention_bias

    @property
    def qk_norm(self) -> bool:
        return self.model_type == "qwen3"

    @property
    def start_token_id(self) -> int:
        """The token every sequence starts with: BOS, or EOS for tokenizers without one."""
        return self.eos_token_id if self.bos_token_id is None else self.bos_token_id

    def replace(self, **changes: Any) -> DecoderConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecoderConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown DecoderConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def _check_rope_scaling(scaling: dict[str, Any] | None) -> dict[str, Any] | None:
    """A normalised copy (``rope_type`` key, only the fields it uses), or an error naming the
    field and what is supported."""
    if scaling is None:
        return None
    if not isinstance(scaling, dict):
        raise ValueError(f"DecoderConfig.rope_scaling must be a dict or None, got {scaling!r}")
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind not in ROPE_TYPES:
        raise ValueError(
            f"DecoderConfig.rope_scaling rope_type={kind!r} is not supported; "
            f"allowed: {', '.join(ROPE_TYPES)}"
        )
    missing = [f for f in ROPE_FIELDS[kind] if f not in scaling]
    if missing:
        raise ValueError(f"DecoderConfig.rope_scaling of type {kind!r} lacks {missing}")
    if kind == "default":
        return None
    return {"rope_type": kind, **{f: scaling[f] for f in ROPE_FIELDS[kind]}}
