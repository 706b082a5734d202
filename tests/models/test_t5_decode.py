"""The cached decode path (T5.decode_step) against the teacher-forced path it must reproduce."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from t5x_xfer.models import T5, EncoderDecoderModel
from t5x_xfer.testing.fakes import TINY_HF_CONFIGS, padded_batch, tiny_config


def _step_by_step(model: EncoderDecoderModel, params, batch, length: int) -> jax.Array:
    """Logits of every position, feeding the teacher-forced tokens one at a time."""
    module = model.module
    mask = batch["encoder_input_tokens"] != 0
    encoded = module.apply({"params": params}, batch["encoder_input_tokens"], method=T5.encode)
    tokens = batch["decoder_input_tokens"]
    _, variables = module.apply(
        {"params": params},
        tokens[:, :1],
        length,
        encoded,
        mask,
        method=T5.decode_step,
        mutable=["cache"],
    )
    cache, out = variables["cache"], []
    step = jax.jit(
        lambda c, t: module.apply(
            {"params": params, "cache": c}, t, length, method=T5.decode_step, mutable=["cache"]
        )
    )
    for t in range(length):
        logits, variables = step(cache, tokens[:, t : t + 1])
        cache = variables["cache"]
        out.append(logits[:, 0])
    assert int(cache["decoder"]["cache_index"]) == length
    return jnp.stack(out, axis=1)


@pytest.mark.parametrize("kind", sorted(TINY_HF_CONFIGS))
def test_cached_steps_equal_teacher_forcing(kind):
    # 30 positions pass relative_attention_max_distance, so the log-spaced buckets are used.
    cfg = tiny_config(kind, dropout_rate=0.0)
    model = EncoderDecoderModel(cfg)
    params = model.init_params(jax.random.PRNGKey(0))
    batch = padded_batch(cfg.vocab_size, [11, 4], [30, 30], seed=3)
    expected = model.logits(params, batch)
    got = _step_by_step(model, params, batch, 30)
    np.testing.assert_allclose(got, expected, atol=2e-5, rtol=0)


def test_cache_layout_and_no_cache_in_training_path():
    cfg = tiny_config("codet5p", dropout_rate=0.0)
    model = EncoderDecoderModel(cfg)
    params = model.init_params(jax.random.PRNGKey(0))
    batch = padded_batch(cfg.vocab_size, [7], [5])
    # The teacher-forced path creates no cache (params are what they were).
    variables = model.module.init(jax.random.PRNGKey(0), **model._dummy_inputs())
    assert set(variables) == {"params"}
    encoded = model.module.apply(
        {"params": params}, batch["encoder_input_tokens"], method=T5.encode
    )
    _, created = model.module.apply(
        {"params": params},
        batch["decoder_input_tokens"][:, :1],
        12,
        encoded,
        batch["encoder_input_tokens"] != 0,
        method=T5.decode_step,
        mutable=["cache"],
    )
    cache = created["cache"]["decoder"]
    assert int(cache["cache_index"]) == 0  # creating the cache does not advance it
    assert cache["encoder_mask"].shape == (1, 7)
    layer = cache["layers_0"]
    h, k = cfg.num_heads, cfg.d_kv
    assert layer["self_attention"]["cached_key"].shape == (1, h, k, 12)
    assert layer["self_attention"]["cached_value"].shape == (1, h, 12, k)
    assert not np.any(layer["self_attention"]["cached_key"])
    assert layer["encoder_decoder_attention"]["cached_key"].shape == (1, h, k, 7)
    assert layer["encoder_decoder_attention"]["cached_value"].shape == (1, h, 7, k)
    assert np.any(layer["encoder_decoder_attention"]["cached_value"])
