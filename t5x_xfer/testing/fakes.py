"""Shared fakes for the model tests: tiny Hugging Face T5 models made locally with transformers,
random padded batches, our tiny configs, and a tiny orbax checkpoint with a tokenizer.

torch and transformers are optional test dependencies: they are imported inside the functions
that need them, so importing this module does not require them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# Tiny configs shaped like the real families (same variant switches, small sizes). Small
# max_distance and bucket counts so short test sequences reach the logarithmic buckets.
TINY_HF_CONFIGS: dict[str, dict[str, Any]] = {
    "codet5p": dict(  # ReLU, tied embeddings with the d_model**-0.5 rescale, pad 0 / eos 2
        vocab_size=101,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=3,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=1,
        decoder_start_token_id=0,
    ),
    "t5_v1_1": dict(  # gated GELU, untied output layer, no rescale
        vocab_size=97,
        d_model=24,
        d_kv=6,
        d_ff=48,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=16,
        relative_attention_max_distance=24,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
    ),
    "mt5": dict(  # mT5 shape: gated GELU, untied, larger vocab, d_kv * heads != d_model
        vocab_size=257,
        d_model=32,
        d_kv=4,
        d_ff=40,
        num_layers=1,
        num_decoder_layers=2,
        num_heads=6,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
    ),
}


def make_hf_model(kind: str, out_dir: Path, seed: int = 0) -> Any:
    """Save a random tiny transformers model of ``kind`` to ``out_dir``; return it (eval mode)."""
    import torch
    from transformers import (
        MT5Config,
        MT5ForConditionalGeneration,
        T5Config,
        T5ForConditionalGeneration,
    )

    torch.manual_seed(seed)
    if kind == "mt5":
        model = MT5ForConditionalGeneration(MT5Config(**TINY_HF_CONFIGS[kind]))
    else:
        model = T5ForConditionalGeneration(T5Config(**TINY_HF_CONFIGS[kind]))
    if not TINY_HF_CONFIGS[kind]["tie_word_embeddings"]:
        # transformers 5 ties lm_head to the input embedding even for v1.1; real v1.1 and mT5
        # checkpoints have their own output layer, so give the fake one too.
        model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.shared.weight) * 0.5)
        model.config.tie_word_embeddings = False
    with torch.no_grad():  # non-trivial layer norm scales, so a wrong mapping shows
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    model.eval()
    model.save_pretrained(out_dir)
    return model


def padded_batch(
    vocab_size: int, enc_lengths: list[int], dec_lengths: list[int], seed: int = 0
) -> dict[str, np.ndarray]:
    """Random right-padded encoder/decoder ids with their masks (pad id 0)."""
    rng = np.random.default_rng(seed)
    batch = {}
    for prefix, lengths in (("encoder", enc_lengths), ("decoder", dec_lengths)):
        ids = rng.integers(3, vocab_size, size=(len(lengths), max(lengths)))
        mask = np.arange(max(lengths))[None, :] < np.array(lengths)[:, None]
        if prefix == "decoder":
            ids[:, 0] = 0  # decoder start token
        batch[f"{prefix}_input_tokens"] = np.where(mask, ids, 0).astype(np.int32)
        batch[f"{prefix}_mask"] = mask
    return batch


def tiny_config(kind: str, **overrides: Any) -> Any:
    """Our T5Config with the shape of ``TINY_HF_CONFIGS[kind]``."""
    from t5x_xfer.models import T5Config

    fields = {k: v for k, v in TINY_HF_CONFIGS[kind].items() if k != "bos_token_id"}
    return T5Config(**{**fields, **overrides})


SNIPPETS = [
    "def add(a, b):\n    return a + b\n",
    "int main() {\n\treturn 0;\n}\n",
    "for i in range(10):\n    print(i)\n",
    "const inc = (x) => x + 1;\n",
    "fn len(s: &str) -> usize {\n    s.len()\n}\n",
]


def make_tiny_checkpoint(directory: Path, seed: int = 0) -> Path:
    """A random tiny CodeT5+-shaped model saved as an orbax checkpoint, with a byte-level BPE
    tokenizer (pad 0, eos 2) in hf_assets, as import_hf leaves a real one."""
    import jax

    from t5x_xfer import checkpoints
    from t5x_xfer.models import EncoderDecoderModel
    from t5x_xfer.vocabularies import train_byte_level_bpe

    assets = directory / checkpoints.ASSETS_DIR
    assets.mkdir(parents=True)
    train_byte_level_bpe(SNIPPETS * 4, assets / "tokenizer.json", vocab_size=320)
    model = EncoderDecoderModel(tiny_config("codet5p", vocab_size=320, dropout_rate=0.0))
    params = model.init_params(jax.random.PRNGKey(seed))
    checkpoints.save(directory, params, model)
    return directory


# Tiny decoder-only configs, one per architecture of the Llama family, each with the switches
# of the real models it stands for (Hugging Face field names).
TINY_DECODER_CONFIGS: dict[str, dict[str, Any]] = {
    "llama": dict(  # DeepSeek-Coder / CodeLlama shape: BOS, untied, GQA, linear rope scaling
        vocab_size=97,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rope_theta=10000.0,
        rope_scaling={"rope_type": "linear", "factor": 2.0},
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    ),
    "llama3": dict(  # Llama 3 rope scaling, biases on attention and MLP
        vocab_size=83,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        rope_theta=500000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        attention_bias=True,
        mlp_bias=True,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    ),
    "qwen2": dict(  # Qwen2.5-Coder shape: no BOS, q/k/v biases, tied, 1 KV head
        vocab_size=101,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        max_position_embeddings=128,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=3,
    ),
    "qwen3": dict(  # Qwen3 shape: q/k RMSNorm, head_dim != hidden / heads, tied
        vocab_size=89,
        hidden_size=32,
        intermediate_size=40,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=128,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=3,
    ),
}


def decoder_model_type(kind: str) -> str:
    """The Hugging Face model_type of a tiny decoder kind ("llama3" is a Llama)."""
    return "llama" if kind.startswith("llama") else kind


def make_hf_decoder(kind: str, out_dir: Path, seed: int = 0) -> Any:
    """Save a random tiny transformers causal LM of ``kind`` (a key of TINY_DECODER_CONFIGS)
    to ``out_dir``; return it in eval mode. Norm scales and biases are randomised too, so a
    wrong mapping of any of them shows in the logits."""
    import torch
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
        Qwen3Config,
        Qwen3ForCausalLM,
    )

    classes = {
        "llama": (LlamaConfig, LlamaForCausalLM),
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
        "qwen3": (Qwen3Config, Qwen3ForCausalLM),
    }
    config_cls, model_cls = classes[decoder_model_type(kind)]
    torch.manual_seed(seed)
    model = model_cls(config_cls(**TINY_DECODER_CONFIGS[kind]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    model.eval()
    model.save_pretrained(out_dir)
    return model


def tiny_decoder_config(kind: str, **overrides: Any) -> Any:
    """Our DecoderConfig with the shape of ``TINY_DECODER_CONFIGS[kind]``."""
    from t5x_xfer.models import DecoderConfig

    fields = dict(TINY_DECODER_CONFIGS[kind], model_type=decoder_model_type(kind))
    return DecoderConfig(**{**fields, **overrides})
