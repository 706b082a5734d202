"""Decoding as pure functions over ``tokens_to_logits``: greedy, sampling and beam search.

A model is seen only through ``tokens_to_logits(token_ids, cache) -> (logits, new_cache)``:
``token_ids`` [rows] int32 are the tokens at the current position, ``logits`` [rows, vocab] are
the scores of the next token. The cache is any pytree whose array leaves have the rows on axis 0
(scalar leaves, such as a cache index, are shared by all rows); the decoders repeat it for
several samples per input and reorder it between beams. The whole loop is one
``lax.while_loop``, so decoding jits, batches and never returns to Python per token.

Conventions (T5X's): the first token fed is ``start_token`` (T5: 0) and is not part of the
output; outputs keep EOS and are 0 after it; scores are summed log-probabilities of the model's
own distribution (``log_softmax`` of the logits, before temperature or truncation), so samples
from different settings rank on one scale. Beam scores follow transformers instead (see
``beam_search``), since beam search must reproduce ``generate``.

Sampling is deterministic given the key: row ``j`` of example ``i`` draws step ``t`` with
``fold_in(fold_in(example_key_i, j), t)``, so results do not depend on how many steps run per
call. That is what lets ``decode_until_stop`` decode in chunks and look for stop strings on the
host between chunks without changing any sample (see its docstring for why strings are checked
on the host).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Cache = Any
TokensToLogits = Callable[[Array, Cache], tuple[Array, Cache]]

# transformers' "minus infinity" for beam bookkeeping; kept equal so ties break the same way.
BEAM_NEG = -1.0e9
EARLY_STOPPING = (False, True, "never")


# --- rows and keys ---


def repeat_rows(tree: Cache, n: int) -> Cache:
    """Repeat every row of the array leaves ``n`` times (row i -> rows i*n .. i*n+n-1).

    >>> repeat_rows({"k": jnp.array([[1], [2]]), "index": jnp.array(0)}, 2)["k"].tolist()
    [[1], [1], [2], [2]]
    """
    return jax.tree.map(lambda x: x if jnp.ndim(x) == 0 else jnp.repeat(x, n, axis=0), tree)


def gather_rows(tree: Cache, rows: Array) -> Cache:
    """Select rows of every array leaf (scalar leaves are shared and kept)."""
    return jax.tree.map(lambda x: x if jnp.ndim(x) == 0 else jnp.take(x, rows, axis=0), tree)


def example_keys(rng: Array, batch_size: int) -> Array:
    """Raw uint32 [batch, 2] keys from one key (split) or from one key per example."""
    if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
        rng = jax.random.key_data(rng)
    rng = jnp.asarray(rng, jnp.uint32)
    if rng.ndim == 1:
        return jax.random.split(rng, batch_size)
    if rng.shape != (batch_size, 2):
        raise ValueError(
            f"rng has shape {rng.shape}; expected one key (2,) or one per example ({batch_size}, 2)"
        )
    return rng


def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    if not temperature >= 0.0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature!r}")
    if not (isinstance(top_k, int) and top_k >= 0):
        raise ValueError(f"top_k must be an integer >= 0 (0 keeps every token), got {top_k!r}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (1 keeps every token), got {top_p!r}")


# --- sampling ---


def truncated_logits(
    logits: Array, temperature: float, top_k: int = 0, top_p: float = 1.0
) -> tuple[Array, Array | None]:
    """(candidate logits [rows, C], their token ids [rows, C] or None = the whole vocabulary).

    Order as in transformers: temperature, then the ``top_k`` best tokens, then the smallest
    set of those whose probability (renormalised over the top-k set) reaches ``top_p``;
    dropped candidates get -inf. Sampling from the candidates is sampling from the
    renormalised truncated distribution.

    >>> lg, ids = truncated_logits(jnp.log(jnp.array([[0.1, 0.5, 0.15, 0.25]])), 1.0, 3, 0.7)
    >>> ids.tolist(), jnp.isfinite(lg).tolist()
    ([[1, 3, 2]], [[True, True, False]])
    """
    check_sampling(temperature, top_k, top_p)
    logits = logits.astype(jnp.float32) / temperature
    ids = None
    vocab = logits.shape[-1]
    if 0 < top_k < vocab:
        logits, ids = jax.lax.top_k(logits, top_k)
    if top_p < 1.0:
        probs = jax.nn.softmax(logits, axis=-1)
        if ids is not None:  # k sorted candidates: the mass before each is a cumsum
            mass_before = jnp.cumsum(probs, axis=-1) - probs
            logits = jnp.where(mass_before < top_p, logits, -jnp.inf)
        else:  # whole vocabulary: a threshold search, since sorting it each step is slow
            logits = jnp.where(probs >= _nucleus_threshold(probs, top_p), logits, -jnp.inf)
    return logits, ids


def _nucleus_threshold(probs: Array, top_p: float) -> Array:
    """[rows, 1] threshold t: the tokens with p >= t are the top-p nucleus (ties kept).

    A token is in the nucleus when the mass of the tokens more probable than it is below
    ``top_p``. That mass, as a function of a threshold, decreases, so a bisection finds the
    smallest threshold where it is below ``top_p``: the least probable nucleus member. The
    bisection runs over the int32 bit patterns of the (non-negative) float32 probabilities,
    which order like the floats, so 31 halvings land exactly on that probability. Each is
    O(vocab), instead of the sort that XLA's CPU backend does slowly for a 32k vocabulary.
    """
    probs = probs.astype(jnp.float32)

    def mass_above(bits: Array) -> Array:
        t = jax.lax.bitcast_convert_type(bits, jnp.float32)
        return jnp.sum(jnp.where(probs > t, probs, 0.0), axis=-1, keepdims=True)

    def halve(_: int, bounds: tuple[Array, Array]) -> tuple[Array, Array]:
        lo, hi = bounds  # mass_above(lo) >= top_p > mass_above(hi)
        mid = lo + (hi - lo) // 2
        below = mass_above(mid) < top_p
        return jnp.where(below, lo, mid), jnp.where(below, mid, hi)

    hi = jax.lax.bitcast_convert_type(jnp.max(probs, axis=-1, keepdims=True), jnp.int32)
    _, hi = jax.lax.fori_loop(0, 31, halve, (jnp.zeros_like(hi), hi))
    return jax.lax.bitcast_convert_type(hi, jnp.float32)


def sample_logits(
    keys: Array, logits: Array, temperature: float, top_k: int = 0, top_p: float = 1.0
) -> Array:
    """One token per row: argmax when ``temperature`` is 0, else a draw with ``keys[row]``.

    >>> logits = jnp.log(jnp.array([[0.1, 0.6, 0.3]]))
    >>> sample_logits(jax.random.split(jax.random.PRNGKey(0), 1), logits, 0.0).tolist()
    [1]
    >>> keys = jax.random.split(jax.random.PRNGKey(0), 1000)
    >>> draws = sample_logits(keys, jnp.repeat(logits, 1000, 0), 1.0, top_k=2)
    >>> sorted(set(draws.tolist()))  # token 0 is outside the top 2
    [1, 2]
    """
    if temperature == 0.0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    cand, ids = truncated_logits(logits, temperature, top_k, top_p)
    choice = jax.vmap(jax.random.categorical)(keys, cand)
    if ids is not None:
        choice = jnp.take_along_axis(ids, choice[:, None], axis=-1)[:, 0]
    return choice.astype(jnp.int32)


class SampleState(NamedTuple):
    """Loop state of greedy/temperature sampling; rows are examples x samples."""

    step: Array  # int32 []: tokens generated so far
    tokens: Array  # int32 [rows, max_decode_length]
    token_scores: Array  # float32 [rows, max_decode_length]: log-prob of each token
    ended: Array  # bool [rows]: EOS seen (or stopped by the host)
    keys: Array  # uint32 [rows, 2]
    last: Array  # int32 [rows]: the token fed next
    cache: Cache


def sample_init(
    cache: Cache, row_keys: Array, *, max_decode_length: int, start_token: int = 0
) -> SampleState:
    """The state before the first step; ``cache`` and ``row_keys`` already have all rows."""
    rows = row_keys.shape[0]
    return SampleState(
        step=jnp.zeros((), jnp.int32),
        tokens=jnp.zeros((rows, max_decode_length), jnp.int32),
        token_scores=jnp.zeros((rows, max_decode_length), jnp.float32),
        ended=jnp.zeros((rows,), bool),
        keys=row_keys,
        last=jnp.full((rows,), start_token, jnp.int32),
        cache=cache,
    )


def sample_steps(
    state: SampleState,
    tokens_to_logits: TokensToLogits,
    *,
    until: Array | int,
    eos_id: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
) -> SampleState:
    """Decode until ``until`` tokens exist or every row has ended (one ``lax.while_loop``).

    Running to ``until=5`` then to 10 gives exactly what running to 10 at once gives.
    """
    check_sampling(temperature, top_k, top_p)
    until = jnp.minimum(until, state.tokens.shape[1])

    def cond(s: SampleState) -> Array:
        return (s.step < until) & ~jnp.all(s.ended)

    def body(s: SampleState) -> SampleState:
        logits, cache = tokens_to_logits(s.last, s.cache)
        logits = logits.astype(jnp.float32)
        step_keys = jax.vmap(jax.random.fold_in, (0, None))(s.keys, s.step)
        token = sample_logits(step_keys, logits, temperature, top_k, top_p)
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), token[:, None], -1)[:, 0]
        token = jnp.where(s.ended, 0, token)
        log_prob = jnp.where(s.ended, 0.0, log_prob)
        return SampleState(
            step=s.step + 1,
            tokens=jax.lax.dynamic_update_slice(s.tokens, token[:, None], (0, s.step)),
            token_scores=jax.lax.dynamic_update_slice(
                s.token_scores, log_prob[:, None], (0, s.step)
            ),
            ended=s.ended | (token == eos_id),
            keys=s.keys,
            last=token,
            cache=cache,
        )

    return jax.lax.while_loop(cond, body, state)


def row_keys_for(rng: Array, batch_size: int, num_decodes: int) -> Array:
    """[batch * num_decodes, 2]: key of sample j of example i = fold_in(example key i, j)."""
    keys = example_keys(rng, batch_size)
    per = jax.vmap(lambda k: jax.vmap(lambda j: jax.random.fold_in(k, j))(jnp.arange(num_decodes)))
    return per(keys).reshape(batch_size * num_decodes, -1)


def temperature_sample(
    tokens_to_logits: TokensToLogits,
    cache: Cache,
    rng: Array,
    *,
    batch_size: int,
    max_decode_length: int,
    eos_id: int,
    num_decodes: int = 1,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    start_token: int = 0,
) -> tuple[Array, Array]:
    """``num_decodes`` samples per example: tokens [batch, num_decodes, max_decode_length]
    and summed log-probs [batch, num_decodes]. ``temperature=0`` is greedy decoding.

    ``cache`` has ``batch_size`` rows (one per example); it is repeated per sample here.
    A bigram model that prefers 2 after 0, 3 after 2 and EOS (1) after 3:

    >>> probs = [[.1, .1, .7, .1], [.25] * 4, [.1, .1, .1, .7], [.1, .7, .1, .1]]
    >>> bigram = lambda ids, cache: (jnp.log(jnp.array(probs))[ids], cache)
    >>> tokens, scores = temperature_sample(
    ...     bigram, {}, jax.random.PRNGKey(0), batch_size=1, max_decode_length=5, eos_id=1,
    ...     temperature=0.0)
    >>> tokens.tolist(), round(float(scores[0, 0]), 3) == round(3 * float(jnp.log(0.7)), 3)
    ([[[2, 3, 1, 0, 0]]], True)
    >>> tokens, _ = temperature_sample(
    ...     bigram, {}, jax.random.PRNGKey(0), batch_size=1, max_decode_length=5, eos_id=1,
    ...     num_decodes=3)
    >>> tokens.shape
    (1, 3, 5)
    """
    if num_decodes < 1 or max_decode_length < 1:
        raise ValueError(
            f"num_decodes ({num_decodes}) and max_decode_length ({max_decode_length}) must be >= 1"
        )
    keys = row_keys_for(rng, batch_size, num_decodes)
    state = sample_init(
        repeat_rows(cache, num_decodes),
        keys,
        max_decode_length=max_decode_length,
        start_token=start_token,
    )
    state = sample_steps(
        state,
        tokens_to_logits,
        until=max_decode_length,
        eos_id=eos_id,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
    )
    tokens = state.tokens.reshape(batch_size, num_decodes, max_decode_length)
    return tokens, state.token_scores.sum(-1).reshape(batch_size, num_decodes)


# --- beam search ---


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
    start_token: int = 0,
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
    n_cand = 2 * k  # transformers: max(2, 1 + number of EOS ids) * num_beams
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
    lp = jnp.float32(length_penalty)
    top_mask = jnp.arange(n_cand) < k

    def take(x: Array, idx: Array) -> Array:  # per example, along the beam axis
        return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)

    def cond(s: BeamState) -> Array:
        go = (s.step < length) & jnp.any(s.improvable)
        if early_stopping is True:
            go &= ~jnp.all(s.finished)
        return go

    def body(s: BeamState) -> BeamState:
        t = s.step
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
        just = hits & top_mask[None, :]
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

    final = jax.lax.while_loop(cond, body, state)
    return final.finished_tokens, final.finished_scores


# --- stop strings (host side) ---


def first_stop_length(
    ids: Sequence[int],
    stops: Sequence[str],
    detokenize: Callable[[Sequence[int]], str],
    known_clean: int = 0,
) -> int | None:
    """The fewest leading ``ids`` whose text contains one of ``stops``; None if all do not.

    ``known_clean`` ids are known to contain none. Assumes text grows with the ids (true of
    byte-level BPE and SentencePiece), so a binary search finds the first token that completes
    a stop string.

    >>> detok = lambda ids: "".join("ab\\nc"[i] for i in ids)
    >>> first_stop_length([0, 1, 2, 3, 0], ["\\nc"], detok)
    4
    >>> first_stop_length([0, 1], ["\\nc"], detok) is None
    True
    """
    if not stops or not any(s in detokenize(ids) for s in stops):
        return None
    lo, hi = known_clean, len(ids)  # the prefix of lo ids is clean, of hi ids is not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if any(s in detokenize(ids[:mid]) for s in stops):
            hi = mid
        else:
            lo = mid
    return hi


def generated_ids(row: np.ndarray, eos_id: int, pad_id: int = 0) -> list[int]:
    """A decoded row's ids before EOS, without trailing padding (after EOS or a stop cut).

    >>> generated_ids(np.array([5, 6, 1, 0]), eos_id=1), generated_ids(np.array([5, 0, 7, 0]), 1)
    ([5, 6], [5, 0, 7])
    """
    ids = np.asarray(row).tolist()
    if eos_id in ids:
        return ids[: ids.index(eos_id)]
    while ids and ids[-1] == pad_id:
        ids.pop()
    return ids


def decode_until_stop(
    run: Callable[[SampleState, int], SampleState],
    state: SampleState,
    *,
    stops: Sequence[Sequence[str]],
    detokenize: Callable[[Sequence[int]], str],
    eos_id: int,
    interval: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode in chunks of ``interval`` tokens, ending rows whose text holds a stop string.

    Why on the host: stop strings are text, and one string spans many token sequences (BPE
    merges differ with context), so matching them on device would need a token trie per
    tokenizer. Checking between jitted chunks costs one detokenisation per live row per chunk;
    sampling is unchanged by chunking (see the module docstring), so a row's tokens are what
    an uninterrupted decode gives, cut after the token that completes its first stop string
    (the stop string's tokens kept, 0 after). ``stops[row]`` may be empty. Returns numpy
    tokens [rows, length] and summed log-probs [rows] of what is kept.
    """
    if interval < 1:
        raise ValueError(f"interval must be >= 1, got {interval}")
    rows, length = state.tokens.shape
    cut = np.full(rows, -1)
    clean = np.zeros(rows, int)  # ids known to hold no stop string
    settled = np.array([not s for s in stops])  # nothing more to check for this row
    while True:
        step = int(state.step)
        state = run(state, min(step + interval, length))
        step = int(state.step)
        tokens, ended = np.asarray(state.tokens), np.asarray(state.ended).copy()
        for r in np.flatnonzero(~settled):
            ids = generated_ids(tokens[r, :step], eos_id)
            n = first_stop_length(ids, stops[r], detokenize, clean[r])
            if n is not None:
                cut[r], settled[r], ended[r] = n, True, True
            else:
                clean[r] = len(ids)
                settled[r] = ended[r]
        if step >= length or ended.all():
            break
        state = state._replace(ended=jnp.asarray(ended))
    tokens, token_scores = np.array(state.tokens), np.asarray(state.token_scores)
    keep = np.arange(length)[None, :] < np.where(cut >= 0, cut, length)[:, None]
    return np.where(keep, tokens, 0), np.where(keep, token_scores, 0.0).sum(-1)


def cut_at_stops(
    tokens: np.ndarray,
    stops: Sequence[Sequence[str]],
    detokenize: Callable[[Sequence[int]], str],
    eos_id: int,
) -> np.ndarray:
    """Rows [rows, length] cut (0 after) where their text first holds a stop string; used for
    beam search, which always runs to its end."""
    tokens = np.array(tokens)
    for r, row in enumerate(tokens):
        n = first_stop_length(generated_ids(row, eos_id), stops[r], detokenize)
        if n is not None:
            tokens[r, n:] = 0
    return tokens
