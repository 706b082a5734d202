"""The shared array operations: 2-D dense products and the 16-bit dropout mask."""

from __future__ import annotations

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from t5x_xfer.models import ops


def test_docstring_examples_hold():
    assert doctest.testmod(ops).failed == 0


def test_dense_equals_einsum():
    x = jax.random.normal(jax.random.key(0), (2, 3, 4, 5))
    w = jax.random.normal(jax.random.key(1), (4, 5, 6))
    np.testing.assert_allclose(
        ops.dense(x, w, in_dims=2), jnp.einsum("blhk,hkd->bld", x, w), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("transpose_w", [False, True])
def test_bfloat16_matmul_and_its_gradients_match_float32(transpose_w):
    """bfloat16 operands, float32 accumulation: the product and both gradients stay within
    bfloat16's rounding of float32's, and the weight's gradient comes back in float32."""
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (64, 48))
    w = jax.random.normal(keys[1], (40, 48) if transpose_w else (48, 40))
    g = jax.random.normal(keys[2], (64, 40))

    def loss(x, w, low):
        y = ops.matmul(x.astype(jnp.bfloat16) if low else x, w, transpose_w=transpose_w)
        assert y.dtype == (jnp.bfloat16 if low else jnp.float32)
        return (y.astype(jnp.float32) * g).sum()

    ours = jax.grad(loss, argnums=(0, 1))(x, w, True)
    ref = jax.grad(loss, argnums=(0, 1))(x, w, False)
    assert ours[1].dtype == jnp.float32
    for got, want in zip(ours, ref, strict=True):
        err = float(jnp.abs(got.astype(jnp.float32) - want).max() / jnp.abs(want).max())
        assert err < 2e-2, err
    np.testing.assert_allclose(
        ops.matmul(x, w, transpose_w=transpose_w), x @ (w.T if transpose_w else w), rtol=1e-5
    )


def test_keep_mask_elements_of_one_hash_are_independent():
    """Four elements share a threefry hash: neighbours must still be independent draws."""
    mask, keep = ops.keep_mask(jax.random.key(5), 0.5, (256, 1024))
    for r in range(4):  # element r of each group of four and its right neighbour
        both = float((mask[:, r:-1:4] & mask[:, r + 1 :: 4]).mean())
        assert abs(both - keep * keep) < 0.01, (r, both)  # 65k pairs: 5 SE is 0.0085


def test_keep_mask_with_an_rbg_key():
    key = jax.random.key(0, impl="rbg")
    mask, keep = ops.keep_mask(key, 0.9, (64, 1001))
    assert mask.shape == (64, 1001) and abs(float(mask.mean()) - keep) < 0.005
    other = ops.keep_mask(jax.random.key(1, impl="rbg"), 0.9, (64, 1001))[0]
    assert not bool((other == mask).all())


def test_keep_mask_rate_and_odd_last_axis():
    mask, keep = ops.keep_mask(jax.random.key(3), 0.9, (64, 1001))
    assert mask.shape == (64, 1001) and abs(keep - 0.9) < 1 / 65536
    assert abs(float(mask.mean()) - keep) < 0.005  # 64k draws: 5 standard errors is 0.006
    again = ops.keep_mask(jax.random.key(3), 0.9, (64, 1001))[0]
    assert bool((again == mask).all())
    other = ops.keep_mask(jax.random.key(4), 0.9, (64, 1001))[0]
    assert not bool((other == mask).all())


def test_dropout_scales_kept_values_and_is_off_when_deterministic():
    x = jnp.ones((8, 512))
    drop = ops.Dropout(0.25)
    y = drop.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)})
    kept = y[y != 0]
    _, keep = ops.keep_mask(jax.random.key(0), 0.75, (1,))
    np.testing.assert_allclose(kept, 1 / keep, rtol=1e-6)
    assert 0.70 < kept.size / x.size < 0.80
    assert bool((drop.apply({}, x, deterministic=True) == x).all())


def test_mask_does_not_depend_on_the_sharding():
    """Masks drawn under a (batch, last-axis) sharding equal the single-device ones."""
    if jax.device_count() < 2:
        pytest.skip("needs 2 devices (XLA_FLAGS set in tests/conftest.py)")
    mesh = Mesh(np.array(jax.devices()[:2]).reshape(2, 1), ("data", "model"))
    shape = (4, 6, 256)
    whole = ops.keep_mask(jax.random.key(7), 0.9, shape)[0]
    sharding = NamedSharding(mesh, PartitionSpec("data", None, "model"))
    sharded = jax.jit(lambda k: ops.keep_mask(k, 0.9, shape)[0], out_shardings=sharding)(
        jax.random.key(7)
    )
    np.testing.assert_array_equal(np.asarray(sharded), np.asarray(whole))


def test_argmax_is_jnp_argmax_with_ties_nans_and_infinities():
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, size=(64, 7)).astype(np.float32)  # many ties
    x[3, 2] = x[5, 0] = x[5, 4] = np.nan
    x[7] = -np.inf
    x[9, 6] = np.inf
    got = jax.jit(ops.argmax)(jnp.asarray(x))
    np.testing.assert_array_equal(got, jnp.argmax(jnp.asarray(x), axis=-1))
    assert got[5] == 0 and got[3] == 2 and got[9] == 6


def _plain_attention(q, k, v, bias, mask, keep):
    """The textbook form, differentiated by JAX: the reference for dot_product_attention."""
    scores = jnp.einsum("bhqd,bhtd->bhqt", q, k).astype(jnp.float32)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = jnp.where(mask, scores, ops.NEG_INF)
    weights = jax.nn.softmax(scores, axis=-1)
    if keep is not None:
        weights = jnp.where(keep.mask, weights / keep.rate, 0.0)
    return jnp.einsum("bhqt,bhtd->bhqd", weights.astype(v.dtype), v)


@pytest.mark.parametrize("bias_batch", [None, 1, 3])
@pytest.mark.parametrize("dropout", [False, True])
def test_attention_and_its_gradients_equal_the_plain_form(bias_batch, dropout):
    """Outputs and every gradient (bias summed over the batch it was broadcast over) equal
    autodiff of the textbook form, with padded keys, an odd key count and dropped weights."""
    b, h, nq, nt, d = 3, 2, 5, 7, 4
    keys = jax.random.split(jax.random.key(0), 6)
    shapes = [(b, h, nq, d), (b, h, nt, d), (b, h, nt, d)]
    q, k, v = (jax.random.normal(key, shape) for key, shape in zip(keys, shapes, strict=False))
    g = jax.random.normal(keys[3], (b, h, nq, d))
    bias = None if bias_batch is None else jax.random.normal(keys[4], (bias_batch, h, nq, nt))
    mask = jnp.arange(nt)[None, None, None, :] < jnp.array([7, 4, 1])[:, None, None, None]
    keep = ops.Keep(*ops.keep_mask(keys[5], 0.8, (b, h, nq, nt))) if dropout else None
    args = (q, k, v) if bias is None else (q, k, v, bias)

    def loss(attention):
        def f(q, k, v, bias=None):
            return (attention(q, k, v, bias, mask, keep) * g).sum()

        return f

    argnums = tuple(range(len(args)))
    ours = jax.grad(loss(ops.dot_product_attention), argnums)(*args)
    plain = jax.grad(loss(_plain_attention), argnums)(*args)
    np.testing.assert_allclose(
        ops.dot_product_attention(q, k, v, bias, mask, keep),
        _plain_attention(q, k, v, bias, mask, keep),
        atol=1e-5,
    )
    for name, a, e in zip("qkvb"[: len(ours)], ours, plain, strict=True):
        np.testing.assert_allclose(a, e, atol=1e-5, err_msg=name)


def test_attention_with_transposed_keys_and_bfloat16():
    """A decode cache's key layout gives the same outputs and key gradient (transposed);
    bfloat16 operands give bfloat16 outputs and gradients near float32's."""
    keys = jax.random.split(jax.random.key(1), 4)
    q, k, v, g = (jax.random.normal(key, (2, 3, 6, 8)) for key in keys)

    def grads(q, k, v, transposed):
        def f(q, k):
            out = ops.dot_product_attention(q, k, v, keys_transposed=transposed)
            return (out.astype(jnp.float32) * g).sum()

        return jax.grad(f, (0, 1))(q, k)

    dq, dk = grads(q, k, v, False)
    dq_t, dk_t = grads(q, k.swapaxes(-1, -2), v, True)
    np.testing.assert_allclose(dq_t, dq, atol=1e-6)
    np.testing.assert_allclose(dk_t.swapaxes(-1, -2), dk, atol=1e-6)
    low = [x.astype(jnp.bfloat16) for x in (q, k, v)]
    dq_low, dk_low = grads(*low, False)
    assert dq_low.dtype == dk_low.dtype == jnp.bfloat16
    np.testing.assert_allclose(dq_low.astype(jnp.float32), dq, atol=0.1, rtol=0.05)
    out_low = ops.dot_product_attention(*low)
    assert out_low.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        out_low.astype(jnp.float32), ops.dot_product_attention(q, k, v), atol=0.05
    )


def test_masked_bias_gradient_sums_the_broadcast_batch():
    bias = jax.random.normal(jax.random.key(2), (1, 2, 3, 4))
    mask = jnp.arange(4)[None, None, None, :] < jnp.array([4, 2, 1])[:, None, None, None]
    combined = ops.masked_bias(bias, mask)
    assert combined.shape == (3, 2, 3, 4)
    assert float(combined[2, 0, 0, 1]) == ops.NEG_INF
    g = jax.random.normal(jax.random.key(3), combined.shape)
    np.testing.assert_allclose(
        jax.grad(lambda b: (ops.masked_bias(b, mask) * g).sum())(bias),
        g.sum(0, keepdims=True),
        atol=1e-6,
    )


@pytest.mark.parametrize("n", [1, 2, 5, 8, 13])
def test_row_max_and_row_sum_equal_the_reductions(n):
    x = jax.random.normal(jax.random.key(n), (3, n))
    np.testing.assert_array_equal(ops._row_max(x), x.max(-1, keepdims=True))
    np.testing.assert_allclose(ops._row_sum(x), x.sum(-1), atol=1e-6)
