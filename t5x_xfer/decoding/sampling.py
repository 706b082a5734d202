"""Greedy and temperature/top-k/top-p sampling over a KV cache, one ``lax.while_loop``.

Sampling is deterministic given the key: row ``j`` of example ``i`` draws step ``t`` with
``fold_in(fold_in(example_key_i, j), t)``, so results do not depend on how many steps run per
call (see ``t5x_xfer.decoding``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from t5x_xfer.decoding.settings import check_sampling

Array = jax.Array
Cache = Any
TokensToLogits = Callable[[Array, Cache], tuple[Array, Cache]]


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
    uniform = jax.vmap(lambda k: jax.random.uniform(k, dtype=jnp.float32))(keys)
    choice = inverse_cdf(jnp.exp(cand - jnp.max(cand, axis=-1, keepdims=True)), uniform)
    if ids is not None:
        choice = jnp.take_along_axis(ids, choice[:, None], axis=-1)[:, 0]
    return choice.astype(jnp.int32)


INVERSE_CDF_BLOCK = 512


def _first_above(cumulative: Array, target: Array, weights: Array) -> Array:
    """Per row, the first index whose cumulative weight exceeds ``target``; where rounding
    leaves none, the last index of positive weight (never a zero-weight one)."""
    above = cumulative > target[:, None]
    last_positive = jnp.argmax(jnp.where(weights > 0, jnp.arange(weights.shape[-1]), -1), -1)
    return jnp.where(above.any(-1), jnp.argmax(above, -1), last_positive)


def inverse_cdf(weights: Array, uniform: Array, block: int = INVERSE_CDF_BLOCK) -> Array:
    """Draw index i of each row with probability weights[i] / sum(weights), by the inverse
    CDF at ``uniform`` [rows] in [0, 1).

    Why not Gumbel-max (``jax.random.categorical``): it needs a random number per vocabulary
    entry, which for a 152k-token vocabulary costs as much as the logits matmul on a CPU; this
    needs one per row. The cumulative sums run in blocks (block totals, then within the chosen
    block), which keeps them short and accurate in float32.

    >>> inverse_cdf(jnp.array([[0.0, 1.0, 3.0]]), jnp.array([0.3])).tolist()
    [2]
    >>> inverse_cdf(jnp.array([[0.0, 1.0, 3.0]]), jnp.array([0.2])).tolist()
    [1]
    """
    rows, width = weights.shape
    pad = (-width) % block
    w = jnp.pad(weights.astype(jnp.float32), ((0, 0), (0, pad))).reshape(rows, -1, block)
    totals = jnp.sum(w, axis=-1)
    running = jnp.cumsum(totals, axis=-1)
    target = uniform * running[:, -1]
    b = _first_above(running, target, totals)
    before = jnp.where(
        b > 0, jnp.take_along_axis(running, jnp.maximum(b - 1, 0)[:, None], 1)[:, 0], 0.0
    )
    inner = jnp.take_along_axis(w, b[:, None, None], axis=1)[:, 0]
    j = _first_above(before[:, None] + jnp.cumsum(inner, axis=-1), target, inner)
    return (b * block + j).astype(jnp.int32)


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
    cache: Cache, row_keys: Array, *, max_decode_length: int, start_token: int | Array = 0
) -> SampleState:
    """The state before the first step; ``cache`` and ``row_keys`` already have all rows.
    ``start_token`` is one id for all rows or one per row (a decoder-only model's last prompt
    token)."""
    rows = row_keys.shape[0]
    return SampleState(
        step=jnp.zeros((), jnp.int32),
        tokens=jnp.zeros((rows, max_decode_length), jnp.int32),
        token_scores=jnp.zeros((rows, max_decode_length), jnp.float32),
        ended=jnp.zeros((rows,), bool),
        keys=row_keys,
        last=jnp.broadcast_to(jnp.asarray(start_token, jnp.int32), (rows,)),
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
