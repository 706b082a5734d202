"""Schedules, optimizers, FLOP counts and checkpoint retention of the trainer."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from t5x_xfer import checkpoints, optimizers
from t5x_xfer.models import EncoderDecoderModel, T5Config


def test_schedules():
    rsqrt = optimizers.make_schedule("rsqrt", 1.0, warmup_steps=100)
    assert float(rsqrt(0)) == pytest.approx(0.01)  # linear warm-up from 1/warmup
    assert float(rsqrt(99)) == pytest.approx(1.0)
    assert float(rsqrt(400)) == pytest.approx(0.5)  # sqrt(100 / 400)
    cosine = optimizers.make_schedule("cosine", 2.0, warmup_steps=10, total_steps=110)
    assert float(cosine(10)) == pytest.approx(2.0)
    assert float(cosine(60)) == pytest.approx(1.0)  # half-way: half the peak
    assert float(cosine(110)) == pytest.approx(0.0, abs=1e-6)
    linear = optimizers.make_schedule("linear", 1.0, total_steps=100, end_learning_rate=0.5)
    assert float(linear(50)) == pytest.approx(0.75)
    assert float(optimizers.make_schedule("constant", 3e-4)(12345)) == pytest.approx(3e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "step"}, "allowed"),
        ({"name": "cosine", "total_steps": None}, "total_steps"),
        ({"learning_rate": 0.0}, "learning_rate"),
    ],
)
def test_bad_schedules(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optimizers.make_schedule(**kwargs)


def test_optimizers_update_and_clip():
    params = {"w": jnp.ones((4, 3))}
    grads = {"w": jnp.full((4, 3), 100.0)}
    sched = optimizers.make_schedule("constant", 0.1)
    for name in optimizers.OPTIMIZERS:
        opt = optimizers.make_optimizer(sched, name, max_grad_norm=1.0)
        updates, _ = opt.update(grads, opt.init(params), params)
        assert float(jnp.max(jnp.abs(updates["w"]))) > 0
    with pytest.raises(ValueError, match="allowed"):
        optimizers.make_optimizer(sched, "sgd")


def test_model_flops_match_xla_cost_analysis():
    """The analytic MFU numerator (3x forward matmul FLOPs) agrees with XLA's count of the
    compiled forward pass (which adds only the small elementwise work)."""
    import jax

    cfg = T5Config(vocab_size=2048, d_model=256, d_kv=32, d_ff=1024, num_layers=2, num_heads=8)
    model = EncoderDecoderModel(cfg)
    batch, inputs, targets = 4, 64, 32
    feats = {
        "encoder_input_tokens": jnp.ones((batch, inputs), jnp.int32),
        "decoder_input_tokens": jnp.ones((batch, targets), jnp.int32),
    }
    cost = jax.jit(model.logits).lower(model.abstract_params(), feats).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    ours = batch * model.flops_per_example({"inputs": inputs, "targets": targets}) / 3
    assert ours == pytest.approx(cost["flops"], rel=0.03)


def test_keeps_last_and_best_checkpoints(tmp_path):
    cfg = T5Config(vocab_size=8, d_model=4, d_kv=2, d_ff=4, num_layers=1, num_heads=2)
    params, opt_state = {"w": np.zeros(2, np.float32)}, {"m": np.zeros(2, np.float32)}
    manager = checkpoints.train_manager(
        tmp_path, keep=1, keep_best=1, best_metric="eval/loss", async_save=False
    )
    for step, loss in zip((1, 2, 3, 4), (3.0, 1.0, 2.0, 4.0), strict=True):
        checkpoints.save_train_state(
            manager,
            step,
            params,
            opt_state,
            EncoderDecoderModel(cfg),
            {"step": step},
            metrics={"eval/loss": loss},
        )
    manager.wait_until_finished()
    manager.close()
    kept = sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit())
    assert kept == [2, 4]  # the best (lowest eval loss) and the latest
