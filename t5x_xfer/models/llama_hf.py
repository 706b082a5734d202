"""The Llama family's Hugging Face mapping (LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM).

One table (:func:`weight_table`) lists every parameter, in the unscanned layout, with its
Hugging Face name and layout transform; ``t5x_xfer.hf`` reads it in both directions (and
stacks or unstacks the layers for a scanned config). A config with a feature this
implementation does not have (sliding-window attention, mixture of experts, another rope
type, partial rotary embeddings, another activation) fails naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from t5x_xfer.models.decoder_config import MODEL_TYPES, ROPE_TYPES, DecoderConfig

ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")
_ARCH = dict(zip(MODEL_TYPES, ARCHITECTURES, strict=True))
# Buffers older checkpoints saved beside the weights; recomputed here.
IGNORED = ("model.rotary_emb.inv_freq",)
# config.json fields of features this implementation does not have.
_MOE_FIELDS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_intermediate_size")

Transform = tuple[
    Callable[[np.ndarray, DecoderConfig], np.ndarray], Callable[[np.ndarray], np.ndarray]
]


def _heads(n_heads: Callable[[DecoderConfig], int]) -> Transform:
    """[heads * head_dim, hidden] (torch Linear) <-> [hidden, heads, head_dim]."""
    return (
        lambda w, c: w.T.reshape(c.hidden_size, n_heads(c), c.head_dim),
        lambda a: a.reshape(a.shape[0], -1).T,
    )


def _head_bias(n_heads: Callable[[DecoderConfig], int]) -> Transform:
    return (lambda w, c: w.reshape(n_heads(c), c.head_dim), lambda a: a.reshape(-1))


TRANSFORMS: dict[str, Transform] = {
    "copy": (lambda w, c: w, lambda a: a),
    "transpose": (lambda w, c: w.T, lambda a: a.T),
    "q": _heads(lambda c: c.num_attention_heads),
    "kv": _heads(lambda c: c.num_key_value_heads),
    "q_bias": _head_bias(lambda c: c.num_attention_heads),
    "kv_bias": _head_bias(lambda c: c.num_key_value_heads),
    # [hidden, heads * head_dim] <-> [heads, head_dim, hidden]
    "out": (
        lambda w, c: w.T.reshape(c.num_attention_heads, c.head_dim, c.hidden_size),
        lambda a: a.reshape(-1, a.shape[-1]).T,
    ),
}


def weight_table(cfg: DecoderConfig) -> Iterator[tuple[tuple[str, ...], str, str]]:
    """(our param path, Hugging Face key, transform) for every parameter of ``cfg``."""
    yield ("embedding",), "model.embed_tokens.weight", "copy"
    for i in range(cfg.num_hidden_layers):
        ours, theirs = f"layers_{i}", f"model.layers.{i}"
        attn = (ours, "self_attn")
        for name, hf, kind in (("query", "q", "q"), ("key", "k", "kv"), ("value", "v", "kv")):
            yield (*attn, name), f"{theirs}.self_attn.{hf}_proj.weight", kind
            if cfg.qkv_bias:
                yield (*attn, f"{name}_bias"), f"{theirs}.self_attn.{hf}_proj.bias", f"{kind}_bias"
        yield (*attn, "out"), f"{theirs}.self_attn.o_proj.weight", "out"
        if cfg.o_bias:
            yield (*attn, "out_bias"), f"{theirs}.self_attn.o_proj.bias", "copy"
        if cfg.qk_norm:
            yield (*attn, "query_norm", "scale"), f"{theirs}.self_attn.q_norm.weight", "copy"
            yield (*attn, "key_norm", "scale"), f"{theirs}.self_attn.k_norm.weight", "copy"
        for name in ("gate", "up", "down"):
            yield (ours, "mlp", name), f"{theirs}.mlp.{name}_proj.weight", "transpose"
            if cfg.mlp_bias:
                yield (ours, "mlp", f"{name}_bias"), f"{theirs}.mlp.{name}_proj.bias", "copy"
        for norm in ("input_layernorm", "post_attention_layernorm"):
            yield (ours, norm, "scale"), f"{theirs}.{norm}.weight", "copy"
    yield ("norm", "scale"), "model.norm.weight", "copy"
    if not cfg.tie_word_embeddings:
        yield ("lm_head",), "lm_head.weight", "transpose"


def _rope(hf: Mapping[str, Any], source: str) -> tuple[float, dict[str, Any] | None]:
    """(rope_theta, rope_scaling) from either config.json form: transformers 5's
    ``rope_parameters`` or the older ``rope_theta`` + ``rope_scaling``."""
    params = hf.get("rope_parameters") if isinstance(hf.get("rope_parameters"), dict) else {}
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    scaling = dict(hf.get("rope_scaling") or params)
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind not in ROPE_TYPES:
        raise ValueError(
            f"{source}: rope type {kind!r} is not supported; supported: {', '.join(ROPE_TYPES)}"
        )
    factor = scaling.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0))
    if factor != 1.0:
        raise ValueError(f"{source}: partial_rotary_factor={factor} is not supported (only 1.0)")
    if kind == "default":
        return float(theta), None
    scaling.setdefault("original_max_position_embeddings", hf.get("max_position_embeddings"))
    return float(theta), {k: v for k, v in scaling.items() if k not in ("type", "rope_theta")}


def _unsupported(hf: Mapping[str, Any], source: str) -> None:
    moe = [k for k in _MOE_FIELDS if hf.get(k)]
    if moe:
        raise ValueError(f"{source}: mixture-of-experts models are not supported (fields {moe})")
    if hf.get("use_sliding_window"):
        raise ValueError(
            f"{source}: use_sliding_window=true: sliding-window attention is not supported"
        )
    layer_types = set(hf.get("layer_types") or [])
    if layer_types - {"full_attention"}:
        raise ValueError(
            f"{source}: layer_types {sorted(layer_types)}: only full_attention is supported"
        )


def config_from_hf(hf: Mapping[str, Any], source: str, dtype: str = "float32") -> DecoderConfig:
    """Our config from a Hugging Face ``config.json`` dict; ``source`` names it in errors."""
    archs = hf.get("architectures") or []
    bad = [a for a in archs if a not in ARCHITECTURES]
    if hf.get("model_type") not in MODEL_TYPES or bad:
        raise ValueError(
            f"{source}: unsupported architecture (model_type={hf.get('model_type')!r}, "
            f"architectures={archs}); supported: model_type in {list(MODEL_TYPES)} with "
            f"architectures {list(ARCHITECTURES)}"
        )
    _unsupported(hf, source)
    missing = [
        k
        for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers")
        if k not in hf
    ]
    if missing:
        raise ValueError(f"{source}: missing required fields {missing}")
    theta, scaling = _rope(hf, source)
    eos = hf.get("eos_token_id", 2)
    try:
        return DecoderConfig(
            model_type=hf["model_type"],
            vocab_size=hf["vocab_size"],
            hidden_size=hf["hidden_size"],
            intermediate_size=hf["intermediate_size"],
            num_hidden_layers=hf["num_hidden_layers"],
            num_attention_heads=hf["num_attention_heads"],
            num_key_value_heads=hf.get("num_key_value_heads"),
            head_dim=hf.get("head_dim"),
            hidden_act=hf.get("hidden_act", "silu"),
            max_position_embeddings=hf.get("max_position_embeddings", 4096),
            rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
            rope_theta=theta,
            rope_scaling=scaling,
            attention_bias=bool(hf.get("attention_bias", False)),
            mlp_bias=bool(hf.get("mlp_bias", False)),
            attention_dropout=float(hf.get("attention_dropout", 0.0)),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            bos_token_id=hf.get("bos_token_id"),
            eos_token_id=eos[0] if isinstance(eos, list) else eos,
            pad_token_id=hf.get("pad_token_id"),
            dtype=dtype,
        )
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from e


def config_to_hf(cfg: DecoderConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "architectures": [_ARCH[cfg.model_type]],
        "model_type": cfg.model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": cfg.hidden_act,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": cfg.rope_scaling,
        "attention_dropout": cfg.attention_dropout,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "use_cache": True,
        "initializer_range": 0.02,
    }
    if cfg.model_type != "qwen2":
        out["attention_bias"] = cfg.attention_bias
    if cfg.model_type == "llama":
        out["mlp_bias"] = cfg.mlp_bias
    if cfg.model_type == "qwen2":
        out.update(use_sliding_window=False, sliding_window=None)
    return out


def prepare_tensors(
    tensors: Mapping[str, np.ndarray], cfg: DecoderConfig, source: str
) -> dict[str, np.ndarray]:
    """The tensors the table reads, after reconciling the output layer with the config."""
    tensors = dict(tensors)
    lm_head = tensors.get("lm_head.weight")
    if cfg.tie_word_embeddings and lm_head is not None:
        if not np.array_equal(lm_head, tensors.get("model.embed_tokens.weight")):
            raise ValueError(
                f"{source}: lm_head.weight differs from model.embed_tokens.weight, but the "
                "config ties them; set tie_word_embeddings=false in config.json"
            )
        del tensors["lm_head.weight"]
    for key in [k for k in tensors if k.endswith("rotary_emb.inv_freq")]:
        del tensors[key]
    return tensors
