"""Sharded training equals single-device training; parameters and optimizer state really shard.

Runs on the 8 simulated CPU devices set up in tests/conftest.py.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from t5x_xfer import optimizers, partitioning, train_state
from t5x_xfer import trainer as trainer_lib
from t5x_xfer.models import EncoderDecoderModel, T5Config

pytestmark = pytest.mark.skipif(
    jax.device_count() < 8, reason="needs 8 devices (XLA_FLAGS set in tests/conftest.py)"
)

CONFIG = T5Config(
    vocab_size=128,
    d_model=64,
    d_kv=16,
    d_ff=128,
    num_layers=2,
    num_decoder_layers=2,
    num_heads=4,
    relative_attention_num_buckets=16,
    relative_attention_max_distance=32,
    feed_forward_proj="gated-gelu",
    tie_word_embeddings=False,
)


def _batches(n: int, batch: int = 8, inputs: int = 16, targets: int = 8) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        tgt = rng.integers(3, CONFIG.vocab_size, (batch, targets)).astype(np.int32)
        tgt[:, -2:] = 0  # padding: zero loss weight
        out.append(
            {
                "encoder_input_tokens": rng.integers(1, CONFIG.vocab_size, (batch, inputs)).astype(
                    np.int32
                ),
                "decoder_input_tokens": np.concatenate(
                    [np.zeros((batch, 1), np.int32), tgt[:, :-1]], 1
                ),
                "decoder_target_tokens": tgt,
                "decoder_loss_weights": (tgt > 0).astype(np.float32),
            }
        )
    return out


def _run(
    mesh_shape: tuple[int, int, int],
    devices: list,
    batches: list,
    micro: int = 1,
    config: T5Config = CONFIG,
):
    """Train len(batches) steps on a mesh; return (losses, params as numpy, state)."""
    mesh = partitioning.make_mesh(*mesh_shape, devices=devices)
    model = EncoderDecoderModel(config)
    schedule = optimizers.make_schedule("constant", 1e-3)
    opt = optimizers.make_optimizer(schedule, "adafactor", max_grad_norm=1.0)
    with partitioning.activate(mesh):
        init = train_state.TrainStateInitializer(model, opt, mesh)
        state = init.from_params(None, seed=0)
        step = jax.jit(
            trainer_lib.make_train_step(model, opt, schedule, num_microbatches=micro),
            in_shardings=(init.state_shardings, partitioning.batch_sharding(mesh)),
            out_shardings=(init.state_shardings, init.replicated),
        )
        losses = []
        for b in batches:
            state, m = step(state, partitioning.global_batch(b, mesh))
            losses.append(float(m["loss_sum"]) / float(m["target_tokens"]))
    return losses, jax.tree.map(np.asarray, state.params), state


def _max_diff(a, b) -> float:
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(x - y))), a, b)))


def test_sharded_steps_equal_single_device():
    batches = _batches(1) * 5  # one batch five times, with dropout (masks must match too)
    devices = jax.devices()
    loss1, params1, _ = _run((1, 1, 1), devices[:1], batches)
    loss8, params8, state8 = _run((2, 2, 2), devices[:8], batches)
    np.testing.assert_allclose(loss8, loss1, rtol=0, atol=1e-5)
    assert _max_diff(params8, params1) < 1e-5
    assert len(set(loss1)) == len(loss1)  # the params moved (with dropout the loss is noisy)
    # The 2x2x2 run really used all three axes: the query kernel is split over fsdp and model.
    q = state8.params["encoder"]["layers_0"]["attention"]["query"]
    assert q.sharding.spec == P("fsdp", "model", None)


def test_microbatches_equal_one_big_batch():
    batches = _batches(3)
    devices = jax.devices()[:2]
    # Without dropout: microbatches draw their own masks, so only then must the steps agree.
    config = dataclasses.replace(CONFIG, dropout_rate=0.0)
    loss1, params1, _ = _run((2, 1, 1), devices, batches, micro=1, config=config)
    loss2, params2, _ = _run((2, 1, 1), devices, batches, micro=2, config=config)
    np.testing.assert_allclose(loss2, loss1, rtol=0, atol=1e-5)
    assert _max_diff(params2, params1) < 1e-5
    assert loss1[-1] < loss1[0]  # it trained


def _bytes_per_device(tree) -> tuple[int, int]:
    """(bytes on device 0, total logical bytes) over a tree of sharded arrays."""
    on_dev0 = total = 0
    for leaf in jax.tree.leaves(tree):
        total += leaf.nbytes
        on_dev0 += sum(s.data.nbytes for s in leaf.addressable_shards if s.device.id == 0)
    return on_dev0, total


def test_fsdp_shards_params_and_optimizer_state():
    _, _, state = _run((1, 8, 1), jax.devices()[:8], _batches(1))
    for name, tree in (("params", state.params), ("opt_state", state.opt_state)):
        dev0, total = _bytes_per_device(tree)
        # About 1/8: only the tiny relative-position tables and scalars stay replicated.
        assert dev0 <= total / 8 * 1.1, (name, dev0, total)
    dev0, total = _bytes_per_device((state.params, state.opt_state))
    print(f"fsdp=8: {dev0} of {total} bytes per device ({dev0 / total:.3f})")


def test_mesh_spec_drops_axes_that_do_not_divide():
    mesh = partitioning.make_mesh(1, 1, 8)
    assert partitioning.mesh_spec(P("vocab", "embed"), (128, 64), mesh) == P("model", "fsdp")
    assert partitioning.mesh_spec(P("vocab", "embed"), (100, 64), mesh) == P(None, "fsdp")


@pytest.mark.parametrize(
    "sizes, match",
    [((3, 1, 1), "multiply to 3"), ((-1, -1, 1), "at most one"), ((0, 1, 1), ">= 1")],
)
def test_bad_mesh_sizes(sizes, match):
    with pytest.raises(ValueError, match=match):
        partitioning.make_mesh(*sizes)


def test_cpu_compiler_options_follow_the_compute_dtype():
    """Dots-only YNNPACK fusions for float32 steps; bfloat16 keeps XLA's default, which runs
    bfloat16 products natively (with dots only they are upcast inside the library call)."""
    if jax.default_backend() != "cpu":
        pytest.skip(f"CPU options only; the backend is {jax.default_backend()}")
    assert partitioning.compiler_options("float32") == partitioning.CPU_COMPILER_OPTIONS
    assert partitioning.compiler_options("bfloat16") is None
