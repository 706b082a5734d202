"""Array operations both model families share."""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _matmul_low(x: jax.Array, w: jax.Array, transpose_w: bool) -> jax.Array:
    """``x @ w`` for a low-precision ``x``: operands in ``x.dtype``, accumulated and returned
    in float32 by the product itself, then rounded once to ``x.dtype``.

    XLA's CPU backend runs bfloat16 x bfloat16 -> float32 products natively (about twice
    float32's rate on a CPU with AVX512-BF16), but upcasts a bfloat16 -> bfloat16 product and
    JAX's own backward of this product (a float32 cotangent against bfloat16 operands) to
    float32. The custom backward keeps both gradient products in the native form, and the
    weight's gradient is accumulated in float32 and returned in the weight's own dtype (no
    bfloat16 rounding of parameter gradients), as the MXU does on a TPU.
    """
    dims = (((1,), (1 if transpose_w else 0,)), ((), ()))
    y = jax.lax.dot_general(x, w.astype(x.dtype), dims, preferred_element_type=jnp.float32)
    return y.astype(x.dtype)


def _matmul_low_fwd(x, w, transpose_w):
    return _matmul_low(x, w, transpose_w), (x, w)


def _matmul_low_bwd(transpose_w, res, g):
    x, w = res
    g = g.astype(x.dtype)
    f32 = jnp.float32
    dx = jax.lax.dot_general(  # g [n, m] against w: contract m
        g,
        w.astype(x.dtype),
        (((1,), (0 if transpose_w else 1,)), ((), ())),
        preferred_element_type=f32,
    )
    a, b = (g, x) if transpose_w else (x, g)  # w [m, k] = g^T x, or w [k, m] = x^T g
    dw = jax.lax.dot_general(a, b, (((0,), (0,)), ((), ())), preferred_element_type=f32)
    return dx.astype(x.dtype), dw.astype(w.dtype)


_matmul_low.defvjp(_matmul_low_fwd, _matmul_low_bwd)


def matmul(x: jax.Array, w: jax.Array, transpose_w: bool = False) -> jax.Array:
    """``x [n, k] @ w [k, m]`` (or ``@ w.T`` for ``w [m, k]``) in ``x.dtype``; ``w`` (the
    float32 parameter) is cast to it. A 16-bit ``x`` accumulates in float32
    (:func:`_matmul_low`).

    >>> matmul(jnp.ones((2, 3), jnp.bfloat16), jnp.ones((4, 3)), transpose_w=True).dtype
    dtype(bfloat16)
    """
    if jnp.dtype(x.dtype).itemsize == 2:
        return _matmul_low(x, w, transpose_w)
    return x @ (w.T if transpose_w else w).astype(x.dtype)


def dense(x: jax.Array, w: jax.Array, in_dims: int = 1) -> jax.Array:
    """``x``'s last ``in_dims`` axes contracted with ``w``'s first ``in_dims``, as one 2-D
    :func:`matmul`: XLA's CPU backward of the batched (3-D) form is about a third slower.

    >>> import jax.numpy as jnp
    >>> dense(jnp.ones((2, 3, 4)), jnp.ones((4, 5, 6))).shape
    (2, 3, 5, 6)
    >>> dense(jnp.ones((2, 3, 5, 6)), jnp.ones((5, 6, 4)), in_dims=2).shape
    (2, 3, 4)
    """
    lead, out = x.shape[: x.ndim - in_dims], w.shape[in_dims:]
    k = math.prod(w.shape[:in_dims])
    return matmul(x.reshape(-1, k), w.reshape(k, -1)).reshape(*lead, *out)


def attend(x: jax.Array, table: jax.Array) -> jax.Array:
    """``x`` [..., d] against an embedding table [vocab, d] as stored (tied output
    projection), as one 2-D :func:`matmul` like :func:`dense`.

    >>> attend(jnp.ones((2, 3, 4)), jnp.ones((5, 4))).shape
    (2, 3, 5)
    """
    flat = x.reshape(-1, x.shape[-1])
    return matmul(flat, table, transpose_w=True).reshape(*x.shape[:-1], table.shape[0])


def argmax(x: jax.Array) -> jax.Array:
    """``jnp.argmax(x, axis=-1)`` (the first maximum; a NaN counts as the maximum) as two
    plain reductions. XLA's CPU backend runs argmax's single (value, index) reduction
    unvectorised: on the debug decoder's logits ([8, 192, 512]) it took 2.0 ms, this 0.5 ms.

    >>> x = jnp.array([[1.0, 3.0, 3.0], [jnp.nan, 0.0, jnp.nan], [-jnp.inf, -jnp.inf, -jnp.inf]])
    >>> argmax(x).tolist() == jnp.argmax(x, axis=-1).tolist() == [1, 0, 0]
    True
    """
    top = jnp.max(x, axis=-1, keepdims=True)
    hit = (x == top) | jnp.isnan(x)
    index = jax.lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1)
    return jnp.min(jnp.where(hit, index, x.shape[-1]), axis=-1)


def _threefry_pair(rng: jax.Array) -> tuple[jax.Array, jax.Array] | None:
    """A threefry key's two 32-bit words, or None for another implementation (rbg)."""
    if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
        if "threefry" not in str(jax.random.key_impl(rng)):
            return None
        rng = jax.random.key_data(rng)
    if rng.shape != (2,):  # a raw key of another implementation
        return None
    return rng[0], rng[1]


def keep_mask(rng: jax.Array, keep_prob: float, shape: tuple[int, ...]) -> tuple[jax.Array, float]:
    """A Bernoulli(``keep_prob``) mask from 16 random bits per element, and the exact keep rate.

    ``jax.random.bernoulli`` spends a 32-bit draw per element, and its threefry draw computes
    64 bits (one Threefry-2x32 hash) and folds them to 32. Here each hash gives four elements:
    it is keyed by the element's position (the flattened leading axes, and the last axis in
    groups of four), as ``jax.random.bits`` is with partitionable threefry, so the mask does
    not depend on the sharding and a shard hashes only its own positions. Dropout on the CPU
    spent most of its time in these hashes. The keep rate is rounded to 1/65536; callers scale
    by the returned rate so the expectation stays exact. A non-threefry key (``rbg``) draws
    its 32-bit words with ``jax.random.bits`` and uses both halves of each.

    >>> mask, rate = keep_mask(jax.random.key(0), 0.9, (4, 1000))
    >>> mask.shape, round(rate, 5), 0.88 < float(mask.mean()) < 0.92
    ((4, 1000), 0.89999, True)
    """
    threshold = min(max(round(keep_prob * 65536), 1), 65536)
    lead, last = shape[:-1], (shape[-1] if shape else 1)
    pair = _threefry_pair(rng)
    if pair is not None and math.prod(lead) < 2**32:
        counters = (*lead, -(-last // 4))
        row = jnp.zeros(counters, jnp.uint32)  # the flattened index of the leading axes
        for axis in range(len(lead)):
            stride = jnp.uint32(math.prod(lead[axis + 1 :]))
            row = row + jax.lax.broadcasted_iota(jnp.uint32, counters, axis) * stride
        column = jax.lax.broadcasted_iota(jnp.uint32, counters, len(lead))
        hi, lo = jax.extend.random.threefry2x32_p.bind(*pair, row, column)
        pieces = [hi & 0xFFFF, hi >> 16, lo & 0xFFFF, lo >> 16]
    else:
        words = jax.random.bits(rng, (*lead, -(-last // 2)), jnp.uint32)
        pieces = [words & 0xFFFF, words >> 16]
    # Compared before they are interleaved: the stacked array is then bytes, not words.
    keep = jnp.stack([piece < threshold for piece in pieces], axis=-1).reshape(*lead, -1)
    return keep[..., :last].reshape(shape), threshold / 65536


class Dropout(nn.Module):
    """``nn.Dropout`` with masks from :func:`keep_mask` (16 random bits per element)."""

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
