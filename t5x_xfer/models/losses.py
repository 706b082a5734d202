"""Token-level cross entropy with T5X's options: label smoothing and z-loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def cross_entropy_with_logits(
    logits: Array,
    targets: Array,
    weights: Array | None = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
) -> tuple[Array, Array, Array]:
    """Summed cross entropy over weighted target tokens.

    Returns (total_loss, total_z_loss, total_weight). The z-loss term ``z_loss * log(Z)**2``
    keeps the softmax normaliser near 1, which stabilises bfloat16 training (PaLM, T5X).
    Label smoothing spreads ``label_smoothing`` of the mass uniformly over the vocabulary,
    with the constant entropy term subtracted so a perfect prediction scores 0.

    >>> logits = jnp.log(jnp.array([[[0.5, 0.5]]]))
    >>> round(float(cross_entropy_with_logits(logits, jnp.array([[0]]))[0]), 4)
    0.6931
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if z_loss < 0:
        raise ValueError(f"z_loss must be >= 0, got {z_loss}")
    logits = logits.astype(jnp.float32)
    vocab = logits.shape[-1]
    confidence = 1.0 - label_smoothing
    low = label_smoothing / (vocab - 1) if vocab > 1 else 0.0
    normalizing = -(
        confidence * jnp.log(confidence) + (vocab - 1) * low * jnp.log(low + 1e-20)
        if label_smoothing > 0
        else 0.0
    )
    log_z = jax.nn.logsumexp(logits, axis=-1)
    log_probs = logits - log_z[..., None]
    if label_smoothing > 0:
        soft = jax.nn.one_hot(targets, vocab) * (confidence - low) + low
        token_loss = -jnp.sum(soft * log_probs, axis=-1) - normalizing
    else:
        token_loss = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    token_z = z_loss * jnp.square(log_z)
    if weights is None:
        weights = jnp.ones(targets.shape, jnp.float32)
    weights = weights.astype(jnp.float32)
    return (
        jnp.sum((token_loss + token_z) * weights),
        jnp.sum(token_z * weights),
        jnp.sum(weights),
    )
