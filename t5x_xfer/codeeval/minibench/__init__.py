"""A mini benchmark in HumanEval-X's format, written for this project, for runs without the data.

Six simple problems (add, is_palindrome, sum_list, count_vowels, max_element, reverse_words),
the same ones in each of HumanEval-X's six languages, with prompts, declarations and test
harnesses in the style of each language's HumanEval-X file and task ids ``Python/0``,
``CPP/0``, ... . It lets the local debug experiment decode and execute programs end to end
offline; its pass@k says only that the pipeline works, nothing about HumanEval-X. The problems
are Python data in ``build.py``, which writes ``<lang>/humaneval_<lang>.jsonl.gz`` here.
Binaries reach it through ``t5x_xfer.codeeval.data.humaneval_x_dir`` (as "minibench").
"""

from __future__ import annotations

from pathlib import Path

MINIBENCH_DIR = Path(__file__).resolve().parent


def num_problems() -> int:
    from t5x_xfer.codeeval.minibench.build import PROBLEMS

    return len(PROBLEMS)
