"""Train state, optimizers, learning-rate schedules and the jitted train and eval steps.

Everything here is pure and sharding-agnostic: ``t5x_xfer.train`` jits these functions with the
shardings from ``t5x_xfer.partitioning``, so the same step runs on one CPU or a TPU pod.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax.struct
import gin
import jax
import jax.numpy as jnp
import optax

from t5x_xfer.models import EncoderDecoderModel
from t5x_xfer.models.config import T5Config

Array = jax.Array
Batch = dict[str, Array]

SCHEDULES = ("constant", "rsqrt", "linear", "cosine")
OPTIMIZERS = ("adafactor", "adamw")


@gin.configurable
def make_schedule(
    name: str = "rsqrt",
    learning_rate: float = 1e-3,
    warmup_steps: int = 0,
    total_steps: int | None = None,
    end_learning_rate: float = 0.0,
) -> optax.Schedule:
    """Linear warm-up to ``learning_rate`` over ``warmup_steps``, then ``name``:

    - constant: flat;
    - rsqrt: ``learning_rate * sqrt(warmup / step)`` after warm-up (T5's inverse square root,
      with the peak at the end of warm-up; without warm-up it is constant until step 1);
    - linear / cosine: decay to ``end_learning_rate`` at ``total_steps``.

    >>> float(make_schedule("rsqrt", 1.0, warmup_steps=100)(400))
    0.5
    """
    if name not in SCHEDULES:
        raise ValueError(f"schedule {name!r} unknown; allowed: {list(SCHEDULES)}")
    if learning_rate <= 0 or warmup_steps < 0:
        raise ValueError(
            f"need learning_rate > 0 and warmup_steps >= 0, got {learning_rate}, {warmup_steps}"
        )
    if name in ("linear", "cosine") and (total_steps is None or total_steps <= warmup_steps):
        raise ValueError(f"schedule {name!r} needs total_steps > warmup_steps, got {total_steps}")

    def schedule(step: Array) -> Array:
        step = jnp.asarray(step, jnp.float32)
        warm = jnp.minimum(1.0, (step + 1.0) / warmup_steps) if warmup_steps else 1.0
        if name == "constant":
            after = 1.0
        elif name == "rsqrt":
            after = jnp.sqrt(max(warmup_steps, 1) / jnp.maximum(step, max(warmup_steps, 1)))
        else:
            frac = jnp.clip((step - warmup_steps) / (total_steps - warmup_steps), 0.0, 1.0)
            shape = 1.0 - frac if name == "linear" else 0.5 * (1.0 + jnp.cos(math.pi * frac))
            end = end_learning_rate / learning_rate
            after = end + (1.0 - end) * shape
        return learning_rate * jnp.where(step < warmup_steps, warm, after)

    return schedule


@gin.configurable
def make_optimizer(
    schedule: optax.Schedule,
    name: str = "adafactor",
    max_grad_norm: float | None = None,
    weight_decay: float = 0.0,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    adafactor_decay_rate: float = 0.8,
    adafactor_momentum: float | None = None,
) -> optax.GradientTransformation:
    """Adafactor (the T5 default: factored second moments, update clipping at 1, scaled by
    parameter RMS) or AdamW; optional global-norm gradient clipping in front."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer {name!r} unknown; allowed: {list(OPTIMIZERS)}")
    if name == "adafactor":
        opt = optax.adafactor(
            learning_rate=schedule,
            decay_rate=adafactor_decay_rate,
            momentum=adafactor_momentum,
            weight_decay_rate=weight_decay or None,
        )
    else:
        opt = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    if max_grad_norm:
        opt = optax.chain(optax.clip_by_global_norm(max_grad_norm), opt)
    return opt


class TrainState(flax.struct.PyTreeNode):
    """What a checkpoint must hold to continue bit-exactly (besides the data iterator)."""

    step: Array
    params: Any
    opt_state: Any


@dataclasses.dataclass(frozen=True)
class LossOptions:
    label_smoothing: float = 0.0
    z_loss: float = 0.0


def model_flops_per_token_pair(config: T5Config, inputs_len: int, targets_len: int) -> float:
    """Training FLOPs (forward + backward = 3x forward) of one example, the MFU numerator.

    Counts matmuls only (2 FLOPs per multiply-add): projections, attention scores and values,
    MLPs and the logits layer; full (unpacked) lengths, as the step computes them.
    """
    c = config
    d, inner, ff, vocab = c.d_model, c.num_heads * c.d_kv, c.d_ff, c.vocab_size
    mlp = (3 if c.is_gated else 2) * d * ff
    enc_tok = 2 * (4 * d * inner + mlp) + 2 * 2 * inputs_len * inner
    dec_tok = (
        2 * (4 * d * inner + 2 * d * inner + mlp)  # self-attn q,k,v,o + cross q,o + mlp
        + 2 * 2 * targets_len * inner  # self-attention scores and values
        + 2 * 2 * inputs_len * inner  # cross-attention scores and values
    )
    cross_kv = 2 * 2 * d * inner  # cross-attention keys/values per encoder token
    forward = (
        c.num_layers * inputs_len * enc_tok
        + c.num_decoder_layers * (targets_len * dec_tok + inputs_len * cross_kv)
        + targets_len * 2 * d * vocab
    )
    return 3.0 * forward


def _split_microbatches(batch: Batch, num: int) -> Batch:
    def split(x: Array) -> Array:
        if x.shape[0] % num:
            raise ValueError(f"batch size {x.shape[0]} is not divisible by {num} microbatches")
        return x.reshape(num, x.shape[0] // num, *x.shape[1:])

    return {k: split(v) for k, v in batch.items()}


def make_train_step(
    model: EncoderDecoderModel,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
    *,
    num_microbatches: int = 1,
    loss: LossOptions = LossOptions(),
    dropout_seed: int = 0,
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]]:
    """``step(state, batch) -> (state, metrics)``: gradients of the loss summed over weighted
    target tokens, divided by the whole batch's token count, so accumulating over
    ``num_microbatches`` gives the same update as one big batch.

    Dropout keys derive from ``(dropout_seed, step, microbatch)``, so a resumed run draws the
    same masks as an uninterrupted one.
    """
    base_key = jax.random.PRNGKey(dropout_seed)
    use_dropout = model.config.dropout_rate > 0

    def micro_grads(params: Any, micro: Batch, key: Array) -> tuple[Any, dict[str, Array]]:
        def loss_sum(p: Any) -> tuple[Array, dict[str, Array]]:
            _, metrics = model.loss_fn(
                p,
                micro,
                dropout_rng=key if use_dropout else None,
                label_smoothing=loss.label_smoothing,
                z_loss=loss.z_loss,
            )
            return metrics["loss_sum"], metrics

        grads, metrics = jax.grad(loss_sum, has_aux=True)(params)
        return grads, metrics

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Array]]:
        step_key = jax.random.fold_in(base_key, state.step)
        if num_microbatches == 1:
            grads, metrics = micro_grads(state.params, batch, step_key)
        else:
            micros = _split_microbatches(batch, num_microbatches)

            def body(carry: Any, xs: tuple[Batch, Array]) -> tuple[Any, None]:
                acc_g, acc_m = carry
                micro, i = xs
                g, m = micro_grads(state.params, micro, jax.random.fold_in(step_key, i))
                return (jax.tree.map(jnp.add, acc_g, g), jax.tree.map(jnp.add, acc_m, m)), None

            zeros_g = jax.tree.map(jnp.zeros_like, state.params)
            zeros_m = jax.tree.map(
                lambda s: jnp.zeros(s.shape, s.dtype),
                jax.eval_shape(
                    lambda: micro_grads(
                        state.params, jax.tree.map(lambda x: x[0], micros), step_key
                    )[1]
                ),
            )
            (grads, metrics), _ = jax.lax.scan(
                body, (zeros_g, zeros_m), (micros, jnp.arange(num_microbatches))
            )
        denom = jnp.maximum(metrics["target_tokens"], 1.0)
        grads = jax.tree.map(lambda g: g / denom, grads)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        out = {
            **metrics,
            "learning_rate": schedule(state.step),
            "grad_norm": optax.global_norm(grads),
        }
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), out

    return step


def make_eval_step(
    model: EncoderDecoderModel, loss: LossOptions = LossOptions()
) -> Callable[[Any, Batch], dict[str, Array]]:
    """Teacher-forced metric sums of one batch (no dropout)."""

    def step(params: Any, batch: Batch) -> dict[str, Array]:
        return model.loss_fn(
            params, batch, label_smoothing=loss.label_smoothing, z_loss=loss.z_loss
        )[1]

    return step


def summarize_metrics(sums: dict[str, Any]) -> dict[str, float]:
    """Per-token means from summed metrics (loss, z_loss, accuracy) plus passthrough scalars."""
    tokens = max(float(sums["target_tokens"]), 1.0)
    out = {
        "loss": float(sums["loss_sum"]) / tokens,
        "z_loss": float(sums["z_loss_sum"]) / tokens,
        "accuracy": float(sums["correct_tokens"]) / tokens,
        "target_tokens": float(sums["target_tokens"]),
    }
    for key in ("learning_rate", "grad_norm"):
        if key in sums:
            out[key] = float(sums[key])
    return out
