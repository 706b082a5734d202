"""Array operations both model families share."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

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
        keep = self.mask(x.shape, deterministic)
        if keep is None:
            return x
        return jax.lax.select(keep.mask, x / jnp.asarray(keep.rate, x.dtype), jnp.zeros_like(x))

    def mask(self, shape: tuple[int, ...], deterministic: bool) -> Keep | None:
        """The mask and keep rate ``__call__`` would apply to an array of ``shape``, for
        callers that apply it themselves (:func:`dot_product_attention`); None: no dropout."""
        if deterministic or self.rate == 0.0:
            return None
        if self.rate >= 1.0:
            return Keep(jnp.zeros(shape, bool), 1.0)
        return Keep(*keep_mask(self.make_rng(self.rng_collection), 1.0 - self.rate, shape))


NEG_INF = float(jnp.finfo(jnp.float32).min)


class Keep(NamedTuple):
    """A dropout mask (True: kept) and the keep rate its kept values are divided by."""

    mask: jax.Array
    rate: float


def _row_max(x: jax.Array) -> jax.Array:
    """``x.max(-1, keepdims=True)`` as a tree of elementwise maxima of halves, which XLA fuses
    into one loop; its CPU backend runs the plain reduction as a reduce-window and a reduce,
    at under a tenth of memory bandwidth (the tiny debug model's encoder scores, [8, 4, 128,
    128]: 405 us against 36 us).

    >>> _row_max(jnp.array([[3.0, 1.0, 7.0, 2.0, 5.0], [-1.0, -4.0, -2.0, -3.0, -5.0]])).tolist()
    [[7.0], [-1.0]]
    """
    while x.shape[-1] > 1:
        half = x.shape[-1] // 2
        top = jnp.maximum(x[..., :half], x[..., half : 2 * half])
        x = jnp.maximum(top, x[..., 2 * half :]) if x.shape[-1] % 2 else top
    return x


def _row_sum(x: jax.Array) -> jax.Array:
    """``x.sum(-1)`` as a product with ones, for the same reason as :func:`_row_max`; HIGHEST
    keeps it float32 on a TPU."""
    ones = jnp.ones((x.shape[-1],), x.dtype)
    return jnp.einsum("...t,t->...", x, ones, precision=jax.lax.Precision.HIGHEST)


def _sum_to(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``x`` summed over the axes a broadcast from ``shape`` expanded (a bias's gradient);
    the leading (batch) axis as a product with ones, like :func:`_row_sum`."""
    if x.shape[0] != shape[0]:
        ones = jnp.ones((x.shape[0],), x.dtype)
        x = jnp.einsum("b,b...->...", ones, x, precision=jax.lax.Precision.HIGHEST)[None]
    axes = tuple(i for i, (a, b) in enumerate(zip(x.shape, shape, strict=True)) if a != b)
    return x.sum(axes, keepdims=True) if axes else x


@jax.custom_vjp
def masked_bias(bias: jax.Array, mask: jax.Array) -> jax.Array:
    """``bias`` plus float32's lowest value where ``mask`` is False, broadcast to both: one
    float32 array a stack's layers all add to their scores (:func:`dot_product_attention`),
    instead of each layer broadcasting a bias and a mask of its own. The bias's gradient sums
    the broadcast axes (:func:`_sum_to`).

    >>> masked_bias(jnp.ones((1, 1, 1, 2)), jnp.array([[[[True, False]]]])).tolist()[0][0][0][0]
    1.0
    """
    return bias.astype(jnp.float32) + jnp.where(mask, 0.0, NEG_INF)


def _masked_bias_fwd(bias: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    return masked_bias(bias, mask), bias


def _masked_bias_bwd(bias: jax.Array, g: jax.Array) -> tuple[jax.Array, None]:
    return _sum_to(g, bias.shape).astype(bias.dtype), None


masked_bias.defvjp(_masked_bias_fwd, _masked_bias_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(6,))
def dot_product_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    bias: jax.Array | None = None,
    mask: jax.Array | None = None,
    keep: Keep | None = None,
    keys_transposed: bool = False,
) -> jax.Array:
    """``softmax(q k^T + bias, where mask) v`` per head, without scaling (fold it into ``q``).

    Layouts are head-major: ``q`` [batch, heads, q, d], ``k`` and ``v`` [batch, heads, t, d]
    (``k`` [batch, heads, d, t] with ``keys_transposed``, a decode cache's layout); ``bias``
    (float) and ``mask`` (bool, True: may attend) broadcast to the scores [batch, heads, q,
    t]; ``keep`` drops attention weights (:meth:`Dropout.mask` of the scores' shape). Returns
    [batch, heads, q, d] in ``v``'s dtype. Scores, softmax and both products accumulate in
    float32; the products' operands are in ``q``'s and ``v``'s dtypes.

    Masked scores get float32's lowest value added, as transformers does: a row with no key
    to attend (padding in packed rows) averages all values, and its gradient stays its own.
    Forward and backward are written out (a ``custom_vjp``): the forward normalises after
    the value product (``[.., q, d]`` instead of ``[.., q, t]``), and the backward takes the
    softmax's row term from the outputs (``sum(dout * out)``, FlashAttention's), so no
    backward pass reduces over the scores. The tiny debug model's encoder attention,
    forward and backward on one CPU core: 3.2 ms against 1.9 ms for autodiff of the plain form.

    >>> q, k = jnp.ones((1, 1, 2, 4)), jnp.ones((1, 1, 3, 4))
    >>> v = jnp.arange(12.0).reshape(1, 1, 3, 4)
    >>> dot_product_attention(q, k, v, mask=jnp.array([True, True, False])).tolist()
    [[[[2.0, 3.0, 4.0, 5.0], [2.0, 3.0, 4.0, 5.0]]]]
    """
    return _attention_fwd(q, k, v, bias, mask, keep, keys_transposed)[0]


def _attention_fwd(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    bias: jax.Array | None,
    mask: jax.Array | None,
    keep: Keep | None,
    keys_transposed: bool,
) -> tuple[jax.Array, tuple]:
    """The outputs, and what the backward reuses: the scores' exponentials, their row sums
    and the float32 outputs."""
    f32 = jnp.float32
    key_spec = "bhdt" if keys_transposed else "bhtd"
    s = jnp.einsum(f"bhqd,{key_spec}->bhqt", q, k, preferred_element_type=f32)
    if bias is not None:
        s = s + bias.astype(f32)
    if mask is not None:
        s = s + jnp.where(mask, 0.0, NEG_INF)
    e = jnp.exp(s - _row_max(s))
    norm = _row_sum(e)[..., None]
    weights = e if keep is None else jnp.where(keep.mask, e, 0.0)
    out = jnp.einsum("bhqt,bhtd->bhqd", weights.astype(v.dtype), v, preferred_element_type=f32)
    out = out / (norm if keep is None else norm * keep.rate)
    return out.astype(v.dtype), (q, k, v, bias, mask, keep, e, norm, out)


def _attention_bwd(keys_transposed: bool, res: tuple, g: jax.Array) -> tuple:
    q, k, v, bias, mask, keep, e, norm, out = res
    f32 = jnp.float32
    key_spec = "bhdt" if keys_transposed else "bhtd"
    p = e / norm
    dropped = p if keep is None else jnp.where(keep.mask, p / keep.rate, 0.0)
    # Both products contract over the queries, computed transposed ([.., d, t], then swapped):
    # XLA's CPU backend runs that form about three times as fast as [.., t, d] (the tiny
    # encoder's: 0.22 against 0.68 ms).
    dv = jnp.einsum(
        "bhqd,bhqt->bhdt", g, dropped.astype(v.dtype), preferred_element_type=f32
    ).swapaxes(-1, -2)
    dp = jnp.einsum("bhqd,bhtd->bhqt", g, v, preferred_element_type=f32)
    if keep is not None:
        dp = jnp.where(keep.mask, dp / keep.rate, 0.0)
    row = jnp.sum(g.astype(f32) * out, axis=-1, keepdims=True)  # = sum_t dp * p
    ds = p * (dp - row)
    dq = jnp.einsum(f"bhqt,{key_spec}->bhqd", ds.astype(q.dtype), k, preferred_element_type=f32)
    dk = jnp.einsum("bhqd,bhqt->bhdt", q, ds.astype(k.dtype), preferred_element_type=f32)
    dk = dk if keys_transposed else dk.swapaxes(-1, -2)
    dbias = None if bias is None else _sum_to(ds, bias.shape).astype(bias.dtype)
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), dbias, None, None


dot_product_attention.defvjp(_attention_fwd, _attention_bwd)
