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

Modules: ``settings`` (DecodeSettings: what to decode, validated once), ``sampling`` (greedy
and temperature/top-k/top-p), ``beam`` (beam search), ``stops`` (stop strings and output ids).
Everything public is importable from ``t5x_xfer.decoding``; only ``settings`` is imported
eagerly, so binaries that merely configure decoding (the grid driver, the code evaluator) do
not load JAX.
"""

from __future__ import annotations

import importlib
from typing import Any

from t5x_xfer.decoding.settings import (
    GREEDY,
    METHODS,
    DecodeSettings,
    add_flags,
    check_sampling,
    from_flags,
    legacy,
    override,
    stops_per_example,
)

# name -> submodule, loaded on first use (PEP 562)
_LAZY = {
    "BEAM_NEG": "beam",
    "EARLY_STOPPING": "beam",
    "BeamState": "beam",
    "beam_search": "beam",
    "Array": "sampling",
    "Cache": "sampling",
    "SampleState": "sampling",
    "TokensToLogits": "sampling",
    "example_keys": "sampling",
    "gather_rows": "sampling",
    "inverse_cdf": "sampling",
    "repeat_rows": "sampling",
    "row_keys_for": "sampling",
    "sample_init": "sampling",
    "sample_logits": "sampling",
    "sample_steps": "sampling",
    "temperature_sample": "sampling",
    "truncated_logits": "sampling",
    "cut_at_stops": "stops",
    "decode_until_stop": "stops",
    "first_stop_length": "stops",
    "generated_ids": "stops",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DecodeSettings",
    "GREEDY",
    "METHODS",
    "add_flags",
    "check_sampling",
    "from_flags",
    "legacy",
    "override",
    "stops_per_example",
    *_LAZY,
]
