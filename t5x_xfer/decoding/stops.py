"""Stop strings, checked on the host between jitted chunks of decoding, and output ids."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from t5x_xfer.decoding.sampling import SampleState


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
