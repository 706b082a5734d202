"""Array operations both model families share."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


def dense(x: jax.Array, w: jax.Array, in_dims: int = 1) -> jax.Array:
    """``x``'s last ``in_dims`` axes contracted with ``w``'s first ``in_dims``, as one 2-D
    matmul: XLA's CPU backward of the batched (3-D) form is about a third slower.

    >>> import jax.numpy as jnp
    >>> dense(jnp.ones((2, 3, 4)), jnp.ones((4, 5, 6))).shape
    (2, 3, 5, 6)
    >>> dense(jnp.ones((2, 3, 5, 6)), jnp.ones((5, 6, 4)), in_dims=2).shape
    (2, 3, 4)
    """
    lead, out = x.shape[: x.ndim - in_dims], w.shape[in_dims:]
    k = math.prod(w.shape[:in_dims])
    y = x.reshape(-1, k) @ w.reshape(k, -1).astype(x.dtype)
    return y.reshape(*lead, *out)


def attend(x: jax.Array, table: jax.Array) -> jax.Array:
    """``x`` [..., d] against an embedding table [vocab, d] as stored (tied output
    projection), as one 2-D product like :func:`dense`.

    >>> attend(jnp.ones((2, 3, 4)), jnp.ones((5, 4))).shape
    (2, 3, 5)
    """
    flat = x.reshape(-1, x.shape[-1])
    y = jnp.einsum("nd,vd->nv", flat, table.astype(x.dtype))
    return y.reshape(*x.shape[:-1], table.shape[0])


def keep_mask(rng: jax.Array, keep_prob: float, shape: tuple[int, ...]) -> tuple[jax.Array, float]:
    """A Bernoulli(``keep_prob``) mask from 16 random bits per element, and the exact keep rate.

    ``jax.random.bernoulli`` spends a 32-bit draw (one threefry hash) per element, the bulk of
    a dropout step on CPU; here each 32-bit draw gives two elements (its halves, interleaved
    along the last axis, so a shard of the last axis draws only its own words and the mask
    does not depend on the sharding). The keep rate is rounded to 1/65536; callers scale by
    the returned rate so the expectation stays exact.

    >>> mask, rate = keep_mask(jax.random.key(0), 0.9, (4, 1000))
    >>> mask.shape, round(rate, 5), 0.88 < float(mask.mean()) < 0.92
    ((4, 1000), 0.89999, True)
    """
    threshold = min(max(round(keep_prob * 65536), 1), 65536)
    last = shape[-1] if shape else 1
    words = jax.random.bits(rng, (*shape[:-1], (last + 1) // 2), jnp.uint32)
    halves = jnp.stack([words & 0xFFFF, words >> 16], axis=-1)
    halves = halves.reshape(*shape[:-1], -1)[..., :last].reshape(shape)
    return halves < threshold, threshold / 65536


class Dropout(nn.Module):
    """``nn.Dropout`` with masks from :func:`keep_mask` (half the random bits)."""

    rate: float
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        if self.rate >= 1.0:
            return jnp.zeros_like(x)
        mask, keep = keep_mask(self.make_rng(self.rng_collection), 1.0 - self.rate, x.shape)
        return jax.lax.select(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros_like(x))
