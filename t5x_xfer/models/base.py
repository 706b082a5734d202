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
- decoding: how a batch becomes decoder inputs, how the KV cache starts and how one token
  steps; ``predict_batch`` (greedy, sampling, beam search, stop strings, with
  :class:`t5x_xfer.decoding.DecodeSettings`) is shared;
- its Hugging Face mapping (``hf_mapping()``: the family's ``models/<family>_hf.py``, which
  ``t5x_xfer.hf`` reads for import and export).

Batches are what the family's feature converter produces; the targets are always
``decoder_target_tokens`` with ``decoder_loss_weights`` (as in seqio's converters).
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from t5x_xfer import decoding
from t5x_xfer.decoding import GREEDY, DecodeSettings
from t5x_xfer.models import ops
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
        correct = jnp.sum((ops.argmax(logits) == targets) * weights)
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

    # --- decoding ---
    # predict_batch is shared: a family says how a batch becomes decoder inputs
    # (decode_inputs), how the cache starts (init_decode) and how one token steps
    # (tokens_to_logits); greedy, sampling, beam search and stop strings are the same for all.

    # Tokens decoded between two host checks for stop strings (see decoding.decode_until_stop).
    stop_check_interval = 16

    @abc.abstractmethod
    def decode_inputs(self, batch: Batch, settings: DecodeSettings) -> tuple[Array, Array, int]:
        """(tokens [batch, n], their mask, max_length) that :meth:`init_decode` starts from."""

    @abc.abstractmethod
    def init_decode(
        self, params: Params, tokens: Array, mask: Array, max_length: int
    ) -> tuple[Any, Array | int]:
        """(the KV cache with a row per example, the first token fed: one id or one per row)."""

    @abc.abstractmethod
    def tokens_to_logits(self, params: Params, max_length: int) -> decoding.TokensToLogits:
        """The cached one-token step: (ids [rows], cache) -> (logits [rows, vocab], cache)."""

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
        """Decode the batch with the KV cache.

        Returns tokens [batch, num_samples, max_length] int32 (no start token, EOS kept, 0
        after it) and scores [batch, num_samples]: summed log-probs of the tokens for "greedy"
        and "sample" (untempered model distribution), transformers' length-penalised beam
        score for "beam" (beams best first). "greedy" decodes once and repeats. ``rng``
        (default ``PRNGKey(settings.seed)``) is one key or one per example; sample j of
        example i depends only on that example's key and j.

        Stop strings (``stop_sequences`` per example, then ``settings.stop_sequences``) end a
        sample once its text, detokenised with ``vocabulary``, contains one: sampling checks
        every ``stop_check_interval`` tokens on the host and stops when every row has ended;
        beam search runs to its end and is cut afterwards. Tokens are cut after the token that
        completes the stop string, so the caller trims the text (``truncate_completion``). With
        stop strings this must be called outside ``jax.jit``; without, it is traceable.
        """
        tokens, mask, max_length = self.decode_inputs(batch, settings)
        batch_size = tokens.shape[0]
        stops = decoding.stops_per_example(stop_sequences, batch_size, settings.stop_sequences)
        if stops is not None and vocabulary is None:
            raise ValueError("stop sequences need the vocabulary that detokenises the outputs")
        if settings.method == "beam":
            return self._predict_beam(params, tokens, mask, settings, max_length, stops, vocabulary)
        return self._predict_sample(
            params, tokens, mask, settings, max_length, stops, vocabulary, rng
        )

    def _predict_beam(
        self,
        params: Params,
        tokens: Array,
        mask: Array,
        settings: DecodeSettings,
        max_length: int,
        stops: list[tuple[str, ...]] | None,
        vocabulary: Any,
    ) -> tuple[Array, Array]:
        n, batch_size = settings.num_samples, tokens.shape[0]
        fn = self._decoder_fn(
            "beam", max_length, beam_size=settings.beam_size, length_penalty=settings.length_penalty
        )
        out, scores = fn(params, tokens, mask)
        out, scores = out[:, :n], scores[:, :n]
        if stops is not None:
            rows = [s for s in stops for _ in range(n)]
            flat = np.asarray(out).reshape(batch_size * n, -1)
            cut = decoding.cut_at_stops(flat, rows, vocabulary.decode, self.eos_id)
            out = jnp.asarray(cut.reshape(out.shape))
        return out, scores

    def _predict_sample(
        self,
        params: Params,
        tokens: Array,
        mask: Array,
        settings: DecodeSettings,
        max_length: int,
        stops: list[tuple[str, ...]] | None,
        vocabulary: Any,
        rng: Array | None,
    ) -> tuple[Array, Array]:
        """Greedy or sampled rows, decoded in one loop or in chunks between stop checks."""
        greedy = settings.method == "greedy"
        batch_size, rows_per = tokens.shape[0], settings.rows_per_example
        sampling = dict(
            temperature=0.0 if greedy else float(settings.temperature),
            top_k=0 if greedy else settings.top_k,
            top_p=1.0 if greedy else float(settings.top_p),
        )
        rng = jax.random.PRNGKey(settings.seed) if rng is None else rng
        start = self._decoder_fn("start", max_length, rows_per=rows_per)
        run = self._decoder_fn("run", max_length, **sampling)
        state = start(params, tokens, mask, decoding.row_keys_for(rng, batch_size, rows_per))
        if stops is None:
            state = run(params, state, max_length)
            out, scores = state.tokens, state.token_scores.sum(-1)
        else:
            out, scores = decoding.decode_until_stop(
                lambda s, until: run(params, s, until),
                state,
                stops=[s for s in stops for _ in range(rows_per)],
                detokenize=vocabulary.decode,
                eos_id=self.eos_id,
                interval=self.stop_check_interval,
            )
            out, scores = jnp.asarray(out), jnp.asarray(scores)
        out = out.reshape(batch_size, rows_per, max_length)
        scores = scores.reshape(batch_size, rows_per)
        if rows_per != settings.num_samples:
            out = jnp.repeat(out, settings.num_samples, axis=1)
            scores = jnp.repeat(scores, settings.num_samples, axis=1)
        return out, scores

    def _decoder_fn(self, kind: str, max_length: int, **static: Any) -> Callable:
        """Jitted pieces of predict_batch, built once per static configuration."""
        key = (kind, max_length, tuple(sorted(static.items())))
        fns = self.__dict__.setdefault("_decoder_fns", {})
        if key not in fns:
            fns[key] = jax.jit(
                functools.partial(getattr(self, f"_{kind}_impl"), max_length, **static),
                donate_argnums=(1,) if kind == "run" else (),  # the state: cache updated in place
            )
        return fns[key]

    def _start_impl(
        self,
        max_length: int,
        params: Params,
        tokens: Array,
        mask: Array,
        keys: Array,
        *,
        rows_per: int,
    ) -> decoding.SampleState:
        cache, start = self.init_decode(params, tokens, mask, max_length)
        if jnp.ndim(start):
            start = jnp.repeat(start, rows_per)
        return decoding.sample_init(
            decoding.repeat_rows(cache, rows_per),
            keys,
            max_decode_length=max_length,
            start_token=start,
        )

    def _run_impl(
        self,
        max_length: int,
        params: Params,
        state: decoding.SampleState,
        until: Array,
        *,
        temperature: float,
        top_k: int,
        top_p: float,
    ) -> decoding.SampleState:
        return decoding.sample_steps(
            state,
            self.tokens_to_logits(params, max_length),
            until=until,
            eos_id=self.eos_id,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
        )

    def _beam_impl(
        self,
        max_length: int,
        params: Params,
        tokens: Array,
        mask: Array,
        *,
        beam_size: int,
        length_penalty: float,
    ) -> tuple[Array, Array]:
        cache, start = self.init_decode(params, tokens, mask, max_length)
        return decoding.beam_search(
            self.tokens_to_logits(params, max_length),
            cache,
            batch_size=tokens.shape[0],
            beam_size=beam_size,
            max_decode_length=max_length,
            eos_id=self.eos_id,
            length_penalty=length_penalty,
            start_token=start,
        )
