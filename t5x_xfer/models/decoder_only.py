"""The decoder-only Llama family (Llama, Qwen2, Qwen3) behind the model seam.

Text-to-text tasks become prefix-LM examples: the inputs (without their EOS) and the targets
(with theirs) concatenated, the loss on the targets only, every sequence starting with the
family's start token (BOS, or EOS for tokenizers without a BOS, such as Qwen's): seqio's
``PrefixLMFeatureConverter`` with that start token, packed. Prompts are decoded as plain
continuations of ``[start] + prompt``, left-padded so that a batch of prompts of different
lengths decodes in step: the prompt but its last token fills the KV cache in one pass
(prefill), then the decoders of ``t5x_xfer.decoding`` feed the last prompt token and go on.
"""

from __future__ import annotations

import functools
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
from t5x_xfer.models.decoder import DecoderLM, empty_cache
from t5x_xfer.models.decoder_config import DecoderConfig


@functools.cache
def _feature_converter_cls() -> type:
    """seqio's prefix-LM converter, dropping the inputs' EOS (imported late: seqio loads TF)."""
    import seqio
    import tensorflow as tf

    class DecoderOnlyFeatureConverter(seqio.PrefixLMFeatureConverter):
        """Inputs without their trailing EOS, then the targets: prompts are continued, not
        ended, as HumanEval-X prompts are at inference."""

        def __init__(self, eos_id: int, **kwargs: Any) -> None:
            self._eos_id = eos_id
            super().__init__(**kwargs)

        def _convert_features(self, ds: Any, task_feature_lengths: Mapping[str, int]) -> Any:
            eos = self._eos_id

            def strip(ex: Mapping[str, Any]) -> dict[str, Any]:
                inputs = ex["inputs"]
                ends = tf.logical_and(tf.size(inputs) > 0, inputs[-1] == eos)
                return {**ex, "inputs": tf.cond(ends, lambda: inputs[:-1], lambda: inputs)}

            return super()._convert_features(ds.map(strip), task_feature_lengths)

    return DecoderOnlyFeatureConverter


def _causal_mask(positions_q: Array, positions_k: Array) -> Array:
    return positions_q[:, :, None] >= positions_k[:, None, :]


class DecoderOnlyModel(BaseModel):
    """A Llama-family decoder-only LM: loss, score, FLOPs, initialisation and decoding."""

    family = "llama"
    config_cls = DecoderConfig

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__(config)
        self.module = DecoderLM(config)
        self.dropout_module = DecoderLM(config, deterministic=False)
        self.decode_module = DecoderLM(config.replace(scan_layers=False, remat_policy="none"))

    @classmethod
    def hf_mapping(cls) -> ModuleType:
        from t5x_xfer.models import llama_hf

        return llama_hf

    @property
    def pad_id(self) -> int:
        return 0  # seqio pads with 0 whatever the tokenizer calls padding

    @property
    def uses_dropout(self) -> bool:
        return self.config.attention_dropout > 0

    @property
    def start_id(self) -> int:
        return self.config.start_token_id

    # --- data ---

    def feature_converter(self, pack: bool = True) -> Any:
        # Lengths are checked once, statically (tasks.batches.get_dataset), not per example.
        return _feature_converter_cls()(
            eos_id=self.eos_id, pack=pack, bos_id=self.start_id, apply_length_check=False
        )

    def encode_prompt(self, ids: Sequence[int], add_eos: bool) -> list[int]:
        """``[start] + ids``: a prompt is continued, so it gets no EOS."""
        return [self.start_id, *ids]

    def prompt_batch(self, prompts: Sequence[Sequence[int]], length: int) -> dict[str, np.ndarray]:
        """Left-padded ``decoder_input_tokens`` and their ``decoder_prompt_mask``."""
        tokens = np.zeros((len(prompts), length), np.int32)
        mask = np.zeros((len(prompts), length), bool)
        for i, ids in enumerate(prompts):
            if len(ids):
                tokens[i, length - len(ids) :] = ids
                mask[i, length - len(ids) :] = True
        return {"decoder_input_tokens": tokens, "decoder_prompt_mask": mask}

    # --- parameters ---

    def _dummy(self) -> tuple[Array, Array, Array]:
        tokens = jnp.ones((1, 8), jnp.int32)
        positions = jnp.arange(8)[None]
        return tokens, positions, _causal_mask(positions, positions)

    def init_params(self, rng: Array) -> Params:
        return nn.unbox(self.module.init(rng, *self._dummy())["params"])

    def logical_axes(self) -> Params:
        boxed = jax.eval_shape(lambda: self.module.init(jax.random.PRNGKey(0), *self._dummy()))
        return nn.get_partition_spec(boxed)["params"]

    def unstack_layers(self, params: Params) -> Params:
        """Parameters in the unscanned layout (``layers_i``), whatever the config's."""
        if not self.config.scan_layers:
            return params
        stacked = params["layers"]["layer"]
        layers = {
            f"layers_{i}": jax.tree.map(lambda x, i=i: x[i], stacked)
            for i in range(self.config.num_hidden_layers)
        }
        return {**{k: v for k, v in params.items() if k != "layers"}, **layers}

    def stack_layers(self, params: Params) -> Params:
        """The inverse of :meth:`unstack_layers` for a scanned config."""
        if not self.config.scan_layers:
            return params
        n = self.config.num_hidden_layers
        names = [f"layers_{i}" for i in range(n)]
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[params[k] for k in names])
        rest = {k: v for k, v in params.items() if k not in names}
        return {**rest, "layers": {"layer": stacked}}

    # --- training ---

    def logits(self, params: Params, batch: Batch, dropout_rng: Array | None = None) -> Array:
        """Teacher-forced logits. Positions and the mask come from seqio's packing features
        (``decoder_positions``, ``decoder_segment_ids``), else from ``decoder_mask`` (1 on
        real tokens, for left- or right-padded batches), else causal over the whole row."""
        tokens = jnp.asarray(batch["decoder_input_tokens"], jnp.int32)
        b, length = tokens.shape
        segments = batch.get("decoder_segment_ids")
        if segments is not None:
            positions = jnp.asarray(batch["decoder_positions"], jnp.int32)
            slots = jnp.broadcast_to(jnp.arange(length), (b, length))
            same = segments[:, :, None] == segments[:, None, :]
            mask = _causal_mask(slots, slots) & same & (segments[:, None, :] > 0)
        else:
            real = batch.get("decoder_mask")
            slots = jnp.broadcast_to(jnp.arange(length), (b, length))
            mask = _causal_mask(slots, slots)
            if real is None:
                positions = slots
            else:
                real = jnp.asarray(real, bool)
                positions = jnp.maximum(jnp.cumsum(real, axis=-1) - 1, 0)
                mask = mask & real[:, None, :]
        module = self.module if dropout_rng is None else self.dropout_module
        rngs = None if dropout_rng is None else {"dropout": dropout_rng}
        return module.apply({"params": params}, tokens, positions, mask, rngs=rngs)

    def flops_per_example(self, task_feature_lengths: Mapping[str, int]) -> float:
        """3x the forward matmul FLOPs (2 per multiply-add) of one sequence of inputs +
        targets tokens: projections, attention scores and values, SwiGLU, the logits."""
        c = self.config
        length = sum(task_feature_lengths.values())
        d, hd, f = c.hidden_size, c.head_dim, c.intermediate_size
        q_o = 2 * 2 * d * c.num_attention_heads * hd
        k_v = 2 * 2 * d * c.num_key_value_heads * hd
        attention = 2 * 2 * length * c.num_attention_heads * hd
        per_token = c.num_hidden_layers * (q_o + k_v + attention + 3 * 2 * d * f)
        return 3.0 * length * (per_token + 2 * d * c.vocab_size)

    # --- decoding ---

    def _prompt(self, batch: Batch) -> tuple[Array, Array]:
        """Left-padded prompt tokens and mask: from prompt_batch, or from seqio's prefix-LM
        features (the inputs part, ``decoder_causal_attention``) moved to the right."""
        tokens = jnp.asarray(batch["decoder_input_tokens"], jnp.int32)
        if "decoder_prompt_mask" in batch:
            return tokens, jnp.asarray(batch["decoder_prompt_mask"], bool)
        if "decoder_causal_attention" not in batch:
            raise ValueError(
                "a decoder-only batch to decode needs decoder_prompt_mask (prompt_batch) or "
                "decoder_causal_attention (seqio's prefix-LM features)"
            )
        n = jnp.sum(jnp.asarray(batch["decoder_causal_attention"], jnp.int32), axis=-1)
        width = tokens.shape[1]
        src = jnp.arange(width)[None, :] - (width - n)[:, None]
        mask = src >= 0
        moved = jnp.take_along_axis(tokens, jnp.clip(src, 0, width - 1), axis=1)
        return jnp.where(mask, moved, 0), mask

    def decode_inputs(self, batch: Batch, settings: DecodeSettings) -> tuple[Array, Array, int]:
        if settings.max_length is None:
            raise ValueError("decoder-only decoding needs DecodeSettings.max_length")
        tokens, mask = self._prompt(batch)
        return tokens, mask, settings.max_length

    def init_decode(
        self, params: Params, tokens: Array, mask: Array, max_length: int
    ) -> tuple[dict[str, Any], Array]:
        return self.prefill(params, tokens, mask, max_length)

    def prefill(
        self, params: Params, tokens: Array, mask: Array, max_length: int
    ) -> tuple[dict[str, Any], Array]:
        """The cache after all prompt tokens but the last (slots 0..P-2), and the last ones
        [batch], which the decoders feed first. Params in the model's own layout."""
        params = self.unstack_layers(params)
        b, width = tokens.shape
        pad = width - jnp.sum(mask, axis=-1).astype(jnp.int32)
        total = width - 1 + max_length
        layers = empty_cache(self.config, b, total)
        if width > 1:
            slots = jnp.arange(width - 1)
            positions = slots[None, :] - pad[:, None]
            keys = jnp.arange(total)
            attend = (keys[None, None, :] <= slots[None, :, None]) & (
                keys[None, None, :] >= pad[:, None, None]
            )
            _, layers = self.decode_module.apply(
                {"params": params},
                tokens[:, :-1],
                positions,
                attend,
                layers,
                jnp.asarray(0, jnp.int32),
                method=DecoderLM.decode,
            )
        cache = {"layers": layers, "pad": pad, "index": jnp.asarray(width - 1, jnp.int32)}
        return cache, tokens[:, -1]

    def tokens_to_logits(self, params: Params, max_length: int) -> decoding.TokensToLogits:
        """The cached one-token step: (ids [rows], cache) -> (logits [rows, vocab], cache);
        the cache's own size bounds the positions (``max_length`` is the base signature's)."""
        params = self.unstack_layers(params)

        def step(ids: Array, cache: dict[str, Any]) -> tuple[Array, dict[str, Any]]:
            index, pad = cache["index"], cache["pad"]
            total = cache["layers"][0]["key"].shape[-1]
            keys = jnp.arange(total)
            attend = ((keys[None, :] <= index) & (keys[None, :] >= pad[:, None]))[:, None, :]
            logits, layers = self.decode_module.apply(
                {"params": params},
                ids[:, None],
                (index - pad)[:, None],
                attend,
                cache["layers"],
                index,
                method=DecoderLM.decode,
            )
            return logits[:, 0], {"layers": layers, "pad": pad, "index": index + 1}

        return step
