"""Model wrapper: the family-agnostic interface the trainer, scorer and decoders call.

It takes batches as seqio's ``EncDecFeatureConverter`` produces them (``encoder_input_tokens``,
``decoder_input_tokens``, ``decoder_target_tokens``, ``decoder_loss_weights`` and, when packed,
``*_segment_ids``) so that the trainer never needs to know the architecture.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from t5x_xfer.models.config import T5Config
from t5x_xfer.models.losses import cross_entropy_with_logits
from t5x_xfer.models.t5 import T5

Array = jax.Array
Params = Any
Batch = Mapping[str, Array]


def _loss_weights(batch: Batch) -> Array:
    """seqio's decoder_loss_weights, else every non-padding target token."""
    weights = batch.get("decoder_loss_weights")
    if weights is None:
        weights = batch["decoder_target_tokens"] > 0
    return jnp.asarray(weights, jnp.float32)


class EncoderDecoderModel:
    """Loss, score and initialisation for an encoder-decoder module."""

    def __init__(self, config: T5Config) -> None:
        self.config = config
        self.module = T5(config)

    def _dummy_inputs(self, batch_size: int = 1, length: int = 8) -> dict[str, Array]:
        ids = jnp.ones((batch_size, length), jnp.int32)
        return {"encoder_input_tokens": ids, "decoder_input_tokens": ids}

    def init_params(self, rng: Array) -> Params:
        """Random float32 parameters (unboxed: plain arrays in a nested dict)."""
        variables = self.module.init(rng, **self._dummy_inputs())
        return nn.unbox(variables["params"])

    def logical_axes(self) -> Params:
        """A tree shaped like the params whose leaves are PartitionSpecs of logical axis names."""
        boxed = jax.eval_shape(
            lambda: self.module.init(jax.random.PRNGKey(0), **self._dummy_inputs())
        )
        return nn.get_partition_spec(boxed)["params"]

    def abstract_params(self) -> Params:
        """ShapeDtypeStructs of the params, without allocating them."""
        return jax.eval_shape(lambda: self.init_params(jax.random.PRNGKey(0)))

    def logits(self, params: Params, batch: Batch, dropout_rng: Array | None = None) -> Array:
        """Teacher-forced float32 logits [batch, target_len, vocab]."""
        return self.module.apply(
            {"params": params},
            batch["encoder_input_tokens"],
            batch["decoder_input_tokens"],
            encoder_mask=batch.get("encoder_mask"),
            decoder_mask=batch.get("decoder_mask"),
            encoder_segment_ids=batch.get("encoder_segment_ids"),
            decoder_segment_ids=batch.get("decoder_segment_ids"),
            deterministic=dropout_rng is None,
            rngs=None if dropout_rng is None else {"dropout": dropout_rng},
        )

    def loss_fn(
        self,
        params: Params,
        batch: Batch,
        dropout_rng: Array | None = None,
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
    ) -> tuple[Array, dict[str, Array]]:
        """Mean cross entropy per weighted target token, and metrics summed over the batch."""
        logits = self.logits(params, batch, dropout_rng)
        targets = batch["decoder_target_tokens"]
        weights = _loss_weights(batch)
        total, total_z, n_tokens = cross_entropy_with_logits(
            logits, targets, weights, label_smoothing, z_loss
        )
        correct = jnp.sum((jnp.argmax(logits, -1) == targets) * weights)
        denom = jnp.maximum(n_tokens, 1.0)
        metrics = {
            "loss_sum": total,
            "z_loss_sum": total_z,
            "correct_tokens": correct,
            "target_tokens": n_tokens,
        }
        return total / denom, metrics

    def score_batch(self, params: Params, batch: Batch) -> Array:
        """Per-example sum of target-token log-likelihoods (for ranking and rescoring)."""
        logits = self.logits(params, batch)
        targets = batch["decoder_target_tokens"]
        weights = _loss_weights(batch)
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        token_ll = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
        return jnp.sum(token_ll * weights, axis=-1)
