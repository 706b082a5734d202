"""Reading evaluate_code outputs: which arms and seeds exist under a root, and their (n, c).

The layout is ``<root>/<arm>/seed<S>/eval/``, each the output directory of
``python -m t5x_xfer.evaluate_code`` (``results.jsonl``: one row per sample with task_id,
language, status, passed, known_defect; ``summary.json`` for the sandbox tier).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path

from t5x_xfer.arms import arm_key
from t5x_xfer.io_utils import iter_jsonl

SEED_DIR = re.compile(r"seed(\d+)")


@dataclasses.dataclass(frozen=True)
class RunResults:
    """One evaluate_code output (one arm, one seed), reduced to what pass@k needs.

    ``problems[language][task_id] = (n, c)``: n samples scored (environment errors left out, as
    codeeval does: a missing library is not the model's failure), c of them passed. A problem
    whose samples all hit environment errors stays listed with n = 0, so problem sets compare
    on what was evaluated, and is then dropped from pass@k with a statement.
    """

    arm: str
    seed: int
    path: Path
    problems: dict[str, dict[str, tuple[int, int]]]
    environment_errors: dict[str, int]
    sandbox_tier: str | None


def task_number(task_id: str) -> tuple[int, int, str]:
    """Sort key putting CPP/2 before CPP/10 (ids without a number last).

    >>> sorted(["CPP/10", "CPP/2", "CPP/x"], key=task_number)
    ['CPP/2', 'CPP/10', 'CPP/x']
    """
    tail = task_id.rsplit("/", 1)[-1]
    return (0, int(tail), task_id) if tail.isdigit() else (1, 0, task_id)


def load_run(
    eval_dir: Path, *, arm: str, seed: int, exclude_known_defects: bool = False
) -> RunResults:
    """Read ``eval_dir/results.jsonl`` (and the sandbox tier from summary.json, if present)."""
    path = Path(eval_dir) / "results.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (is {eval_dir} an evaluate_code output?)")
    counts: dict[str, dict[str, list[int]]] = {}
    env: dict[str, int] = {}
    for where, row in iter_jsonl(path):
        missing = [key for key in ("task_id", "language", "status") if key not in row]
        if missing:
            raise ValueError(f"{where}: row lacks {missing}; expected evaluate_code's results")
        if exclude_known_defects and row.get("known_defect"):
            continue
        language, task_id = row["language"], row["task_id"]
        n_c = counts.setdefault(language, {}).setdefault(task_id, [0, 0])
        if row["status"] == "environment_error":
            env[language] = env.get(language, 0) + 1
            continue
        n_c[0] += 1
        n_c[1] += int(bool(row.get("passed", row["status"] == "passed")))
    tier = None
    summary = Path(eval_dir) / "summary.json"
    if summary.is_file():
        tier = (json.loads(summary.read_text()).get("sandbox") or {}).get("tier")
    return RunResults(
        arm=arm,
        seed=seed,
        path=Path(eval_dir),
        problems={
            lang: {
                t: (n, c) for t, (n, c) in sorted(tasks.items(), key=lambda x: task_number(x[0]))
            }
            for lang, tasks in counts.items()
        },
        environment_errors=env,
        sandbox_tier=tier,
    )


def discover(root: Path) -> dict[str, list[int]]:
    """Arms and seeds under ``root`` that have ``<arm>/seed<S>/eval/results.jsonl``, in grid order.

    >>> discover(Path("/nonexistent"))
    Traceback (most recent call last):
    ...
    FileNotFoundError: report root /nonexistent: no such directory
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"report root {root}: no such directory")
    found: dict[str, list[int]] = {}
    for arm_dir in root.iterdir():
        if not arm_dir.is_dir():
            continue
        seeds = sorted(
            int(m.group(1))
            for d in arm_dir.iterdir()
            if (m := SEED_DIR.fullmatch(d.name)) and (d / "eval" / "results.jsonl").is_file()
        )
        if seeds:
            found[arm_dir.name] = seeds
    return {arm: found[arm] for arm in sorted(found, key=arm_key)}


def select_runs(
    root: Path, found: dict[str, list[int]], arms: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """The arms to report on, and statements about the seed directories that lack results.

    ``arms`` restricts to those arms (default: every arm in ``found``); a listed arm without
    results is a statement, not an error, so a grid driver can report on a partial grid. Raises
    when nothing is left, naming the arms that were found.
    """
    missing_runs = []
    if arms is not None:
        unknown = [a for a in arms if a not in found]
        wanted = [a for a in arms if a in found]
        for a in unknown:
            if (root / a).is_dir():
                missing_runs.append(f"{a}: no seed<S>/eval/results.jsonl under {root / a}")
    else:
        wanted = list(found)
    for arm in wanted:
        for d in sorted((root / arm).iterdir()):
            if SEED_DIR.fullmatch(d.name) and not (d / "eval" / "results.jsonl").is_file():
                missing_runs.append(f"{arm}/{d.name}: no eval/results.jsonl (not evaluated yet?)")
    if not wanted:
        names = f" for arms {list(arms)}" if arms is not None else ""
        raise ValueError(
            f"no <arm>/seed<S>/eval/results.jsonl under {root}{names}; found arms: {list(found)}"
        )
    return wanted, missing_runs
