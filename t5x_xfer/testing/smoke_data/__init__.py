"""Smoke data: small datasets in every task's real source format, generated deterministically.

The local CPU debug experiment must run end to end without downloads or licensed data, through
the same readers as a real run (``t5x_xfer.tasks.register_all(vocabulary, data_dir)`` with no
mocking). So this package writes a ``data_dir`` in the layout ``register_all`` expects:

    tfds/<builder>/<config>/<version>/   prepared TFDS directories: dataset_info.json and
                                         tfrecord shards serialized with the builder's own
                                         features (tfds.builder(name, data_dir=...) loads them)
    commonsense_qa/                      a datasets.DatasetDict saved with save_to_disk
    ccgbank/data/AUTO/SS/wsj_SSNN.auto   CCGbank AUTO files (train 02-21, validation 00, test 23)
    mbpp/mbpp.jsonl                      MBPP records, split by task_id as the real file
    code_jsonl/{train,validation}.jsonl  the same generator, for the ``xfer_code_jsonl`` task

The content comes from templates and word lists with a seeded RNG: labels follow from the text
(templated entailment and contradiction, paraphrased or different questions, answers that are
spans of their context, summaries that are the article's first sentence, MBPP problems whose
code passes its asserts), so a tiny model can learn something in a few hundred steps. None of
it is the real data, and it says so: ``README.txt``, the TFDS and datasets descriptions,
``smoke`` ids and ``PARSER=SMOKE`` CCG headers. HumanEval-X is not written here: see
``t5x_xfer.codeeval.minibench``.

Writing is deterministic (same arguments, same bytes: no timestamps, protobufs serialized
deterministically), atomic (a temporary sibling directory renamed into place) and idempotent
(a complete directory with the same arguments, recorded in ``SMOKE_DATA.json``, is kept).

    python -m t5x_xfer.testing.smoke_data --out DIR [--n_train 256] [--n_validation 32] \
        [--seed 0] [--tokenizer FILE]

Modules: ``words`` (shared word lists, the seeded RNG), ``text_tasks`` (NLU, QA and
summarization records), ``ccg`` (CCGbank derivations), ``code_problems`` (MBPP problems),
``writers`` (each on-disk format, the stamp, the atomic move), ``tokenizer`` (the debug BPE).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from t5x_xfer import logs

# Public names, loaded on first use (PEP 562): the writers import seqio and TensorFlow, which
# the binary imports only after it has set up (quiet) logging.
_LAZY = {
    "FORMAT_VERSION": "writers",
    "NOTE": "writers",
    "STAMP": "writers",
    "is_complete": "writers",
    "write_smoke_data": "writers",
    "task_texts": "tokenizer",
    "train_tokenizer": "tokenizer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FORMAT_VERSION",
    "NOTE",
    "STAMP",
    "is_complete",
    "main",
    "task_texts",
    "train_tokenizer",
    "write_smoke_data",
]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m t5x_xfer.testing.smoke_data`` (and ``t5x-xfer smoke_data``): write the data
    (kept when already complete), then the tokenizer if ``--tokenizer`` is given."""
    parser = argparse.ArgumentParser(
        prog="python -m t5x_xfer.testing.smoke_data",
        description="Write the smoke data directory (small generated datasets in every task's "
        "source format) for t5x_xfer.tasks.register_all.",
    )
    parser.add_argument("--out", required=True, type=Path, help="the data_dir to write")
    parser.add_argument("--n_train", type=int, default=256, help="records per train split")
    parser.add_argument("--n_validation", type=int, default=32, help="records per other split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokenizer", type=Path, help="also train a BPE tokenizer.json here")
    parser.add_argument("--vocab_size", type=int, default=512, help="for --tokenizer")
    logs.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    from t5x_xfer.io_utils import check_output_dir, check_output_file

    try:  # before TensorFlow starts: one line, nothing written
        for name in ("n_train", "n_validation", "vocab_size"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
        check_output_dir(args.out, "--out")
        if args.tokenizer:
            check_output_file(args.tokenizer, "--tokenizer")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logs.setup(args.verbose, tensorflow=True)
    from t5x_xfer.testing.smoke_data.tokenizer import train_tokenizer
    from t5x_xfer.testing.smoke_data.writers import NOTE, is_complete, write_smoke_data

    done = is_complete(args.out.expanduser().absolute(), args.n_train, args.n_validation, args.seed)
    root = write_smoke_data(
        args.out, n_train=args.n_train, n_validation=args.n_validation, seed=args.seed
    )
    print(f"{'kept' if done else 'wrote'} smoke data at {root} ({NOTE})")
    if args.tokenizer:
        path = train_tokenizer(root, args.tokenizer, args.vocab_size)
        print(f"tokenizer: {path}")
    return 0
