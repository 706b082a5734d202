"""The T5 family (T5, T5 v1.1, mT5, CodeT5+ encoder-decoders) behind the model seam.

Batches are seqio ``EncDecFeatureConverter`` output: ``encoder_input_tokens``,
``decoder_input_tokens``, ``decoder_target_tokens``, ``decoder_loss_weights`` and, when packed,
``*_segment_ids``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from t5x_xfer import decoding
from t5x_xfer.decoding import GREEDY, DecodeSettings
from t5x_xfer.models.base import Array, BaseModel, Batch, Params
from t5x_xfer.models.config import T5Config
from t5x_xfer.models.t5 import T5


class EncoderDecoderModel(BaseModel):
    """A T5-family encoder-decoder: loss, score, FLOPs, initialisation and decoding."""

    family = "t5"
    config_cls = T5Config

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.module = T5(config)

    @classmethod
    def hf_mapping(cls) -> ModuleType:
        from t5x_xfer.models import t5_hf

        return t5_hf

    def feature_converter(self, pack: bool = True) -> Any:
        import seqio

        return seqio.EncDecFeatureConverter(pack=pack)

    def prompt_batch(self, prompts: Sequence[Sequence[int]], length: int) -> dict[str, np.ndarray]:
        """Right-padded ``encoder_input_tokens``."""
        tokens = np.zeros((len(prompts), length), np.int32)
        for i, ids in enumerate(prompts):
            tokens[i, : len(ids)] = ids
        return {"encoder_input_tokens": tokens}

    def _dummy_inputs(self, batch_size: int = 1, length: int = 8) -> dict[str, Array]:
        ids = jnp.ones((batch_size, length), jnp.int32)
        return {"encoder_input_tokens": ids, "decoder_input_tokens": ids}

    def init_params(self, rng: Array) -> Params:
        variables = self.module.init(rng, **self._dummy_inputs())
        return nn.unbox(variables["params"])

    def logical_axes(self) -> Params:
        boxed = jax.eval_shape(
            lambda: self.module.init(jax.random.PRNGKey(0), **self._dummy_inputs())
        )
        return nn.get_partition_spec(boxed)["params"]

    def logits(self, params: Params, batch: Batch, dropout_rng: Array | None = None) -> Array:
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

    def flops_per_example(self, task_feature_lengths: Mapping[str, int]) -> float:
        """3x the forward matmul FLOPs (2 per multiply-add) of one (inputs, targets) pair:
        projections, attention scores and values, MLPs and the logits layer, at the full
        (unpacked) lengths the step computes."""
        c = self.config
        inputs_len, targets_len = task_feature_lengths["inputs"], task_feature_lengths["targets"]
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

    # --- decoding ---

    # Tokens decoded between two host checks for stop strings (see decoding.decode_until_stop).
    stop_check_interval = 16

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
        """Decode ``batch["encoder_input_tokens"]`` with the KV cache.

        Returns tokens [batch, num_samples, max_length] int32 (no start token, EOS kept, 0
        after it) and scores [batch, num_samples]: summed log-probs of the tokens for "greedy"
        and "sample" (untempered model distribution), transformers' length-penalised beam
        score for "beam" (beams best first). "greedy" decodes once and repeats.
        ``settings.max_length`` None means the length of ``batch["decoder_input_tokens"]`` (as
        in T5X). ``rng`` (default ``PRNGKey(settings.seed)``) is one key or one per example;
        sample j of example i depends only on that example's key and j.

        Stop strings (``stop_sequences`` per example, then ``settings.stop_sequences``) end a
        sample once its text, detokenised with ``vocabulary``, contains one: sampling checks
        every ``stop_check_interval`` tokens on the host and stops when every row has ended;
        beam search runs to its end and is cut afterwards. Tokens are cut after the token that
        completes the stop string, so the caller trims the text (``truncate_completion``). With
        stop strings this must be called outside ``jax.jit``; without, it is traceable.
        """
        max_length = settings.max_length
        if max_length is None:
            if "decoder_input_tokens" not in batch:
                raise ValueError(
                    "give DecodeSettings.max_length or batch['decoder_input_tokens'] (whose "
                    "length sets it)"
                )
            max_length = int(batch["decoder_input_tokens"].shape[1])
        tokens_in = jnp.asarray(batch["encoder_input_tokens"], jnp.int32)
        batch_size = tokens_in.shape[0]
        mask = batch.get("encoder_mask")
        mask = tokens_in != self.config.pad_token_id if mask is None else jnp.asarray(mask, bool)
        stops = decoding.stops_per_example(stop_sequences, batch_size, settings.stop_sequences)
        if stops is not None and vocabulary is None:
            raise ValueError("stop sequences need the vocabulary that detokenises the outputs")
        if settings.method == "beam":
            return self._predict_beam(
                params, tokens_in, mask, settings, max_length, stops, vocabulary
            )
        return self._predict_sample(
            params, tokens_in, mask, settings, max_length, stops, vocabulary, rng
        )

    def _predict_beam(
        self,
        params: Params,
        tokens_in: Array,
        mask: Array,
        settings: DecodeSettings,
        max_length: int,
        stops: list[tuple[str, ...]] | None,
        vocabulary: Any,
    ) -> tuple[Array, Array]:
        n, batch_size = settings.num_samples, tokens_in.shape[0]
        fn = self._decoder_fn(
            "beam",
            max_length,
            beam_size=settings.beam_size,
            length_penalty=settings.length_penalty,
        )
        tokens, scores = fn(params, tokens_in, mask)
        tokens, scores = tokens[:, :n], scores[:, :n]
        if stops is not None:
            rows = [s for s in stops for _ in range(n)]
            flat = np.asarray(tokens).reshape(batch_size * n, -1)
            cut = decoding.cut_at_stops(flat, rows, vocabulary.decode, self.config.eos_token_id)
            tokens = jnp.asarray(cut.reshape(tokens.shape))
        return tokens, scores

    def _predict_sample(
        self,
        params: Params,
        tokens_in: Array,
        mask: Array,
        settings: DecodeSettings,
        max_length: int,
        stops: list[tuple[str, ...]] | None,
        vocabulary: Any,
        rng: Array | None,
    ) -> tuple[Array, Array]:
        """Greedy or sampled rows, decoded in one loop or in chunks between stop checks."""
        greedy = settings.method == "greedy"
        batch_size, rows_per = tokens_in.shape[0], settings.rows_per_example
        sampling = dict(
            temperature=0.0 if greedy else float(settings.temperature),
            top_k=0 if greedy else settings.top_k,
            top_p=1.0 if greedy else float(settings.top_p),
        )
        rng = jax.random.PRNGKey(settings.seed) if rng is None else rng
        start = self._decoder_fn("start", max_length, rows_per=rows_per)
        run = self._decoder_fn("run", max_length, **sampling)
        state = start(params, tokens_in, mask, decoding.row_keys_for(rng, batch_size, rows_per))
        if stops is None:
            state = run(params, state, max_length)
            tokens, scores = state.tokens, state.token_scores.sum(-1)
        else:
            tokens, scores = decoding.decode_until_stop(
                lambda s, until: run(params, s, until),
                state,
                stops=[s for s in stops for _ in range(rows_per)],
                detokenize=vocabulary.decode,
                eos_id=self.config.eos_token_id,
                interval=self.stop_check_interval,
            )
            tokens, scores = jnp.asarray(tokens), jnp.asarray(scores)
        tokens = tokens.reshape(batch_size, rows_per, max_length)
        scores = scores.reshape(batch_size, rows_per)
        if rows_per != settings.num_samples:
            tokens = jnp.repeat(tokens, settings.num_samples, axis=1)
            scores = jnp.repeat(scores, settings.num_samples, axis=1)
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
