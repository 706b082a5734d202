"""The model-family seam (T5X's ``BaseModel``): what the trainer, decoders, checkpoints and
Hugging Face conversion need of a model, so that none of them names a family.

A family (T5 encoder-decoders; later decoder-only LMs) subclasses :class:`BaseModel` and
registers itself in ``t5x_xfer.models.registry``. The wrapper supplies:

- ``family`` (the tag saved beside every checkpoint's config) and ``config_cls`` (a frozen,
  validated dataclass with ``to_dict``/``from_dict``/``replace``);
- its seqio feature converter, and how a list of prompts becomes a decoding batch;
- parameters: ``init_params``, ``abstract_params``, ``logical_axes`` (logical axis names that
  ``t5x_xfer.partitioning`` maps onto the mesh);
- training: ``logits`` (from which ``loss_fn`` and ``score_batch`` follow) and the analytic
  training FLOPs per example for MFU;
- decoding: ``predict_batch`` with :class:`t5x_xfer.decoding.DecodeSettings`;
- its Hugging Face mapping (``hf_mapping()``: the family's ``models/<family>_hf.py``, which
  ``t5x_xfer.hf`` reads for import and export).

Batches are what the family's feature converter produces; the targets are always
``decoder_target_tokens`` with ``decoder_loss_weights`` (as in seqio's converters).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from t5x_xfer.decoding import GREEDY, DecodeSettings
from t5x_xfer.models.losses import cross_entropy_with_logits

Array = jax.Array
Params = Any
Batch = Mapping[str, Array]

# Compute dtypes every family supports (parameters are always float32).
DTYPES = ("float32", "bfloat16")
# Config fields that change how a model runs, not what its parameters are: a checkpoint made
# with other values of these still fits the model.
RUNTIME_FIELDS = ("dropout_rate", "dtype")


def loss_weights(batch: Batch) -> Array:
    """seqio's decoder_loss_weights, else every non-padding target token."""
    weights = batch.get("decoder_loss_weights")
    if weights is None:
        weights = batch["decoder_target_tokens"] > 0
    return jnp.asarray(weights, jnp.float32)


class BaseModel(abc.ABC):
    """Loss, score, initialisation, FLOPs and decoding of one model family (see module doc)."""

    family: ClassVar[str]
    config_cls: ClassVar[type]

    def __init__(self, config: Any) -> None:
        if not isinstance(config, self.config_cls):
            raise TypeError(
                f"{type(self).__name__} ({self.family} family) needs a "
                f"{self.config_cls.__name__}, got {type(config).__name__}"
            )
        self.config = config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    # --- the config ------------------------------------------------------------------------

    @property
    def eos_id(self) -> int:
        return int(self.config.eos_token_id)

    @property
    def pad_id(self) -> int:
        return int(self.config.pad_token_id)

    @property
    def vocab_size(self) -> int:
        return int(self.config.vocab_size)

    @property
    def uses_dropout(self) -> bool:
        return float(getattr(self.config, "dropout_rate", 0.0)) > 0

    def replace(self, **changes: Any) -> BaseModel:
        """The same family with some config fields changed (e.g. ``dtype``)."""
        return type(self)(self.config.replace(**changes))

    def config_differences(self, other: Any) -> dict[str, tuple[Any, Any]]:
        """Fields (other's value, ours) where ``other`` describes different parameters."""
        mine = dataclasses.asdict(self.config)
        runtime = getattr(self.config_cls, "RUNTIME_FIELDS", RUNTIME_FIELDS)
        return {
            k: (v, mine.get(k))
            for k, v in dataclasses.asdict(other).items()
            if k not in runtime and mine.get(k, v) != v
        }

    @classmethod
    @abc.abstractmethod
    def hf_mapping(cls) -> ModuleType:
        """The module that maps this family to and from Hugging Face (see ``t5x_xfer.hf``)."""

    # --- data ------------------------------------------------------------------------------

    @abc.abstractmethod
    def feature_converter(self, pack: bool = True) -> Any:
        """The seqio FeatureConverter that turns text-to-text tasks into this model's batches."""

    def encode_prompt(self, ids: Sequence[int], add_eos: bool) -> list[int]:
        """The ids a text prompt is decoded from (an encoder's input ends with EOS)."""
        return [*ids, self.eos_id] if add_eos else list(ids)

    @abc.abstractmethod
    def prompt_batch(self, prompts: Sequence[Sequence[int]], length: int) -> dict[str, np.ndarray]:
        """The batch ``predict_batch`` decodes ``prompts`` (token ids) from, ``length`` wide."""

    # --- parameters ------------------------------------------------------------------------

    @abc.abstractmethod
    def init_params(self, rng: Array) -> Params:
        """Random float32 parameters (plain arrays in a nested dict)."""

    @abc.abstractmethod
    def logical_axes(self) -> Params:
        """A tree shaped like the params whose leaves are PartitionSpecs of logical axis names."""

    def unstack_layers(self, params: Params) -> Params:
        """Parameters with one entry per layer (the Hugging Face layout); models that stack
        layers for ``nn.scan`` override this and :meth:`stack_layers`."""
        return params

    def stack_layers(self, params: Params) -> Params:
        return params

    def abstract_params(self) -> Params:
        """ShapeDtypeStructs of the params, without allocating them."""
        return jax.eval_shape(lambda: self.init_params(jax.random.PRNGKey(0)))

    # --- training --------------------------------------------------------------------------

    @abc.abstractmethod
    def logits(self, params: Params, batch: Batch, dropout_rng: Array | None = None) -> Array:
        """Teacher-forced float32 logits [batch, target_len, vocab]; dropout when given a key."""

    @abc.abstractmethod
    def flops_per_example(self, task_feature_lengths: Mapping[str, int]) -> float:
        """Training FLOPs (forward + backward) of one example at these lengths, for MFU."""

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
        weights = loss_weights(batch)
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
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        token_ll = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
        return jnp.sum(token_ll * loss_weights(batch), axis=-1)

    # --- decoding --------------------------------------------------------------------------

    @abc.abstractmethod
    def predict_batch(
        self,
        params: Params,
        batch: Batch,
        settings: DecodeSettings = GREEDY,
        *,
        rng: Array | None = None,
        stop_sequences: Sequence[str] | Sequence[Sequence[str]] | None = None,
        vocabulary: Any | None = None,
    ) -> tuple[Array, Array]:
        """Decode the batch: tokens [batch, num_samples, max_length] and scores.

        ``stop_sequences`` are per-example stops (e.g. a language's) before
        ``settings.stop_sequences``; detecting them needs ``vocabulary``.
        """
