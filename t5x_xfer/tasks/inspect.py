"""Print a task's examples before and after preprocessing, so users see what the model sees.

    python -m t5x_xfer.tasks.inspect --task xfer_mnli --split validation -n 3 \\
        --gin_file=gin/models/codet5p_220m.gin --data_dir=~/xfer_data

The vocabulary is the model gin file's ``VOCABULARY``; ``--data_dir`` (or the gin macro
``DATA_DIR``) is passed to ``register_all``. For a mixture it prints the mixing rates, then
examples drawn from the mixture (which has no raw records of its own).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import gin
import numpy as np

from t5x_xfer import gin_utils, logs

MAX_CHARS = 600


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    elif isinstance(value, np.ndarray) and value.dtype == object:
        value = [_show(v) for v in value.tolist()]
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, Mapping):
        value = {k: _show(v) for k, v in value.items()}
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + f"... [{len(text)} chars]"


def _print_processed(ex: Mapping[str, Any], vocabulary: Any, out: TextIO) -> None:
    for key in ("inputs", "targets"):
        tokens = ex[key].tolist()
        text = ex.get(f"{key}_pretokenized", vocabulary.decode(tokens))
        print(f"  {key} ({len(tokens)} tokens): {_show(text)}", file=out)
    for key in sorted(
        set(ex) - {"inputs", "targets", "inputs_pretokenized", "targets_pretokenized"}
    ):
        print(f"  {key}: {_show(ex[key])}", file=out)


def inspect(name: str, split: str, n: int, out: TextIO | None = None) -> None:
    """Print ``n`` examples of task or mixture ``name`` (already registered) to ``out``
    (default stdout)."""
    import seqio  # TensorFlow: after logs.setup

    from t5x_xfer import tasks as xfer_tasks

    out = out or sys.stdout
    provider = xfer_tasks.get(name)
    if isinstance(provider, seqio.Mixture):
        print(f"mixture {name}: rates", file=out)
        for task in provider.tasks:
            print(f"  {task.name}: {provider.get_rate(task):g}", file=out)
        ds = provider.get_dataset(None, split=split, shuffle=True, seed=0)
        vocabulary = provider.tasks[0].output_features["targets"].vocabulary
        for i, ex in enumerate(ds.take(n).as_numpy_iterator()):
            print(f"--- example {i} (preprocessed)", file=out)
            _print_processed(ex, vocabulary, out)
        return
    vocabulary = provider.output_features["targets"].vocabulary
    raw = provider.source.get_dataset(split, shuffle=False).take(n).as_numpy_iterator()
    processed = provider.get_dataset(None, split=split, shuffle=False).take(n).as_numpy_iterator()
    for i, ex in enumerate(raw):
        print(f"--- example {i}: raw record", file=out)
        for key in sorted(ex):
            print(f"  {key}: {_show(ex[key])}", file=out)
    for i, ex in enumerate(processed):  # records without labels are dropped, so not zipped
        print(f"--- example {i}: preprocessed", file=out)
        _print_processed(ex, vocabulary, out)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    gin_files, bindings, rest = gin_utils.split_flags(argv)
    parser = argparse.ArgumentParser(
        prog="python -m t5x_xfer.tasks.inspect",
        description=__doc__.split("\n")[0],
        epilog="Gin flags: --gin_file=FILE (a model file defining VOCABULARY), --gin.MACRO=V.",
    )
    parser.add_argument("--task", required=True, help="task or mixture name")
    parser.add_argument("--split", default="train")
    parser.add_argument("-n", type=int, default=3, help="examples to print")
    parser.add_argument("--data_dir", default=None, help="default: the gin macro DATA_DIR")
    logs.add_verbose_flag(parser)
    args = parser.parse_args(rest)
    logs.setup(args.verbose, tensorflow=True)
    from t5x_xfer import tasks as xfer_tasks
    from t5x_xfer.vocabularies import check_available

    if not gin_files:
        parser.error("give --gin_file=<model gin file>: its VOCABULARY tokenizes the task")
    if args.n < 1:
        parser.error(f"-n must be >= 1, got {args.n}")
    try:
        gin_utils.parse(gin_files, bindings, extra_macros=("DATA_DIR",), require_macros=True)
        data_dir = args.data_dir
        if data_dir is None:
            try:
                data_dir = gin_utils.macro("DATA_DIR")
            except ValueError:
                raise ValueError("give --data_dir or --gin.DATA_DIR='\"...\"'") from None
        if not Path(str(data_dir)).expanduser().is_dir() and "://" not in str(data_dir):
            raise FileNotFoundError(f"data_dir {data_dir}: no such directory")
        with gin.unlock_config():
            vocabulary = gin_utils.macro("VOCABULARY")
            check_available(vocabulary)
            xfer_tasks.register_all(vocabulary, data_dir)
        inspect(args.task, args.split, args.n)
    except (KeyError, ValueError, OSError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else gin_utils.error_line(e)
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
