"""The T5 family's Hugging Face mapping (T5ForConditionalGeneration, MT5ForConditionalGeneration).

One table (:func:`weight_table`) lists every parameter with its Hugging Face name and layout
transform; import and export both read it (through ``t5x_xfer.hf``, which reaches it as
``EncoderDecoderModel.hf_mapping()``), so the two directions cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from t5x_xfer.models.config import T5Config

MODEL_TYPES = ("t5", "mt5")
ARCHITECTURES = ("T5ForConditionalGeneration", "MT5ForConditionalGeneration")
# Tensors transformers saves that our parameters do not hold (copies of shared.weight).
IGNORED = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")

# Layout transforms between our arrays and Hugging Face's torch (out, in) tensors.
Transform = tuple[Callable[[np.ndarray, T5Config], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def _qkv(w: np.ndarray, c: T5Config) -> np.ndarray:  # [H*K, D] -> [D, H, K]
    return w.T.reshape(c.d_model, c.num_heads, c.d_kv)


def _out(w: np.ndarray, c: T5Config) -> np.ndarray:  # [D, H*K] -> [H, K, D]
    return w.T.reshape(c.num_heads, c.d_kv, c.d_model)


def _transpose(w: np.ndarray, c: T5Config) -> np.ndarray:
    return w.T


def _copy(w: np.ndarray, c: T5Config) -> np.ndarray:
    return w


TRANSFORMS: dict[str, Transform] = {
    "copy": (_copy, lambda a: a),
    "transpose": (_transpose, lambda a: a.T),
    "qkv": (_qkv, lambda a: a.reshape(a.shape[0], -1).T),
    "out": (_out, lambda a: a.reshape(-1, a.shape[-1]).T),
}


def weight_table(cfg: T5Config) -> Iterator[tuple[tuple[str, ...], str, str]]:
    """(our param path, Hugging Face key, transform) for every parameter of ``cfg``."""
    yield ("token_embedder", "embedding"), "shared.weight", "copy"
    mlp = ("wi_0", "wi_1", "wo") if cfg.is_gated else ("wi", "wo")

    def attention(ours: tuple[str, ...], theirs: str) -> Iterator[tuple[tuple[str, ...], str, str]]:
        for name, short, kind in (
            ("query", "q", "qkv"),
            ("key", "k", "qkv"),
            ("value", "v", "qkv"),
            ("out", "o", "out"),
        ):
            yield (*ours, name), f"{theirs}.{short}.weight", kind

    for stack, n_layers, blocks in (
        ("encoder", cfg.num_layers, (("attention", "SelfAttention"), ("mlp", None))),
        (
            "decoder",
            cfg.num_decoder_layers,
            (
                ("self_attention", "SelfAttention"),
                ("encoder_decoder_attention", "EncDecAttention"),
                ("mlp", None),
            ),
        ),
    ):
        yield (
            (stack, "relpos_bias", "rel_embedding"),
            f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            "transpose",
        )
        norms = (
            ("pre_attention_layer_norm", "pre_mlp_layer_norm")
            if stack == "encoder"
            else (
                "pre_self_attention_layer_norm",
                "pre_cross_attention_layer_norm",
                "pre_mlp_layer_norm",
            )
        )
        for i in range(n_layers):
            prefix = f"{stack}.block.{i}.layer"
            for j, ((block, hf_block), norm) in enumerate(zip(blocks, norms, strict=True)):
                yield (
                    (stack, f"layers_{i}", norm, "scale"),
                    f"{prefix}.{j}.layer_norm.weight",
                    "copy",
                )
                if hf_block is None:
                    for w in mlp:
                        yield (
                            (stack, f"layers_{i}", "mlp", w),
                            f"{prefix}.{j}.DenseReluDense.{w}.weight",
                            "transpose",
                        )
                else:
                    yield from attention((stack, f"layers_{i}", block), f"{prefix}.{j}.{hf_block}")
        norm_name = "encoder_norm" if stack == "encoder" else "decoder_norm"
        yield (stack, norm_name, "scale"), f"{stack}.final_layer_norm.weight", "copy"
    if not cfg.tie_word_embeddings:
        yield ("decoder", "logits_dense"), "lm_head.weight", "transpose"


def config_from_hf(hf: Mapping[str, Any], source: str, dtype: str = "float32") -> T5Config:
    """Our config from a Hugging Face ``config.json`` dict; ``source`` names it in errors."""
    archs = hf.get("architectures") or []
    bad_arch = [a for a in archs if a not in ARCHITECTURES]
    if hf.get("model_type") not in MODEL_TYPES or bad_arch:
        raise ValueError(
            f"{source}: unsupported architecture (model_type={hf.get('model_type')!r}, "
            f"architectures={archs}); supported: model_type in {list(MODEL_TYPES)} "
            f"with architectures {list(ARCHITECTURES)}"
        )
    required = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads")
    missing = [k for k in required if k not in hf]
    if missing:
        raise ValueError(f"{source}: missing required fields {missing}")
    # transformers >= 5 records the output rescale as scale_decoder_outputs; before, it was
    # implied by tie_word_embeddings (True for T5 and CodeT5+, False for T5 v1.1 and mT5).
    scale = hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings", True))
    try:
        return T5Config(
            vocab_size=hf["vocab_size"],
            d_model=hf["d_model"],
            d_kv=hf["d_kv"],
            d_ff=hf["d_ff"],
            num_layers=hf["num_layers"],
            num_decoder_layers=hf.get("num_decoder_layers"),
            num_heads=hf["num_heads"],
            relative_attention_num_buckets=hf.get("relative_attention_num_buckets", 32),
            relative_attention_max_distance=hf.get("relative_attention_max_distance", 128),
            dropout_rate=hf.get("dropout_rate", 0.1),
            layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-6),
            feed_forward_proj=hf.get("feed_forward_proj", "relu"),
            tie_word_embeddings=bool(scale),
            pad_token_id=hf.get("pad_token_id", 0),
            eos_token_id=hf.get("eos_token_id", 1),
            decoder_start_token_id=hf.get("decoder_start_token_id", 0),
            dtype=dtype,
        )
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from e


def config_to_hf(cfg: T5Config) -> dict[str, Any]:
    return {
        "architectures": ["T5ForConditionalGeneration"],
        "model_type": "t5",
        "vocab_size": cfg.vocab_size,
        "d_model": cfg.d_model,
        "d_kv": cfg.d_kv,
        "d_ff": cfg.d_ff,
        "num_layers": cfg.num_layers,
        "num_decoder_layers": cfg.num_decoder_layers,
        "num_heads": cfg.num_heads,
        "relative_attention_num_buckets": cfg.relative_attention_num_buckets,
        "relative_attention_max_distance": cfg.relative_attention_max_distance,
        "dropout_rate": cfg.dropout_rate,
        "layer_norm_epsilon": cfg.layer_norm_epsilon,
        "feed_forward_proj": cfg.feed_forward_proj,
        "initializer_factor": 1.0,
        "is_encoder_decoder": True,
        "use_cache": True,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "scale_decoder_outputs": cfg.tie_word_embeddings,
        "pad_token_id": cfg.pad_token_id,
        "eos_token_id": cfg.eos_token_id,
        "decoder_start_token_id": cfg.decoder_start_token_id,
    }


def prepare_tensors(
    tensors: Mapping[str, np.ndarray], cfg: T5Config, source: str
) -> dict[str, np.ndarray]:
    """The tensors the table reads, after reconciling the output layer with the config."""
    tensors = dict(tensors)
    lm_head = tensors.pop("lm_head.weight", None)
    if not cfg.tie_word_embeddings and lm_head is None:
        # transformers >= 5 ties lm_head to shared even without the rescale (T5 v1.1).
        lm_head = tensors.get("shared.weight")
    if lm_head is not None and not cfg.tie_word_embeddings:
        tensors["lm_head.weight"] = lm_head
    elif lm_head is not None and not np.array_equal(lm_head, tensors.get("shared.weight")):
        raise ValueError(
            f"{source}: lm_head.weight differs from shared.weight, but the config rescales the "
            "decoder output (tied embeddings); set tie_word_embeddings=false in config.json if "
            "the checkpoint is untied"
        )
    return tensors
