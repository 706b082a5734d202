"""Beam search as transformers' ``generate(num_beams=...)`` does it, over a KV cache."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from t5x_xfer.decoding.sampling import Array, Cache, TokensToLogits, gather_rows, repeat_rows

# transformers' "minus infinity" for beam bookkeeping; kept equal so ties break the same way.
BEAM_NEG = -1.0e9
EARLY_STOPPING = (False, True, "never")


class BeamState(NamedTuple):
    """Loop state of beam search; the cache has batch * beam_size rows."""

    step: Array  # int32 []
    running_tokens: Array  # int32 [batch, beams, max_decode_length]
    running_scores: Array  # float32 [batch, beams]: summed log-probs, best first
    finished_tokens: Array  # int32 [batch, beams, max_decode_length]
    finished_scores: Array  # float32 [batch, beams]: length-penalised, best first
    finished: Array  # bool [batch, beams]: the slot holds a finished hypothesis
    improvable: Array  # bool [batch]: a running beam may still beat the finished ones
    cache: Cache


def beam_search(
    tokens_to_logits: TokensToLogits,
    cache: Cache,
    *,
    batch_size: int,
    beam_size: int,
    max_decode_length: int,
    eos_id: int,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    start_token: int | Array = 0,
) -> tuple[Array, Array]:
    """Beam search as transformers' ``generate(num_beams=...)`` does it (v4.50+ algorithm).

    Returns every beam, best first: tokens [batch, beam_size, max_decode_length] and scores
    [batch, beam_size] = summed log-prob / generated_length ** ``length_penalty`` (EOS counts
    in the length). Each step keeps the 2 * beam_size best continuations of all beams; those
    ending in EOS (or reaching ``max_decode_length``) among the first beam_size become finished
    hypotheses, the best beam_size unfinished ones run on. ``early_stopping``: False (the
    transformers default) stops an example when its best running beam, normalised by the
    current length, cannot beat the worst of beam_size finished ones; True stops once
    beam_size hypotheses are finished; "never" assumes the longest length when the penalty is
    positive. ``cache`` has ``batch_size`` rows; it is repeated per beam here.

    >>> probs = [[.1, .1, .5, .3], [.25] * 4, [.1, .8, .05, .05], [.1, .1, .1, .7]]
    >>> bigram = lambda ids, cache: (jnp.log(jnp.array(probs))[ids], cache)
    >>> tokens, scores = beam_search(
    ...     bigram, {}, batch_size=1, beam_size=2, max_decode_length=4, eos_id=1)
    >>> tokens[0].tolist()  # log(.5 * .8) / 2 beats log(.3 * .7 ** 3) / 4
    [[2, 1, 0, 0], [3, 3, 3, 3]]
    """
    if early_stopping not in EARLY_STOPPING:
        raise ValueError(f"early_stopping={early_stopping!r}; allowed: {EARLY_STOPPING}")
    if beam_size < 1 or max_decode_length < 1:
        raise ValueError(
            f"beam_size ({beam_size}) and max_decode_length ({max_decode_length}) must be >= 1"
        )
    k, length = beam_size, max_decode_length
    zeros = jnp.zeros((batch_size, k, length), jnp.int32)
    state = BeamState(
        step=jnp.zeros((), jnp.int32),
        running_tokens=zeros,
        # Only beam 0 is live at first, so the first step does not pick one token k times.
        running_scores=jnp.full((batch_size, k), BEAM_NEG).at[:, 0].set(0.0),
        finished_tokens=zeros,
        finished_scores=jnp.full((batch_size, k), BEAM_NEG),
        finished=jnp.zeros((batch_size, k), bool),
        improvable=jnp.ones((batch_size,), bool),
        cache=repeat_rows(cache, k),
    )
    start = jnp.asarray(start_token, jnp.int32)
    start = start[:, None] if start.ndim == 1 else start  # one per example: [batch, 1]
    step = functools.partial(
        _beam_step,
        tokens_to_logits,
        batch_size=batch_size,
        beam_size=k,
        length=length,
        eos_id=eos_id,
        length_penalty=length_penalty,
        early_stopping=early_stopping,
        start_token=start,
    )

    def cond(s: BeamState) -> Array:
        go = (s.step < length) & jnp.any(s.improvable)
        if early_stopping is True:
            go &= ~jnp.all(s.finished)
        return go

    final = jax.lax.while_loop(cond, step, state)
    return final.finished_tokens, final.finished_scores


def _take(x: Array, idx: Array) -> Array:
    """Per example, along the beam axis."""
    return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)


def _beam_step(
    tokens_to_logits: TokensToLogits,
    s: BeamState,
    *,
    batch_size: int,
    beam_size: int,
    length: int,
    eos_id: int,
    length_penalty: float,
    early_stopping: bool | str,
    start_token: Array,
) -> BeamState:
    """One step: extend every running beam, keep the best running ones, update the pool of
    finished hypotheses and whether an example can still improve (see beam_search)."""
    k, t, take = beam_size, s.step, _take
    n_cand = 2 * k  # transformers: max(2, 1 + number of EOS ids) * num_beams
    lp = jnp.float32(length_penalty)
    prev = jax.lax.dynamic_index_in_dim(s.running_tokens, jnp.maximum(t - 1, 0), 2, False)
    last = jnp.where(t == 0, start_token, prev).reshape(-1)
    logits, cache = tokens_to_logits(last, s.cache)
    vocab = logits.shape[-1]
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(batch_size, k, vocab)
    flat = (log_probs + s.running_scores[:, :, None]).reshape(batch_size, k * vocab)
    cand_scores, cand_idx = jax.lax.top_k(flat, n_cand)
    cand_beam, cand_token = cand_idx // vocab, (cand_idx % vocab).astype(jnp.int32)
    cand_tokens = take(s.running_tokens, cand_beam).at[:, :, t].set(cand_token)
    hits = (cand_token == eos_id) | (t + 1 >= length)

    # The best k candidates that have not ended run on; the cache follows their beams.
    run_scores = cand_scores + hits.astype(jnp.float32) * BEAM_NEG
    run_scores, keep = jax.lax.top_k(run_scores, k)
    origin = take(cand_beam, keep)
    rows = (jnp.arange(batch_size)[:, None] * k + origin).reshape(-1)

    # Candidates among the first k that ended join the finished pool if good enough.
    just = hits & (jnp.arange(n_cand) < k)[None, :]
    fin = cand_scores / (t + 1).astype(jnp.float32) ** lp
    if early_stopping is True:
        full = jnp.all(s.finished, axis=-1, keepdims=True)
        fin = fin + full.astype(jnp.float32) * BEAM_NEG
    fin = fin + (~s.improvable)[:, None].astype(jnp.float32) * BEAM_NEG
    fin = fin + (~just).astype(jnp.float32) * BEAM_NEG
    merged_scores = jnp.concatenate([s.finished_scores, fin], axis=1)
    merged_scores, best = jax.lax.top_k(merged_scores, k)
    merged_tokens = take(jnp.concatenate([s.finished_tokens, cand_tokens], axis=1), best)
    merged_flags = take(jnp.concatenate([s.finished, just], axis=1), best)

    hypothetical = (
        jnp.float32(length)
        if early_stopping == "never" and length_penalty > 0.0
        else (t + 1).astype(jnp.float32)
    )
    best_running = run_scores[:, :1] / hypothetical**lp
    worst_finished = jnp.where(
        merged_flags, jnp.min(merged_scores, axis=1, keepdims=True), BEAM_NEG
    )
    improvable = s.improvable & jnp.any(best_running > worst_finished, axis=-1)
    return BeamState(
        step=t + 1,
        running_tokens=take(cand_tokens, keep),
        running_scores=run_scores,
        finished_tokens=merged_tokens,
        finished_scores=merged_scores,
        finished=merged_flags,
        improvable=improvable,
        cache=gather_rows(cache, rows),
    )
