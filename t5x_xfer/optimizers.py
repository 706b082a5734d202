"""Learning-rate schedules and optimizers (T5's defaults: Adafactor, inverse square root).

Gin files build them (``train.schedule = @optimizers.make_schedule()``, ``train.optimizer =
@optimizers.make_optimizer()``) and hand the objects to the train entry function.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

Array = jax.Array

SCHEDULES = ("constant", "rsqrt", "linear", "cosine")
OPTIMIZERS = ("adafactor", "adamw")


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
