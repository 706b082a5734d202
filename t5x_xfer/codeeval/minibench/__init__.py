"""A mini benchmark in HumanEval-X's format, written for this project, for runs without the data.

Six simple problems (add, is_palindrome, sum_list, count_vowels, max_element, reverse_words),
the same ones in each of HumanEval-X's six languages, with prompts, declarations and test
harnesses in the style of each language's HumanEval-X file and task ids ``Python/0``,
``CPP/0``, ... . It lets the local debug experiment decode and execute programs end to end
offline; its pass@k says only that the pipeline works, nothing about HumanEval-X. The problems
are Python data in ``build.py``, which writes ``<lang>/humaneval_<lang>.jsonl.gz`` here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

MINIBENCH_DIR = Path(__file__).resolve().parent
ENV_VAR = "T5X_HUMANEVAL_X_DIR"

log = logging.getLogger(__name__)


def default_problems_dir(data_dir: str | Path | None) -> Path:
    """Where HumanEval-X problems are read from: ``data_dir`` if given, else the directory in
    ``$T5X_HUMANEVAL_X_DIR``, else the mini benchmark (logged as a warning, because its
    results are not HumanEval-X numbers). The result is a directory for
    ``t5x_xfer.codeeval.data.load_problems`` and the seqio HumanEval-X tasks.
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    from_env = os.environ.get(ENV_VAR, "")
    if from_env:
        return Path(from_env).expanduser()
    log.warning(
        "No HumanEval-X directory given (argument or $%s): using the project's mini benchmark "
        "at %s (%d problems per language in HumanEval-X format). Its pass@k checks the "
        "pipeline only; these are NOT HumanEval-X numbers.",
        ENV_VAR,
        MINIBENCH_DIR,
        _num_problems(),
    )
    return MINIBENCH_DIR


def _num_problems() -> int:
    from t5x_xfer.codeeval.minibench.build import PROBLEMS

    return len(PROBLEMS)
