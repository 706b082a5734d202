"""Model wrapper: the family-agnostic interface the trainer, scorer and decoders call.

It takes batches as seqio's ``EncDecFeatureConverter`` produces them (``encoder_input_tokens``,
``decoder_input_tokens``, ``decoder_target_tokens``, ``decoder_loss_weights`` and, when packed,
``*_segment_ids``) so that the trainer never needs to know the architecture.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from t5x_xfer import decoding
from t5x_xfer.models.config import T5Config
from t5x_xfer.models.losses import cross_entropy_with_logits
from t5x_xfer.models.t5 import T5

Array = jax.Array
Params = Any
Batch = Mapping[str, Array]
DECODE_METHODS = ("greedy", "sample", "beam")


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

    # --- decoding ---

    # Tokens decoded between two host checks for stop strings (see decoding.decode_until_stop).
    stop_check_interval = 16

    def predict_batch(
        self,
        params: Params,
        batch: Batch,
        *,
        rng: Array | None = None,
        method: str = "greedy",
        num_decodes: int = 1,
        max_decode_length: int | None = None,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        beam_size: int = 4,
        length_penalty: float = 1.0,
        stop_sequences: Sequence[str] | Sequence[Sequence[str]] | None = None,
        vocabulary: Any | None = None,
    ) -> tuple[Array, Array]:
        """Decode ``batch["encoder_input_tokens"]`` with the KV cache.

        Returns tokens [batch, num_decodes, max_decode_length] int32 (no start token, EOS kept,
        0 after it) and scores [batch, num_decodes]: summed log-probs of the tokens for
        "greedy" and "sample" (untempered model distribution), transformers' length-penalised
        beam score for "beam" (beams best first; ``num_decodes`` <= ``beam_size``). "greedy"
        decodes once and repeats. ``max_decode_length`` defaults to the length of
        ``batch["decoder_input_tokens"]`` (as in T5X). ``rng`` (default PRNGKey(0)) is one key
        or one per example; sample j of example i depends only on that example's key and j.

        ``stop_sequences`` (strings for every example, or one sequence per example) end a
        sample once its text, detokenised with ``vocabulary``, contains one: sampling checks
        every ``stop_check_interval`` tokens on the host and stops when every row has ended;
        beam search runs to its end and is cut afterwards. Tokens are cut after the token that
        completes the stop string, so the caller trims the text (``truncate_completion``). With
        stop sequences this must be called outside ``jax.jit``; without, it is traceable.
        """
        if method not in DECODE_METHODS:
            raise ValueError(f"method={method!r}; allowed: {DECODE_METHODS}")
        if not (isinstance(num_decodes, int) and num_decodes >= 1):
            raise ValueError(f"num_decodes must be an integer >= 1, got {num_decodes!r}")
        if method == "beam" and not 1 <= num_decodes <= beam_size:
            raise ValueError(
                f"beam search returns at most beam_size={beam_size} beams; "
                f"num_decodes={num_decodes} must be in [1, {beam_size}]"
            )
        if method == "sample":
            decoding.check_sampling(temperature, top_k, top_p)
        if max_decode_length is None:
            if "decoder_input_tokens" not in batch:
                raise ValueError(
                    "give max_decode_length or batch['decoder_input_tokens'] (whose length sets it)"
                )
            max_decode_length = int(batch["decoder_input_tokens"].shape[1])
        if max_decode_length < 1:
            raise ValueError(f"max_decode_length must be >= 1, got {max_decode_length}")
        tokens_in = jnp.asarray(batch["encoder_input_tokens"], jnp.int32)
        batch_size = tokens_in.shape[0]
        mask = batch.get("encoder_mask")
        mask = tokens_in != self.config.pad_token_id if mask is None else jnp.asarray(mask, bool)
        stops = _stops_per_example(stop_sequences, batch_size)
        if stops is not None and vocabulary is None:
            raise ValueError("stop_sequences need the vocabulary that detokenises the outputs")
        eos = self.config.eos_token_id

        if method == "beam":
            fn = self._decoder_fn(
                "beam", max_decode_length, beam_size=beam_size, length_penalty=length_penalty
            )
            tokens, scores = fn(params, tokens_in, mask)
            tokens, scores = tokens[:, :num_decodes], scores[:, :num_decodes]
            if stops is not None:
                rows = [s for s in stops for _ in range(num_decodes)]
                flat = np.asarray(tokens).reshape(batch_size * num_decodes, -1)
                cut = decoding.cut_at_stops(flat, rows, vocabulary.decode, eos)
                tokens = jnp.asarray(cut.reshape(tokens.shape))
            return tokens, scores

        rows_per = 1 if method == "greedy" else num_decodes
        sampling = dict(
            temperature=0.0 if method == "greedy" else float(temperature),
            top_k=0 if method == "greedy" else top_k,
            top_p=1.0 if method == "greedy" else float(top_p),
        )
        rng = jax.random.PRNGKey(0) if rng is None else rng
        start = self._decoder_fn("start", max_decode_length, rows_per=rows_per)
        run = self._decoder_fn("run", max_decode_length, **sampling)
        state = start(params, tokens_in, mask, decoding.row_keys_for(rng, batch_size, rows_per))
        if stops is None:
            state = run(params, state, max_decode_length)
            tokens, scores = state.tokens, state.token_scores.sum(-1)
        else:
            tokens, scores = decoding.decode_until_stop(
                lambda s, until: run(params, s, until),
                state,
                stops=[s for s in stops for _ in range(rows_per)],
                detokenize=vocabulary.decode,
                eos_id=eos,
                interval=self.stop_check_interval,
            )
            tokens, scores = jnp.asarray(tokens), jnp.asarray(scores)
        tokens = tokens.reshape(batch_size, rows_per, max_decode_length)
        scores = scores.reshape(batch_size, rows_per)
        if rows_per != num_decodes:
            tokens = jnp.repeat(tokens, num_decodes, axis=1)
            scores = jnp.repeat(scores, num_decodes, axis=1)
        return tokens, scores

    def tokens_to_logits(self, params: Params, max_decode_length: int) -> decoding.TokensToLogits:
        """The cached one-token step the decoders call: (ids [rows], cache) -> logits, cache."""

        def step(ids: Array, cache: Any) -> tuple[Array, Any]:
            logits, variables = self.module.apply(
                {"params": params, "cache": cache},
                ids[:, None],
                max_decode_length,
                method=T5.decode_step,
                mutable=["cache"],
            )
            return logits[:, 0], variables["cache"]

        return step

    def init_cache(
        self, params: Params, encoder_tokens: Array, encoder_mask: Array, max_decode_length: int
    ) -> Any:
        """Encode once and build the decode cache (cross-attention keys/values precomputed)."""
        encoded = self.module.apply(
            {"params": params}, encoder_tokens, encoder_mask, method=T5.encode
        )
        start = jnp.full((encoder_tokens.shape[0], 1), self.config.decoder_start_token_id)
        _, variables = self.module.apply(
            {"params": params},
            start.astype(jnp.int32),
            max_decode_length,
            encoded,
            encoder_mask,
            method=T5.decode_step,
            mutable=["cache"],
        )
        return variables["cache"]

    def _decoder_fn(self, kind: str, max_decode_length: int, **static: Any) -> Callable:
        """Jitted pieces of predict_batch, built once per static configuration."""
        key = (kind, max_decode_length, tuple(sorted(static.items())))
        fns = self.__dict__.setdefault("_decoder_fns", {})
        if key not in fns:
            fns[key] = jax.jit(
                functools.partial(getattr(self, f"_{kind}_impl"), max_decode_length, **static),
                donate_argnums=(1,) if kind == "run" else (),  # the state: cache updated in place
            )
        return fns[key]

    def _start_impl(
        self,
        max_decode_length: int,
        params: Params,
        tokens: Array,
        mask: Array,
        keys: Array,
        *,
        rows_per: int,
    ) -> decoding.SampleState:
        cache = self.init_cache(params, tokens, mask, max_decode_length)
        return decoding.sample_init(
            decoding.repeat_rows(cache, rows_per),
            keys,
            max_decode_length=max_decode_length,
            start_token=self.config.decoder_start_token_id,
        )

    def _run_impl(
        self,
        max_decode_length: int,
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
            self.tokens_to_logits(params, max_decode_length),
            until=until,
            eos_id=self.config.eos_token_id,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
        )

    def _beam_impl(
        self,
        max_decode_length: int,
        params: Params,
        tokens: Array,
        mask: Array,
        *,
        beam_size: int,
        length_penalty: float,
    ) -> tuple[Array, Array]:
        return decoding.beam_search(
            self.tokens_to_logits(params, max_decode_length),
            self.init_cache(params, tokens, mask, max_decode_length),
            batch_size=tokens.shape[0],
            beam_size=beam_size,
            max_decode_length=max_decode_length,
            eos_id=self.config.eos_token_id,
            length_penalty=length_penalty,
            start_token=self.config.decoder_start_token_id,
        )


def _stops_per_example(
    stop_sequences: Sequence[str] | Sequence[Sequence[str]] | None, batch_size: int
) -> list[tuple[str, ...]] | None:
    """One tuple of stop strings per example, or None when there are none at all."""
    if not stop_sequences:
        return None
    if all(isinstance(s, str) for s in stop_sequences):
        per = [tuple(stop_sequences)] * batch_size
    else:
        per = [(s,) if isinstance(s, str) else tuple(s) for s in stop_sequences]
        if len(per) != batch_size:
            raise ValueError(
                f"stop_sequences has {len(per)} entries for {batch_size} examples; give one "
                "sequence of strings per example or one sequence of strings for all"
            )
    if any(not s for group in per for s in group):
        raise ValueError("stop_sequences must not contain the empty string")
    return per if any(per) else None
