"""The T5 family (T5, T5 v1.1, mT5, CodeT5+ encoder-decoders) behind the model seam.

Batches are seqio ``EncDecFeatureConverter`` output: ``encoder_input_tokens``,
``decoder_input_tokens``, ``decoder_target_tokens``, ``decoder_loss_weights`` and, when packed,
``*_segment_ids``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from t5x_xfer import decoding
from t5x_xfer.decoding import DecodeSettings
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

        # Lengths are checked once, statically (tasks.batches.get_dataset), not per example.
        return seqio.EncDecFeatureConverter(pack=pack, apply_length_check=False)

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

    def decode_inputs(self, batch: Batch, settings: DecodeSettings) -> tuple[Array, Array, int]:
        """The encoder's tokens and mask; ``settings.max_length`` None means the length of
        ``batch["decoder_input_tokens"]`` (as in T5X)."""
        max_length = settings.max_length
        if max_length is None:
            if "decoder_input_tokens" not in batch:
                raise ValueError(
                    "give DecodeSettings.max_length or batch['decoder_input_tokens'] (whose "
                    "length sets it)"
                )
            max_length = int(batch["decoder_input_tokens"].shape[1])
        tokens = jnp.asarray(batch["encoder_input_tokens"], jnp.int32)
        mask = batch.get("encoder_mask")
        mask = tokens != self.config.pad_token_id if mask is None else jnp.asarray(mask, bool)
        return tokens, mask, max_length

    def init_decode(
        self, params: Params, tokens: Array, mask: Array, max_length: int
    ) -> tuple[Any, int]:
        return self.init_cache(params, tokens, mask, max_length), self.config.decoder_start_token_id

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
