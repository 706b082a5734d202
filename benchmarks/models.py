"""What the benchmarks share: a model of a gin file (optionally with fewer layers, to fit a small
CPU) with random weights, and transformers' PyTorch model of the same family holding the same
weights, so both sides of a comparison compute the same function."""

from __future__ import annotations

import argparse
from typing import Any

import jax
import numpy as np


def build(
    name: str,
    layers: int | None = None,
    dropout: float | None = None,
    dtype: str | None = "float32",
) -> tuple[Any, Any]:
    """(model, random params) of gin/models/<name>.gin, ``layers`` deep if given.

    ``dtype`` is the activation dtype; None keeps the gin file's default (parameters are always
    float32)."""
    from t5x_xfer import gin_utils

    bindings = [] if dtype is None else [f'ACTIVATION_DTYPE="{dtype}"']
    if dropout is not None and not name.startswith(("qwen", "deepseek", "tiny_decoder")):
        bindings.append(f"DROPOUT_RATE={dropout}")
    if name.startswith("tiny"):
        bindings.append('TOKENIZER="unused"')
    gin_utils.parse([f"gin/models/{name}.gin"], bindings)
    model = gin_utils.macro("MODEL")
    if layers is not None:
        if model.family == "t5":
            model = model.replace(num_layers=layers, num_decoder_layers=layers)
        else:
            model = model.replace(num_hidden_layers=layers)
    return model, model.init_params(jax.random.PRNGKey(0))


def add_malloc_argument(parser: argparse.ArgumentParser, binaries: str) -> None:
    """``--malloc``: glibc's own settings, or the ones ``binaries`` run with."""
    parser.add_argument(
        "--malloc",
        default="keep",
        choices=["default", "keep"],
        help=f"'keep' (the default): the malloc settings {binaries} run with: glibc keeps "
        "freed memory (host.keep_freed_memory; the tiny decoder's train step: about 10,000 fewer "
        "page faults) on transparent huge pages (host.with_huge_pages, as launch/env.sh sets; the "
        "process restarts itself to apply it); 'default': glibc's own settings",
    )


def apply_malloc(choice: str) -> bool:
    """Apply ``--malloc``: for 'keep', restart this process on huge pages unless it runs on
    them already (glibc reads them only at start; processes it spawns inherit them), then keep
    freed memory. Returns whether the thresholds were set."""
    if choice != "keep":
        return False
    import os
    import sys

    from t5x_xfer import host

    env = host.with_huge_pages(os.environ)
    if env != dict(os.environ) and sys.platform.startswith("linux"):
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    return host.keep_freed_memory()


def torch_device() -> str:
    """Where transformers runs: CUDA when JAX's backend is a GPU, so both use the same chip."""
    return "cuda" if jax.default_backend() == "gpu" else "cpu"


def reference(model: Any, params: Any, device: str = "cpu") -> Any:
    """transformers' PyTorch model of the same family and config, holding ``params``, on
    ``device`` (on CUDA with TF32 float32 matmuls, as JAX's default precision on GPUs)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, T5ForConditionalGeneration
    from transformers import T5Config as HFConfig

    from t5x_xfer import hf

    config = hf.config_to_hf(model)
    torch.manual_seed(0)
    if model.family == "t5":
        torch_model = T5ForConditionalGeneration(HFConfig(**config))
    else:
        torch_model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    state = {k: torch.from_numpy(np.array(v)) for k, v in hf.params_to_hf(params, model).items()}
    missing, unexpected = torch_model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
    assert not unexpected and set(missing) <= tied, (missing, unexpected)
    if device == "cuda":
        torch.set_float32_matmul_precision("high")
    return torch_model.to(device)


def describe(model: Any) -> str:
    c = model.config
    if model.family == "t5":
        return f"T5 d_model {c.d_model}, {c.num_layers}+{c.num_decoder_layers} layers"
    return (
        f"{c.model_type} hidden {c.hidden_size}, {c.num_hidden_layers} layers, "
        f"{c.num_attention_heads}/{c.num_key_value_heads} heads, vocab {c.vocab_size}"
    )
