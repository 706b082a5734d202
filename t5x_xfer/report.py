"""The research report: every arm of the grid against the baseline, and CNN/DailyMail against the
NLU arms, per HumanEval-X language, with paired bootstrap confidence intervals.

    python -m t5x_xfer.report --root RUNS --out RUNS/report [--arms baseline mnli ...]

Input: ``<root>/<arm>/seed<S>/eval/`` for each arm and seed, each the output directory of
``python -m t5x_xfer.evaluate_code`` (``results.jsonl``: one row per sample with task_id,
language, status, passed, known_defect; ``summary.json`` for the sandbox tier). Output in
``<out>``: ``report.json`` (everything, per-problem values included), ``report.md`` (tables and
verdicts) and ``pass_at_1_<language>.png`` per language, each written atomically.

Statistics. pass@k is estimated per problem with codeeval's unbiased estimator (samples with an
environment error left out, as codeeval does) and averaged over problems, then over seeds. Arms
are compared on the same problems, so the comparison is paired: the bootstrap resamples problems
once per replicate and applies the draw to both arms; with several seeds it also resamples seeds
(seed i of one arm is paired with seed i of the other, which share the target-stage seed).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from t5x_xfer.codeeval.languages import LANGUAGES
from t5x_xfer.codeeval.report import pass_at_k
from t5x_xfer.io_utils import iter_jsonl, write_atomic, write_json_atomic
from t5x_xfer.tasks.registry import NLU9

BASELINE = "baseline"
CNN = "cnn_dailymail"
# The nine intermediate tasks of Phang et al. (2020): the same names as their arms.
NLU_TASKS = NLU9
# Arms CNN/DailyMail is compared with directly, and the pool the "best NLU arm" is chosen from:
# the nine single tasks and their mixture (sst2, an extra, is not one of Phang et al.'s nine).
NLU_ARMS = (*NLU_TASKS, "nlu9")
# The grid; arms not listed here are reported after these, alphabetically.
EXPECTED_ARMS = (BASELINE, *NLU_TASKS, CNN, "nlu9", "all10")
ARM_ORDER = (BASELINE, *NLU_TASKS, "sst2", CNN, "nlu9", "all10")
LANGUAGE_ORDER = tuple(LANGUAGES)  # python, cpp, java, js, go, rust
TARGET_LANGUAGE = "python"  # the target stage trains on Python: not zero-shot
KS = (1, 10)
CONFIDENCE = 0.95
_SEED_DIR = re.compile(r"seed(\d+)")


# ---------------------------------------------------------------------------------------------
# Loading evaluate_code outputs


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


def _task_number(task_id: str) -> tuple[int, int, str]:
    """Sort key putting CPP/2 before CPP/10 (ids without a number last)."""
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
                t: (n, c) for t, (n, c) in sorted(tasks.items(), key=lambda x: _task_number(x[0]))
            }
            for lang, tasks in counts.items()
        },
        environment_errors=env,
        sandbox_tier=tier,
    )


def _arm_key(arm: str) -> tuple[int, str]:
    return (ARM_ORDER.index(arm), arm) if arm in ARM_ORDER else (len(ARM_ORDER), arm)


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
            if (m := _SEED_DIR.fullmatch(d.name)) and (d / "eval" / "results.jsonl").is_file()
        )
        if seeds:
            found[arm_dir.name] = seeds
    return {arm: found[arm] for arm in sorted(found, key=_arm_key)}


# ---------------------------------------------------------------------------------------------
# Statistics


def per_problem_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> np.ndarray:
    """pass@k of each problem from its (n, c), with codeeval's unbiased estimator.

    >>> per_problem_pass_at_k([(2, 1), (10, 0), (3, 3)], 1).tolist()
    [0.5, 0.0, 1.0]
    >>> round(float(per_problem_pass_at_k([(10, 3)], 5)[0]), 6)  # 1 - C(7,5)/C(10,5)
    0.916667
    """
    return np.array([pass_at_k(n, c, k) for n, c in counts], dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class Interval:
    """A difference of means (b - a) with its percentile bootstrap interval."""

    diff: float
    low: float
    high: float
    n_seeds: int
    n_problems: int
    n_resamples: int
    confidence: float = CONFIDENCE

    @property
    def verdict(self) -> str:
        """Where the interval lies: "above zero", "below zero" or "straddles zero"."""
        if self.low > 0:
            return "above zero"
        if self.high < 0:
            return "below zero"
        return "straddles zero"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "verdict": self.verdict}


def paired_bootstrap(
    a: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    b: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    n_resamples: int = 10000,
    seed: int = 0,
) -> Interval:
    """Mean of b - a with a 95% percentile bootstrap interval, paired over problems and seeds.

    ``a`` and ``b`` hold per-problem pass@k, shape (problems,) for one seed or (seeds, problems),
    with row i of both from seed i and column j from the same problem. Why paired: problem
    difficulty varies far more than the effect of an intermediate task, and it cancels in the
    per-problem difference, so the interval reflects the effect, not which problems were drawn.

    Each replicate draws problems with replacement once and, with several seeds, seeds with
    replacement (seeds, then problems); the same problem draw serves every seed and both arms,
    because every seed was evaluated on the same problems (a crossed design: drawing problems
    separately per seed would average the problem effect away and make the interval too narrow).
    Vectorised: all replicates' draws at once; seed draws become counts (a matrix product with the
    differences), problem draws index into the result.

    >>> r = paired_bootstrap([0.0, 0.5, 1.0, 0.0], [0.0, 0.5, 1.0, 0.0])
    >>> (r.diff, r.low, r.high, r.verdict)
    (0.0, 0.0, 0.0, 'straddles zero')
    >>> r = paired_bootstrap([0.0, 0.2, 0.5, 0.1], [0.1, 0.3, 0.6, 0.2])  # +0.1 on every problem
    >>> (round(r.diff, 6), round(r.low, 6), round(r.high, 6), r.verdict)
    (0.1, 0.1, 0.1, 'above zero')
    """
    a_arr = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b_arr = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a_arr.ndim != 2 or a_arr.shape != b_arr.shape:
        raise ValueError(
            "paired_bootstrap needs a and b of the same shape (problems,) or (seeds, problems); "
            f"got {np.shape(a)} and {np.shape(b)}"
        )
    n_seeds, n_problems = a_arr.shape
    if n_seeds == 0 or n_problems == 0:
        raise ValueError(f"paired_bootstrap needs at least one seed and problem, got {a_arr.shape}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not (np.isfinite(a_arr).all() and np.isfinite(b_arr).all()):
        raise ValueError("paired_bootstrap: a and b must be finite")
    d = b_arr - a_arr
    rng = np.random.default_rng(seed)
    problems = rng.integers(0, n_problems, size=(n_resamples, n_problems))
    if n_seeds > 1:
        draws = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
        flat = (np.arange(n_resamples)[:, None] * n_seeds + draws).ravel()
        seed_counts = np.bincount(flat, minlength=n_resamples * n_seeds)
        per_problem = seed_counts.reshape(n_resamples, n_seeds) @ d  # seed-weighted sums
        rows = np.arange(n_resamples)[:, None] * n_problems
        sums = per_problem.ravel()[rows + problems].sum(axis=1)
    else:
        sums = d[0][problems].sum(axis=1)
    replicates = sums / (n_seeds * n_problems)
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return Interval(
        diff=float(d.mean()),
        low=float(low),
        high=float(high),
        n_seeds=n_seeds,
        n_problems=n_problems,
        n_resamples=n_resamples,
    )


# ---------------------------------------------------------------------------------------------
# The report (pure: loaded runs in, a JSON-able dict out)


def _metric(k: int) -> str:
    return f"pass@{k}"


def _check_problem_sets(language: str, runs: Sequence[RunResults]) -> list[str]:
    """The common task ids of ``language``; raises naming the arms whose problem sets differ."""
    reference = runs[0]
    ref_ids = set(reference.problems[language])
    for run in runs[1:]:
        ids = set(run.problems[language])
        if ids != ref_ids:
            missing = sorted(ref_ids - ids, key=_task_number)[:5]
            extra = sorted(ids - ref_ids, key=_task_number)[:5]
            raise ValueError(
                f"{language}: arms evaluated on different problem sets: "
                f"{reference.arm}/seed{reference.seed} has {len(ref_ids)} problems, "
                f"{run.arm}/seed{run.seed} has {len(ids)} (missing {missing}, extra {extra}). "
                "Paired comparisons need the same problems: evaluate every arm on the same "
                "HumanEval-X data and languages (and all its problems)."
            )
    return list(reference.problems[language])


def _compare(
    matrices: Mapping[str, Mapping[int, np.ndarray]],
    a: str,
    b: str,
    *,
    n_resamples: int,
    seed: int,
) -> dict[str, Any]:
    """b - a on the seeds both arms have (paired by seed number)."""
    seeds = sorted(set(matrices[a]) & set(matrices[b]))
    if not seeds:
        return {
            "a": a,
            "b": b,
            "available": False,
            "reason": f"{a} (seeds {sorted(matrices[a])}) and {b} (seeds {sorted(matrices[b])}) "
            "share no seed",
        }
    interval = paired_bootstrap(
        np.stack([matrices[a][s] for s in seeds]),
        np.stack([matrices[b][s] for s in seeds]),
        n_resamples=n_resamples,
        seed=seed,
    )
    out = {"a": a, "b": b, "available": True, "seeds": seeds, **interval.to_dict()}
    dropped = sorted(set(matrices[a]) ^ set(matrices[b]))
    if dropped:
        out["note"] = f"only the shared seeds {seeds} are compared (seeds {dropped} unpaired)"
    return out


def _pp(x: float) -> str:
    """Percentage points with a sign: 0.0213 -> '+2.13'."""
    return f"{100 * x:+.2f}"


def _describe(cmp: Mapping[str, Any] | None) -> str:
    if not cmp or not cmp.get("available"):
        return "n/a" if not cmp else f"n/a ({cmp['reason']})"
    text = f"{_pp(cmp['diff'])} pp [{_pp(cmp['low'])}, {_pp(cmp['high'])}]"
    return text + (f" (paired seeds {cmp['seeds']} only)" if "note" in cmp else "")


def build_report(
    runs: Sequence[RunResults],
    *,
    requested_arms: Sequence[str] | None = None,
    missing_runs: Sequence[str] = (),
    ks: Sequence[int] = KS,
    n_resamples: int = 10000,
    seed: int = 0,
    exclude_known_defects: bool = False,
) -> dict[str, Any]:
    """Everything the report says, as a JSON-able dict, from the loaded runs.

    ``requested_arms`` (default: the expected grid) only decides which absences are stated;
    ``missing_runs`` are statements about seed directories without results.
    """
    if not runs:
        raise ValueError("no evaluation results to report on")
    ks = sorted(set(ks))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    primary = _metric(ks[0])
    arms = sorted({r.arm for r in runs}, key=_arm_key)
    seeds = {arm: sorted(r.seed for r in runs if r.arm == arm) for arm in arms}
    statements: list[str] = list(missing_runs)
    expected = list(requested_arms) if requested_arms is not None else list(EXPECTED_ARMS)
    absent = [arm for arm in expected if arm not in arms]
    if absent:
        statements.append(f"arms without results (left out of the report): {', '.join(absent)}")
    if BASELINE not in arms:
        statements.append(f"no '{BASELINE}' arm: differences to the baseline are not computed")
    if CNN not in arms:
        statements.append(f"no '{CNN}' arm: the CNN/DailyMail comparisons and verdicts are absent")
    if not any(a in NLU_ARMS for a in arms):
        statements.append("no NLU arm: CNN/DailyMail cannot be compared with the NLU tasks")
    tiers = sorted({r.sandbox_tier for r in runs if r.sandbox_tier})
    if len(tiers) > 1:
        statements.append(f"evaluations ran under different sandbox tiers: {tiers}")
    for r in runs:
        for lang, count in sorted(r.environment_errors.items()):
            statements.append(
                f"{r.arm}/seed{r.seed} {lang}: {count} samples hit environment errors "
                "(left out of pass@k; fix the toolchain and re-evaluate)"
            )

    present_languages = {lang for r in runs for lang in r.problems}
    languages = [lang for lang in LANGUAGE_ORDER if lang in present_languages]
    languages += sorted(present_languages - set(LANGUAGE_ORDER))
    missing_languages = [lang for lang in LANGUAGE_ORDER if lang not in present_languages]
    if missing_languages:
        statements.append(f"languages without results in any arm: {', '.join(missing_languages)}")

    per_language: dict[str, dict[str, Any]] = {}
    for lang in languages:
        lang_runs = [r for r in runs if lang in r.problems]
        lang_arms = sorted({r.arm for r in lang_runs}, key=_arm_key)
        task_ids = _check_problem_sets(lang, lang_runs)
        entry: dict[str, Any] = {
            "zero_shot": lang != TARGET_LANGUAGE,
            "arms": lang_arms,
            "arms_missing": [a for a in arms if a not in lang_arms],
            "seeds": {a: sorted(r.seed for r in lang_runs if r.arm == a) for a in lang_arms},
            "task_ids": task_ids,
            "metrics": {},
        }
        if entry["arms_missing"]:
            statements.append(f"{lang}: no results for arms {', '.join(entry['arms_missing'])}")
        for k in ks:
            metric = _metric(k)
            short = {
                t: f"n={min(r.problems[lang][t][0] for r in lang_runs)} < {k} in some arm/seed"
                for t in task_ids
                if any(r.problems[lang][t][0] < k for r in lang_runs)
            }
            used = [t for t in task_ids if t not in short]
            m_entry: dict[str, Any] = {"problems": len(used), "dropped_problems": short}
            entry["metrics"][metric] = m_entry
            if not used:
                m_entry["available"] = False
                statements.append(
                    f"{lang}: {metric} not available (needs >= {k} scored samples per problem)"
                )
                continue
            if short:
                statements.append(
                    f"{lang}: {metric} over {len(used)} of {len(task_ids)} problems "
                    f"({len(short)} have fewer than {k} scored samples in some arm/seed)"
                )
            m_entry["available"] = True
            m_entry["task_ids"] = used
            matrices: dict[str, dict[int, np.ndarray]] = {}
            arm_stats: dict[str, Any] = {}
            for arm in lang_arms:
                matrices[arm] = {
                    r.seed: per_problem_pass_at_k([r.problems[lang][t] for t in used], k)
                    for r in lang_runs
                    if r.arm == arm
                }
                per_seed = {s: float(v.mean()) for s, v in sorted(matrices[arm].items())}
                values = list(per_seed.values())
                arm_stats[arm] = {
                    "mean": float(np.mean(values)),
                    "seed_sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                    "per_seed": {str(s): v for s, v in per_seed.items()},
                    "per_problem": {
                        str(s): [round(float(x), 6) for x in v]
                        for s, v in sorted(matrices[arm].items())
                    },
                }
            m_entry["arms"] = arm_stats
            opts = {"n_resamples": n_resamples, "seed": seed}
            m_entry["vs_baseline"] = (
                {a: _compare(matrices, BASELINE, a, **opts) for a in lang_arms if a != BASELINE}
                if BASELINE in matrices
                else None
            )
            m_entry["cnn_vs_nlu"] = (
                {a: _compare(matrices, a, CNN, **opts) for a in lang_arms if a in NLU_ARMS}
                if CNN in matrices
                else None
            )
            m_entry["_matrices"] = matrices  # removed below, after the best NLU arm is known
        per_language[lang] = entry

    best = _best_nlu(per_language, primary)
    if best["arm"] is None:
        statements.append(f"best NLU arm: none ({best['reason']})")
    for lang, entry in per_language.items():
        for m_entry in entry["metrics"].values():
            matrices = m_entry.pop("_matrices", None)
            if matrices is None:
                continue
            m_entry["cnn_vs_best_nlu"] = (
                _compare(matrices, best["arm"], CNN, n_resamples=n_resamples, seed=seed)
                if best["arm"] in matrices and CNN in matrices
                else None
            )
        entry["verdict"] = _verdict(lang, entry, primary, best["arm"])
    return {
        "arms": arms,
        "seeds": seeds,
        "languages": languages,
        "missing_languages": missing_languages,
        "ks": ks,
        "primary_metric": primary,
        "n_resamples": n_resamples,
        "bootstrap_seed": seed,
        "confidence": CONFIDENCE,
        "exclude_known_defects": exclude_known_defects,
        "sandbox_tiers": tiers,
        "runs": [
            {"arm": r.arm, "seed": r.seed, "path": str(r.path), "sandbox_tier": r.sandbox_tier}
            for r in runs
        ],
        "best_nlu": best,
        "statements": statements,
        "per_language": per_language,
        "notes": _NOTES,
    }


_NOTES = [
    "pass@k: the unbiased estimator of Chen et al. (2021) per problem, averaged over problems, "
    "then over seeds; samples with environment errors are left out (codeeval's rule).",
    "Intervals: 95% percentile bootstrap of the difference of means, paired (the same resampled "
    "problems for both arms; seeds resampled too when there are several, seed i paired with "
    "seed i).",
    "Intervals are per comparison and not corrected for multiple comparisons: with a dozen arms "
    "and six languages, some intervals will exclude zero by chance.",
    "The best NLU arm is chosen on the same data it is compared on, which biases that comparison "
    "in the NLU arm's favour: the conservative direction for a claim that CNN/DailyMail helps "
    "more.",
    f"{TARGET_LANGUAGE} is the target-stage language (not zero-shot); the others are zero-shot.",
]


def _best_nlu(per_language: Mapping[str, Any], metric: str) -> dict[str, Any]:
    """The NLU arm with the highest mean (over languages) of its mean-over-seeds ``metric``.

    Only languages where every candidate arm has the metric count, so each arm is averaged over
    the same languages.
    """
    candidates = sorted(
        {
            a
            for e in per_language.values()
            if e["metrics"].get(metric, {}).get("available")
            for a in e["metrics"][metric]["arms"]
            if a in NLU_ARMS
        },
        key=_arm_key,
    )
    if not candidates:
        return {"arm": None, "metric": metric, "reason": "no NLU arm has results", "scores": {}}
    langs = [
        lang
        for lang, e in per_language.items()
        if e["metrics"].get(metric, {}).get("available")
        and all(a in e["metrics"][metric]["arms"] for a in candidates)
    ]
    if not langs:
        return {
            "arm": None,
            "metric": metric,
            "reason": f"no language has results for every NLU arm {candidates}",
            "scores": {},
        }
    scores = {
        a: float(
            np.mean([per_language[lang]["metrics"][metric]["arms"][a]["mean"] for lang in langs])
        )
        for a in candidates
    }
    arm = max(candidates, key=lambda a: scores[a])  # first in grid order on a tie
    return {
        "arm": arm,
        "metric": metric,
        "languages": langs,
        "scores": scores,
        "candidates": candidates,
        "note": "chosen on the same data as the comparison, which favours the NLU arm "
        "(conservative for the CNN/DailyMail claim)",
    }


def _verdict(lang: str, entry: Mapping[str, Any], metric: str, best: str | None) -> dict[str, Any]:
    """The one-line answer for a language on the primary metric."""
    m_entry = entry["metrics"].get(metric, {})
    label = lang + ("" if entry["zero_shot"] else " (target language, not zero-shot)")
    if not m_entry.get("available"):
        return {"text": f"{label}: no verdict ({metric} not available)"}
    if CNN not in m_entry["arms"]:
        return {"text": f"{label}: no verdict ({CNN} has no results for {lang})"}
    vs_base = (m_entry.get("vs_baseline") or {}).get(CNN)
    vs_best = m_entry.get("cnn_vs_best_nlu")
    parts, out = [], {}
    if vs_base and vs_base.get("available"):
        parts.append(f"{CNN} - {BASELINE} {_describe(vs_base)}: CI {vs_base['verdict']}")
        out["vs_baseline"] = vs_base["verdict"]
    else:
        parts.append(f"vs {BASELINE}: {_describe(vs_base) if vs_base else 'n/a (no baseline)'}")
    if vs_best and vs_best.get("available"):
        parts.append(f"{CNN} - best NLU arm ({best}) {_describe(vs_best)}: CI {vs_best['verdict']}")
        out["vs_best_nlu"] = vs_best["verdict"]
    else:
        parts.append(f"vs best NLU arm: {_describe(vs_best) if vs_best else 'n/a'}")
    return {"text": f"{label}, {metric}: " + "; ".join(parts), **out}


# ---------------------------------------------------------------------------------------------
# Rendering


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f}"


def markdown(report: Mapping[str, Any], plots: Mapping[str, str] | None = None) -> str:
    """The report as markdown: statements, verdicts, then per language the arm and CNN tables."""
    ks = [_metric(k) for k in report["ks"]]
    primary = report["primary_metric"]
    lines = ["# Intermediate-task training and zero-shot HumanEval-X: report", ""]
    seeds = ", ".join(f"{a} ({len(s)})" for a, s in report["seeds"].items())
    lines += [
        f"Arms (seeds): {seeds}.",
        "",
        f"pass@k in percent; differences in percentage points (pp) with "
        f"{int(100 * report['confidence'])}% paired bootstrap intervals "
        f"({report['n_resamples']} resamples, seed {report['bootstrap_seed']}); "
        + (
            "known defects of the data excluded."
            if report["exclude_known_defects"]
            else "known defects of the data included (as in published pass@k)."
        ),
        "",
    ]
    if report["statements"]:
        lines += ["## Statements", ""] + [f"- {s}" for s in report["statements"]] + [""]
    lines += [f"## Verdicts ({primary})", ""]
    lines += [f"- {e['verdict']['text']}" for e in report["per_language"].values()]
    best = report["best_nlu"]
    lines += ["", "## Best NLU arm", ""]
    if best["arm"] is None:
        lines.append(f"None: {best['reason']}.")
    else:
        scores = ", ".join(f"{a} {_pct(v)}" for a, v in best["scores"].items())
        lines += [
            f"**{best['arm']}**, by mean {best['metric']} over {', '.join(best['languages'])} "
            f"({scores}).",
            "",
            "Choosing the best arm on the same data it is then compared on biases that comparison "
            "in the NLU arm's favour; that is the conservative direction for the claim that "
            "CNN/DailyMail helps more.",
        ]
    for lang, entry in report["per_language"].items():
        title = lang + ("" if entry["zero_shot"] else " (target language, not zero-shot)")
        lines += ["", f"## {title}", ""]
        available = [m for m in ks if entry["metrics"][m].get("available")]
        if not available:
            lines.append("No pass@k available.")
            continue
        counts = ", ".join(f"{m}: {entry['metrics'][m]['problems']}" for m in available)
        lines += [f"Problems: {counts}.", ""]
        head = ["arm", "seeds"]
        for m in available:
            head += [f"{m}", f"{m} per seed", f"Δ{m} vs {BASELINE}", "CI"]
        lines += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        for arm in entry["arms"]:
            cells = [arm, str(len(entry["seeds"][arm]))]
            for m in available:
                stats = entry["metrics"][m]["arms"][arm]
                cmp = (entry["metrics"][m].get("vs_baseline") or {}).get(arm)
                cells += [
                    _pct(stats["mean"]),
                    " ".join(_pct(v) for v in stats["per_seed"].values()),
                    _describe(cmp) if cmp else "",
                    cmp["verdict"] if cmp and cmp.get("available") else "",
                ]
            lines.append("| " + " | ".join(cells) + " |")
        rows = []
        for m in available:
            m_entry = entry["metrics"][m]
            if not m_entry.get("cnn_vs_nlu"):
                continue
            for arm, cmp in m_entry["cnn_vs_nlu"].items():
                tag = " (best)" if arm == best["arm"] else ""
                verdict = cmp["verdict"] if cmp.get("available") else ""
                rows.append(f"| {m} | {arm}{tag} | {_describe(cmp)} | {verdict} |")
        if rows:
            lines += [
                "",
                f"{CNN} minus each NLU arm:",
                "",
                "| metric | NLU arm | Δ (pp) [CI] | CI |",
                "|---|---|---|---|",
                *rows,
            ]
        if plots and lang in plots:
            lines += ["", f"![{lang}]({plots[lang]})"]
    lines += ["", "## Method", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


_COLOURS = {"baseline": "#7f7f7f", CNN: "#d62728", "nlu9": "#17becf", "all10": "#9467bd"}


def _colour(arm: str) -> str:
    return _COLOURS.get(arm, "#1f77b4" if arm in NLU_ARMS else "#bcbd22")


def plot_language(report: Mapping[str, Any], language: str) -> bytes:
    """A PNG for one language: left, primary-metric pass@k per arm (bar = mean over seeds, dots =
    seeds, dashed line = baseline); right, the difference to the baseline with its 95% CI, so
    both the spread over seeds and the paired uncertainty are visible at a glance."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metric = report["primary_metric"]
    entry = report["per_language"][language]
    m_entry = entry["metrics"][metric]
    arms = entry["arms"]
    fig = Figure(figsize=(11, 0.45 * len(arms) + 1.6))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(arms))[::-1]
    title = language + ("" if entry["zero_shot"] else " (target language)")
    if m_entry.get("available"):
        stats = m_entry["arms"]
        means = [100 * stats[a]["mean"] for a in arms]
        left.barh(y, means, color=[_colour(a) for a in arms], alpha=0.75)
        if BASELINE in stats:
            left.axvline(100 * stats[BASELINE]["mean"], color="black", ls="--", lw=0.8)
        top = max([1.0, *means])
        for yi, arm in zip(y, arms, strict=True):
            points = [100 * v for v in stats[arm]["per_seed"].values()]
            left.scatter(points, [yi] * len(points), color="black", s=12, zorder=3)
            top = max([top, *points])
        left.set_xlim(0, min(100.0, top * 1.1))  # a readable axis even when all are 0
        vs = m_entry.get("vs_baseline") or {}
        for yi, arm in zip(y, arms, strict=True):
            cmp = vs.get(arm)
            if not cmp or not cmp.get("available"):
                continue
            d, lo, hi = 100 * cmp["diff"], 100 * cmp["low"], 100 * cmp["high"]
            right.errorbar(d, yi, xerr=[[d - lo], [hi - d]], fmt="o", color=_colour(arm), capsize=3)
        right.axvline(0, color="black", lw=0.8)
        lo_x, hi_x = right.get_xlim()
        if hi_x - lo_x < 1.0:  # all differences ~0: show +-1 pp rather than float noise
            right.set_xlim(-1.0, 1.0)
        if not vs:
            right.text(0.5, 0.5, f"no {BASELINE} arm", transform=right.transAxes, ha="center")
    else:
        left.text(0.5, 0.5, f"{metric} not available", transform=left.transAxes, ha="center")
    best = report["best_nlu"]["arm"]
    left.set_yticks(y, [f"{a} (best NLU)" if a == best else a for a in arms])
    left.set_xlabel(f"{metric} (%)   bar: mean over seeds, dots: seeds")
    right.set_xlabel(f"Δ{metric} vs {BASELINE} (pp), 95% paired bootstrap CI")
    left.set_title(f"HumanEval-X {title}: {metric}")
    right.set_title("difference to the baseline")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Entry points


def write_report(
    root: Path,
    out: Path,
    *,
    arms: Sequence[str] | None = None,
    ks: Sequence[int] = KS,
    n_resamples: int = 10000,
    seed: int = 0,
    exclude_known_defects: bool = False,
) -> dict[str, Any]:
    """Read every ``<root>/<arm>/seed<S>/eval``, write report.json, report.md and one PNG per
    language into ``out``, and return the report dict.

    ``arms`` restricts the report to those arms (default: every arm found); a listed arm without
    results is stated as missing, not an error, so a grid driver can report on a partial grid.
    """
    root, out = Path(root), Path(out)
    found = discover(root)
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
            if _SEED_DIR.fullmatch(d.name) and not (d / "eval" / "results.jsonl").is_file():
                missing_runs.append(f"{arm}/{d.name}: no eval/results.jsonl (not evaluated yet?)")
    if not wanted:
        names = f" for arms {list(arms)}" if arms is not None else ""
        raise ValueError(
            f"no <arm>/seed<S>/eval/results.jsonl under {root}{names}; found arms: {list(found)}"
        )
    runs = [
        load_run(
            root / arm / f"seed{s}" / "eval",
            arm=arm,
            seed=s,
            exclude_known_defects=exclude_known_defects,
        )
        for arm in wanted
        for s in found[arm]
    ]
    report = build_report(
        runs,
        requested_arms=arms,
        missing_runs=missing_runs,
        ks=ks,
        n_resamples=n_resamples,
        seed=seed,
        exclude_known_defects=exclude_known_defects,
    )
    plots = {}
    for lang in report["languages"]:
        name = f"{report['primary_metric'].replace('@', '_at_')}_{lang}.png"
        write_atomic(out / name, plot_language(report, lang))
        plots[lang] = name
    report["root"] = str(root)
    report["files"] = {"json": "report.json", "markdown": "report.md", "plots": plots}
    write_json_atomic(out / "report.json", report)
    write_atomic(out / "report.md", markdown(report, plots))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m t5x_xfer.report",
        description="Compare the grid's arms on HumanEval-X: pass@k, paired bootstrap CIs, "
        "CNN/DailyMail vs the NLU arms; writes report.json, report.md and PNGs.",
    )
    parser.add_argument("--root", required=True, type=Path, help="<root>/<arm>/seed<S>/eval/")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--arms", nargs="+", help="only these arms (default: all found)")
    parser.add_argument("--ks", nargs="+", type=int, default=list(KS), help="default: 1 10")
    parser.add_argument("--n_resamples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0, help="bootstrap RNG seed")
    parser.add_argument(
        "--exclude_known_defects",
        action="store_true",
        help="leave out the data's known defective problems (see codeeval)",
    )
    args = parser.parse_args(argv)
    try:
        report = write_report(
            args.root,
            args.out,
            arms=args.arms,
            ks=args.ks,
            n_resamples=args.n_resamples,
            seed=args.seed,
            exclude_known_defects=args.exclude_known_defects,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for s in report["statements"]:
        print(f"note: {s}")
    for entry in report["per_language"].values():
        print(entry["verdict"]["text"])
    print(f"wrote {args.out / 'report.md'}, report.json and {len(report['files']['plots'])} plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
