"""Model properties beyond parity: logical axes, bfloat16 compute, dropout, loss options."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from t5x_xfer.models import EncoderDecoderModel
from t5x_xfer.models.losses import cross_entropy_with_logits
from t5x_xfer.models.t5 import relative_position_bucket
from t5x_xfer.testing.fakes import padded_batch, tiny_config

LOGICAL_AXES = {"vocab", "embed", "heads", "kv", "mlp", "relpos_buckets"}


@pytest.mark.parametrize("kind", ["codet5p", "t5_v1_1"])
def test_every_param_has_logical_axes_of_its_rank(kind):
    model = EncoderDecoderModel(tiny_config(kind))
    specs = model.logical_axes()
    shapes = model.abstract_params()
    pairs = zip(
        jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec)),
        jax.tree.leaves(shapes),
        strict=True,
    )
    for spec, shape in pairs:
        assert len(spec) == len(shape.shape)
        assert set(spec) <= LOGICAL_AXES


def test_bfloat16_compute_keeps_float32_params_and_tracks_float32():
    batch = padded_batch(101, [9, 6], [7, 4])
    f32 = EncoderDecoderModel(tiny_config("codet5p", dropout_rate=0.0))
    bf16 = EncoderDecoderModel(tiny_config("codet5p", dropout_rate=0.0, dtype="bfloat16"))
    params = f32.init_params(jax.random.PRNGKey(0))
    assert {x.dtype for x in jax.tree.leaves(bf16.init_params(jax.random.PRNGKey(0)))} == {
        jnp.dtype("float32")
    }
    a, b = f32.logits(params, batch), bf16.logits(params, batch)
    assert b.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(a - b))) < 0.1 * float(jnp.max(jnp.abs(a)))
    assert float(jnp.max(jnp.abs(a - b))) > 0  # really computed in bfloat16


def test_dropout_only_with_an_rng():
    model = EncoderDecoderModel(tiny_config("codet5p", dropout_rate=0.3))
    params = model.init_params(jax.random.PRNGKey(0))
    batch = padded_batch(101, [9], [7])
    np.testing.assert_array_equal(model.logits(params, batch), model.logits(params, batch))
    drop = [model.logits(params, batch, jax.random.PRNGKey(i)) for i in (1, 2)]
    assert not np.allclose(drop[0], drop[1])


def test_relative_position_buckets_are_symmetric_and_capped():
    rel = jnp.arange(-200, 201)
    bi = np.asarray(relative_position_bucket(rel, True, 32, 128))
    assert bi[200] == 0 and bi.max() == 31 and bi.min() == 0
    assert bi[200 + 5] == bi[200 - 5] + 16  # forward distances use the upper half
    uni = np.asarray(relative_position_bucket(rel, False, 32, 128))
    assert (uni[201:] == 0).all() and uni[0] == 31  # the decoder only looks back


def test_loss_options():
    logits = jnp.log(jnp.array([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]]))
    targets = jnp.array([[0, 2]])
    total, z, n = cross_entropy_with_logits(logits, targets)
    np.testing.assert_allclose(total, -np.log(0.7) - np.log(0.8), rtol=1e-6)
    assert float(z) == 0 and float(n) == 2
    weighted, _, n = cross_entropy_with_logits(logits, targets, jnp.array([[1.0, 0.0]]))
    np.testing.assert_allclose(weighted, -np.log(0.7), rtol=1e-6)
    shifted = logits + 3.0  # log Z = 3: z-loss adds 1e-2 * 9 per token
    total_z, z, _ = cross_entropy_with_logits(shifted, targets, z_loss=1e-2)
    np.testing.assert_allclose(z, 2 * 0.09, rtol=1e-5)
    np.testing.assert_allclose(total_z, total + z, rtol=1e-5)
    smooth, _, _ = cross_entropy_with_logits(logits, targets, label_smoothing=0.1)
    perfect = jnp.log(jax.nn.one_hot(targets, 3) * 0.85 + 0.05)  # 0.9 true, 0.05 others
    assert float(cross_entropy_with_logits(perfect, targets, label_smoothing=0.1)[0]) < 1e-5
    assert float(smooth) > 0
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        cross_entropy_with_logits(logits, targets, label_smoothing=1.5)
