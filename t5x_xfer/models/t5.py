"""Flax encoder-decoder T5: one implementation for T5, T5 v1.1, mT5 and CodeT5+ (by config).

Every parameter carries logical axis names (vocab, embed, heads, kv, mlp, relpos_buckets) and the
main activations are constrained to (batch, length, embed); the mapping to mesh axes lives in
``t5x_xfer.partitioning``. The numerics follow Hugging Face's ``T5ForConditionalGeneration``:
unscaled dot-product attention, relative position buckets shared by all layers of a stack,
RMS layer norm computed in float32, softmax in float32. Packed inputs are supported through
segment ids: the position bias depends only on differences, so packing is exact.

Decoding uses a KV cache (flax collection ``"cache"``, see ``T5.decode_step``): each decoder
self-attention keeps ``cached_key`` [batch, heads, kv, max_decode_length] and ``cached_value``
[batch, heads, max_decode_length, kv], each cross-attention keeps the keys and values projected
from the encoder output once (same layouts), and the decoder keeps ``cache_index`` (the
position of the next query) and the ``encoder_mask``. The teacher-forced path never touches the
cache and is unchanged by it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from t5x_xfer.models.config import T5Config
from t5x_xfer.models.ops import Dropout, attend, dense, dot_product_attention, masked_bias

Array = jax.Array

_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "silu": jax.nn.silu,
}


def compute_dtype(config: T5Config) -> jnp.dtype:
    return jnp.bfloat16 if config.dtype == "bfloat16" else jnp.float32


def _param(
    module: nn.Module, name: str, std: float, shape: tuple[int, ...], axes: tuple[str, ...]
) -> Array:
    init = nn.with_logical_partitioning(nn.initializers.normal(stddev=std), axes)
    return module.param(name, init, shape, jnp.float32)


def relative_position_bucket(
    relative_position: Array, bidirectional: bool, num_buckets: int, max_distance: int
) -> Array:
    """Map key-minus-query distances to T5's log-spaced buckets.

    >>> relative_position_bucket(jnp.array([-3, 0, 3]), True, 32, 128).tolist()
    [3, 0, 19]
    """
    buckets = jnp.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).astype(relative_position.dtype) * num_buckets
        distance = jnp.abs(relative_position)
    else:
        distance = -jnp.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # Guard log(0): small distances take the exact branch anyway.
    safe = jnp.maximum(distance, 1).astype(jnp.float32)
    large = max_exact + (
        jnp.log(safe / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).astype(relative_position.dtype)
    large = jnp.minimum(large, num_buckets - 1)
    return buckets + jnp.where(is_small, distance, large)


class RMSNorm(nn.Module):
    """T5 layer norm: scale only, no mean subtraction, variance in float32."""

    epsilon: float
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x: Array) -> Array:
        scale = self.param(
            "scale",
            nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
            (x.shape[-1],),
            jnp.float32,
        )
        x32 = x.astype(jnp.float32)
        var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
        return (x32 * jax.lax.rsqrt(var + self.epsilon) * scale).astype(self.dtype)


class Embed(nn.Module):
    """Token embedding table, also usable as the tied output projection (``attend``)."""

    config: T5Config

    def setup(self) -> None:
        cfg = self.config
        self.embedding = _param(
            self, "embedding", 1.0, (cfg.vocab_size, cfg.d_model), ("vocab", "embed")
        )

    def __call__(self, ids: Array) -> Array:
        return jnp.take(self.embedding, ids, axis=0).astype(compute_dtype(self.config))

    def attend(self, x: Array) -> Array:
        return attend(x, self.embedding)


class RelativePositionBias(nn.Module):
    """Per-head bias from bucketed relative positions; one table per stack."""

    config: T5Config
    bidirectional: bool

    @nn.compact
    def __call__(self, q_len: int, k_len: int, q_offset: Array | None = None) -> Array:
        """[1, heads, q_len, k_len]; ``q_offset`` shifts the query positions (cached decoding,
        where the single query sits at the cache index)."""
        cfg = self.config
        table = _param(
            self,
            "rel_embedding",
            cfg.d_model**-0.5,
            (cfg.num_heads, cfg.relative_attention_num_buckets),
            ("heads", "relpos_buckets"),
        )
        q_pos = jnp.arange(q_len) if q_offset is None else jnp.arange(q_len) + q_offset
        relative = jnp.arange(k_len)[None, :] - q_pos[:, None]
        buckets = relative_position_bucket(
            relative,
            self.bidirectional,
            cfg.relative_attention_num_buckets,
            cfg.relative_attention_max_distance,
        )
        return jnp.take(table, buckets, axis=1)[None]  # [1, heads, q, k]


class Attention(nn.Module):
    """Multi-head attention without score scaling (T5 folds it into the initialisation).

    ``decode`` switches to cached decoding: self-attention (``cross=False``) writes the keys and
    values of its single query position ``position`` into caches of ``max_decode_length``
    positions and attends over all of them (the caller masks positions not yet written);
    cross-attention (``cross=True``) projects ``x_kv`` once, when its cache is created, and
    reuses the result at every step.
    """

    config: T5Config

    @nn.compact
    def __call__(
        self,
        x_q: Array,
        x_kv: Array | None,
        mask: Array | None,
        bias: Array | None,
        deterministic: bool,
        decode: bool = False,
        cross: bool = False,
        position: Array | None = None,
        max_decode_length: int | None = None,
    ) -> Array:
        cfg = self.config
        dt = compute_dtype(cfg)
        d, h, k = cfg.d_model, cfg.num_heads, cfg.d_kv
        wq = _param(self, "query", (d * k) ** -0.5, (d, h, k), ("embed", "heads", "kv"))
        wk = _param(self, "key", d**-0.5, (d, h, k), ("embed", "heads", "kv"))
        wv = _param(self, "value", d**-0.5, (d, h, k), ("embed", "heads", "kv"))
        wo = _param(self, "out", (h * k) ** -0.5, (h, k, d), ("heads", "kv", "embed"))
        q = nn.with_logical_constraint(dense(x_q, wq), ("batch", "length", "heads", "kv"))
        q = q.transpose(0, 2, 1, 3)  # head-major, as dot_product_attention takes them
        # The decode caches are stored as the score and output products read them (keys
        # [b, h, k, t], values [b, h, t, k]), so no step transposes a whole cache.
        if not decode:
            key = dense(x_kv, wk).transpose(0, 2, 1, 3)
            value = dense(x_kv, wv).transpose(0, 2, 1, 3)
        elif cross:  # projected once from the encoder output, when the cache is created
            key = self.variable(
                "cache", "cached_key", lambda: jnp.einsum("btd,dhk->bhkt", x_kv, wk.astype(dt))
            ).value
            value = self.variable(
                "cache", "cached_value", lambda: jnp.einsum("btd,dhk->bhtk", x_kv, wv.astype(dt))
            ).value
        else:
            assert position is not None and max_decode_length is not None
            ready = self.has_variable("cache", "cached_key")
            b = x_q.shape[0]
            cached_key = self.variable(
                "cache", "cached_key", jnp.zeros, (b, h, k, max_decode_length), dt
            )
            cached_value = self.variable(
                "cache", "cached_value", jnp.zeros, (b, h, max_decode_length, k), dt
            )
            # Project in the weights' own layout, then transpose the one new position.
            new_key = dense(x_kv, wk).transpose(0, 2, 3, 1)
            new_value = dense(x_kv, wv).transpose(0, 2, 1, 3)
            key = jax.lax.dynamic_update_slice(cached_key.value, new_key, (0, 0, 0, position))
            value = jax.lax.dynamic_update_slice(cached_value.value, new_value, (0, 0, position, 0))
            if ready:  # creating the cache only allocates it; steps write their position
                cached_key.value, cached_value.value = key, value
        scores_shape = (q.shape[0], h, q.shape[2], key.shape[3 if decode else 2])
        keep = Dropout(cfg.dropout_rate).mask(scores_shape, deterministic)
        out = dot_product_attention(q, key, value, bias, mask, keep, keys_transposed=decode)
        out = out.transpose(0, 2, 1, 3)
        return dense(out, wo, in_dims=2)


class MLP(nn.Module):
    """Feed-forward block: ReLU (T5, CodeT5+) or gated GELU (T5 v1.1, mT5)."""

    config: T5Config

    @nn.compact
    def __call__(self, x: Array, deterministic: bool) -> Array:
        cfg = self.config
        act = _ACTIVATIONS[cfg.activation]
        d, f = cfg.d_model, cfg.d_ff
        if cfg.is_gated:
            wi_0 = _param(self, "wi_0", d**-0.5, (d, f), ("embed", "mlp"))
            wi_1 = _param(self, "wi_1", d**-0.5, (d, f), ("embed", "mlp"))
            hidden = act(dense(x, wi_0)) * dense(x, wi_1)
        else:
            wi = _param(self, "wi", d**-0.5, (d, f), ("embed", "mlp"))
            hidden = act(dense(x, wi))
        hidden = nn.with_logical_constraint(hidden, ("batch", "length", "mlp"))
        hidden = Dropout(cfg.dropout_rate)(hidden, deterministic=deterministic)
        wo = _param(self, "wo", f**-0.5, (f, d), ("mlp", "embed"))
        return dense(hidden, wo)


def _residual(x: Array, y: Array, rate: float, deterministic: bool) -> Array:
    y = Dropout(rate)(y, deterministic=deterministic)
    return nn.with_logical_constraint(x + y, ("batch", "length", "embed"))


class EncoderLayer(nn.Module):
    config: T5Config

    @nn.compact
    def __call__(self, x: Array, bias: Array, deterministic: bool) -> Array:
        """``bias``: the stack's position bias with its mask in it (``ops.masked_bias``)."""
        cfg = self.config
        dt = compute_dtype(cfg)
        y = RMSNorm(cfg.layer_norm_epsilon, dt, name="pre_attention_layer_norm")(x)
        y = Attention(cfg, name="attention")(y, y, None, bias, deterministic)
        x = _residual(x, y, cfg.dropout_rate, deterministic)
        y = RMSNorm(cfg.layer_norm_epsilon, dt, name="pre_mlp_layer_norm")(x)
        y = MLP(cfg, name="mlp")(y, deterministic)
        return _residual(x, y, cfg.dropout_rate, deterministic)


class DecoderLayer(nn.Module):
    config: T5Config

    @nn.compact
    def __call__(
        self,
        x: Array,
        encoded: Array | None,
        self_bias: Array,
        cross_mask: Array,
        deterministic: bool,
        decode: bool = False,
        position: Array | None = None,
        max_decode_length: int | None = None,
    ) -> Array:
        """``self_bias``: the position bias with the causal mask in it (``ops.masked_bias``)."""
        cfg = self.config
        dt = compute_dtype(cfg)
        y = RMSNorm(cfg.layer_norm_epsilon, dt, name="pre_self_attention_layer_norm")(x)
        y = Attention(cfg, name="self_attention")(
            y,
            y,
            None,
            self_bias,
            deterministic,
            decode=decode,
            position=position,
            max_decode_length=max_decode_length,
        )
        x = _residual(x, y, cfg.dropout_rate, deterministic)
        y = RMSNorm(cfg.layer_norm_epsilon, dt, name="pre_cross_attention_layer_norm")(x)
        y = Attention(cfg, name="encoder_decoder_attention")(
            y, encoded, cross_mask, None, deterministic, decode=decode, cross=True
        )
        x = _residual(x, y, cfg.dropout_rate, deterministic)
        y = RMSNorm(cfg.layer_norm_epsilon, dt, name="pre_mlp_layer_norm")(x)
        y = MLP(cfg, name="mlp")(y, deterministic)
        return _residual(x, y, cfg.dropout_rate, deterministic)


def attention_mask(
    key_valid: Array, q_segments: Array | None = None, k_segments: Array | None = None
) -> Array:
    """[batch, 1, q, k] boolean mask: keys must be valid and, when packed, in the same segment.

    Only keys are masked (as in Hugging Face), so every position, padding included, has outputs.
    """
    mask = key_valid[:, None, None, :].astype(bool)
    if q_segments is not None and k_segments is not None:
        mask = mask & (q_segments[:, None, :, None] == k_segments[:, None, None, :])
    return mask


class Encoder(nn.Module):
    config: T5Config
    embed: Embed

    @nn.compact
    def __call__(
        self,
        tokens: Array,
        mask: Array,
        segment_ids: Array | None,
        deterministic: bool,
    ) -> Array:
        cfg = self.config
        x = Dropout(cfg.dropout_rate)(self.embed(tokens), deterministic=deterministic)
        x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
        length = tokens.shape[1]
        bias = RelativePositionBias(cfg, bidirectional=True, name="relpos_bias")(length, length)
        bias = masked_bias(bias, attention_mask(mask, segment_ids, segment_ids))
        for i in range(cfg.num_layers):
            x = EncoderLayer(cfg, name=f"layers_{i}")(x, bias, deterministic)
        x = RMSNorm(cfg.layer_norm_epsilon, compute_dtype(cfg), name="encoder_norm")(x)
        return Dropout(cfg.dropout_rate)(x, deterministic=deterministic)


class Decoder(nn.Module):
    config: T5Config
    embed: Embed

    @nn.compact
    def __call__(
        self,
        encoded: Array | None,
        encoder_mask: Array | None,
        tokens: Array,
        decoder_mask: Array | None,
        encoder_segment_ids: Array | None,
        decoder_segment_ids: Array | None,
        deterministic: bool,
        decode: bool = False,
        max_decode_length: int | None = None,
    ) -> Array:
        """Teacher-forced logits, or with ``decode`` one cached step (see ``T5.decode_step``)."""
        cfg = self.config
        x = Dropout(cfg.dropout_rate)(self.embed(tokens), deterministic=deterministic)
        x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
        position = None
        if decode:
            assert max_decode_length is not None and tokens.shape[1] == 1
            ready = self.has_variable("cache", "cache_index")
            index = self.variable("cache", "cache_index", lambda: jnp.zeros((), jnp.int32))
            cached_mask = self.variable("cache", "encoder_mask", lambda: encoder_mask.astype(bool))
            position = index.value
            # Unidirectional buckets of key_pos - query_pos for the one query at ``position``.
            bias = RelativePositionBias(cfg, bidirectional=False, name="relpos_bias")(
                1, max_decode_length, position
            )
            self_mask = (jnp.arange(max_decode_length) <= position)[None, None, None, :]
            cross_mask = attention_mask(cached_mask.value)
            if ready:
                index.value = position + 1
        else:
            length = tokens.shape[1]
            bias = RelativePositionBias(cfg, bidirectional=False, name="relpos_bias")(
                length, length
            )
            causal = jnp.tril(jnp.ones((length, length), dtype=bool))[None, None]
            self_mask = (
                attention_mask(decoder_mask, decoder_segment_ids, decoder_segment_ids) & causal
            )
            cross_mask = attention_mask(encoder_mask, decoder_segment_ids, encoder_segment_ids)
        bias = masked_bias(bias, self_mask)
        for i in range(cfg.num_decoder_layers):
            x = DecoderLayer(cfg, name=f"layers_{i}")(
                x,
                encoded,
                bias,
                cross_mask,
                deterministic,
                decode=decode,
                position=position,
                max_decode_length=max_decode_length,
            )
        x = RMSNorm(cfg.layer_norm_epsilon, compute_dtype(cfg), name="decoder_norm")(x)
        x = Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
        if cfg.tie_word_embeddings:
            logits = self.embed.attend(x * cfg.d_model**-0.5)
        else:
            w = _param(self, "logits_dense", 1.0, (cfg.d_model, cfg.vocab_size), ("embed", "vocab"))
            logits = dense(x, w)
        logits = nn.with_logical_constraint(logits, ("batch", "length", "vocab"))
        return logits.astype(jnp.float32)


class T5(nn.Module):
    """Encoder-decoder T5. ``__call__`` returns float32 logits [batch, target_len, vocab].

    Masks are [batch, len] validity masks (default: encoder tokens != pad, all decoder
    positions, which the causal mask makes correct for right padding).
    """

    config: T5Config

    def setup(self) -> None:
        self.token_embedder = Embed(self.config)
        self.encoder = Encoder(self.config, self.token_embedder)
        self.decoder = Decoder(self.config, self.token_embedder)

    def encode(
        self,
        encoder_input_tokens: Array,
        encoder_mask: Array | None = None,
        encoder_segment_ids: Array | None = None,
        deterministic: bool = True,
    ) -> Array:
        if encoder_mask is None:
            encoder_mask = encoder_input_tokens != self.config.pad_token_id
        return self.encoder(encoder_input_tokens, encoder_mask, encoder_segment_ids, deterministic)

    def decode(
        self,
        encoded: Array,
        encoder_mask: Array,
        decoder_input_tokens: Array,
        decoder_mask: Array | None = None,
        encoder_segment_ids: Array | None = None,
        decoder_segment_ids: Array | None = None,
        deterministic: bool = True,
    ) -> Array:
        if decoder_mask is None:
            decoder_mask = jnp.ones(decoder_input_tokens.shape, dtype=bool)
        return self.decoder(
            encoded,
            encoder_mask,
            decoder_input_tokens,
            decoder_mask,
            encoder_segment_ids,
            decoder_segment_ids,
            deterministic,
        )

    def decode_step(
        self,
        decoder_input_tokens: Array,
        max_decode_length: int,
        encoded: Array | None = None,
        encoder_mask: Array | None = None,
    ) -> Array:
        """One cached decoding step: float32 logits [batch, 1, vocab] for tokens [batch, 1].

        Apply with ``mutable=["cache"]``. The first call, without a ``"cache"`` collection,
        creates it from ``encoded`` and ``encoder_mask`` (its logits are meaningless); later
        calls pass only the token at position ``cache_index`` and advance the index. Encoder
        arguments are ignored once the cache exists.
        """
        return self.decoder(
            encoded,
            encoder_mask,
            decoder_input_tokens,
            None,
            None,
            None,
            True,
            decode=True,
            max_decode_length=max_decode_length,
        )

    def __call__(
        self,
        encoder_input_tokens: Array,
        decoder_input_tokens: Array,
        encoder_mask: Array | None = None,
        decoder_mask: Array | None = None,
        encoder_segment_ids: Array | None = None,
        decoder_segment_ids: Array | None = None,
        deterministic: bool = True,
    ) -> Array:
        if encoder_mask is None:
            encoder_mask = encoder_input_tokens != self.config.pad_token_id
        encoded = self.encode(
            encoder_input_tokens, encoder_mask, encoder_segment_ids, deterministic
        )
        return self.decode(
            encoded,
            encoder_mask,
            decoder_input_tokens,
            decoder_mask,
            encoder_segment_ids,
            decoder_segment_ids,
            deterministic,
        )
