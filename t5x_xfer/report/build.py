"""The report as data: loaded runs in, one JSON-able dict out (pure: no files, no plots).

Everything the markdown and the plots show is in this dict, per-problem values included, so a
reader can recompute any number from ``report.json`` alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from t5x_xfer.arms import BASELINE, CNN, EXPECTED_ARMS, NLU_ARMS, arm_key
from t5x_xfer.codeeval.languages import LANGUAGES
from t5x_xfer.report.load import RunResults, task_number
from t5x_xfer.report.render import describe
from t5x_xfer.report.stats import (
    CONFIDENCE,
    INTERVALS,
    compare,
    metric_name,
    per_problem_pass_at_k,
)

LANGUAGE_ORDER = tuple(LANGUAGES)  # python, cpp, java, js, go, rust
TARGET_LANGUAGE = "python"  # the target stage trains on Python: not zero-shot
KS = (1, 10)
# One arm's per-problem pass@k per seed: matrices[arm][seed], for one language and metric.
Matrices = dict[str, dict[int, np.ndarray]]

NOTES = [
    "pass@k: the unbiased estimator of Chen et al. (2021) per problem, averaged over problems, "
    "then over seeds; samples with environment errors are left out (codeeval's rule). A "
    "problem with fewer than k scored samples in a run is missing in that run only; each "
    "comparison uses the problems both arms have in every compared seed.",
    "Intervals are per comparison and not corrected for multiple comparisons: with a dozen arms "
    "and six languages, some intervals will exclude zero by chance.",
    "The best NLU arm is chosen on the same data it is compared on, which biases that comparison "
    "in the NLU arm's favour: the conservative direction for a claim that CNN/DailyMail helps "
    "more.",
    f"{TARGET_LANGUAGE} is the target-stage language (not zero-shot); the others are zero-shot.",
]
INTERVAL_NOTES = {
    "crossed": "Intervals (crossed, the default): 95% t intervals for the mean difference with "
    "problems and seeds as crossed random effects: the standard error counts the problem-to-"
    "problem variation of the difference, the seed-to-seed (arm-by-seed) variation and the "
    "noise once each, estimated from the two-way mean squares, with Satterthwaite's degrees of "
    "freedom (at most 1.5 x (seeds - 1) when the seed term is in). With one seed the seed-to-seed "
    "variation cannot be estimated: the interval is then about these runs only, unless "
    "--seed_sd assumes a value.",
    "bootstrap": "Intervals (--interval bootstrap): 95% percentile bootstrap of the difference "
    "of means, paired (the same resampled problems for both arms; seeds resampled too when "
    "there are several, seed i paired with seed i). It counts the problem-by-seed noise twice "
    "(too wide without seed effects) and under-covers when seed effects dominate with few "
    "seeds; see benchmarks/interval_coverage.py.",
}


def build_report(
    runs: Sequence[RunResults],
    *,
    requested_arms: Sequence[str] | None = None,
    missing_runs: Sequence[str] = (),
    ks: Sequence[int] = KS,
    n_resamples: int = 10000,
    seed: int = 0,
    exclude_known_defects: bool = False,
    interval: str = "crossed",
    seed_sd: float | None = None,
) -> dict[str, Any]:
    """Everything the report says, as a JSON-able dict, from the loaded runs.

    ``requested_arms`` (default: the expected grid) only decides which absences are stated;
    ``missing_runs`` are statements about seed directories without results; ``interval`` and
    ``seed_sd`` (pass@k units) as in :func:`t5x_xfer.report.stats.compare`.
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval {interval!r} unknown; allowed: {list(INTERVALS)}")
    if seed_sd is not None and not 0 <= seed_sd <= 1:
        raise ValueError(f"seed_sd must be in [0, 1] (pass@k units), got {seed_sd}")
    cmp_opts = {"n_resamples": n_resamples, "seed": seed, "interval": interval, "seed_sd": seed_sd}
    if not runs:
        raise ValueError("no evaluation results to report on")
    ks = sorted(set(ks))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    primary = metric_name(ks[0])
    arms = sorted({r.arm for r in runs}, key=arm_key)
    tiers = sorted({r.sandbox_tier for r in runs if r.sandbox_tier})
    statements = [*missing_runs, *_coverage_statements(runs, arms, requested_arms, tiers)]
    languages, missing_languages = _languages(runs)
    if missing_languages:
        statements.append(f"languages without results in any arm: {', '.join(missing_languages)}")
    per_language: dict[str, dict[str, Any]] = {}
    matrices: dict[str, dict[str, Matrices]] = {}
    for lang in languages:
        per_language[lang], matrices[lang], notes = _language_entry(lang, runs, arms, ks, cmp_opts)
        per_language[lang]["statements"] = notes
        statements += notes
    best = _best_nlu(per_language, primary)
    if best["arm"] is None:
        statements.append(f"best NLU arm: none ({best['reason']})")
    _add_best_nlu_comparisons(per_language, matrices, best["arm"], cmp_opts)
    for lang, entry in per_language.items():
        entry["verdict"] = _verdict(lang, entry, primary, best["arm"])
    if interval == "crossed" and seed_sd is None and _one_seed_comparisons(per_language):
        statements.append(
            "comparisons on one shared seed: their intervals cover these runs' difference only "
            "(the seed-to-seed variation cannot be estimated from one seed); --seed_sd PP "
            "widens them by an assumed seed-to-seed sd of a difference"
        )
    return {
        "arms": arms,
        "seeds": {arm: sorted(r.seed for r in runs if r.arm == arm) for arm in arms},
        "languages": languages,
        "missing_languages": missing_languages,
        "ks": ks,
        "primary_metric": primary,
        "n_resamples": n_resamples,
        "bootstrap_seed": seed,
        "interval": interval,
        "assumed_seed_sd": seed_sd,
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
        "notes": [*NOTES, INTERVAL_NOTES[interval]],
    }


def _one_seed_comparisons(per_language: Mapping[str, Any]) -> bool:
    """Whether any available comparison rests on a single shared seed."""
    for entry in per_language.values():
        for m_entry in entry["metrics"].values():
            groups = [m_entry.get("vs_baseline"), m_entry.get("cnn_vs_nlu")]
            cmps = [c for g in groups if g for c in g.values()]
            cmps.append(m_entry.get("cnn_vs_best_nlu"))
            if any(c and c.get("available") and c["n_seeds"] == 1 for c in cmps):
                return True
    return False


def _coverage_statements(
    runs: Sequence[RunResults],
    arms: Sequence[str],
    requested_arms: Sequence[str] | None,
    tiers: Sequence[str],
) -> list[str]:
    """What is missing or uneven across the runs, stated up front: a partial grid still gets a
    report, and its reader must not mistake an absent arm or toolchain for a null result."""
    statements = []
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
    if len(tiers) > 1:
        statements.append(f"evaluations ran under different sandbox tiers: {tiers}")
    for r in runs:
        if not r.problems:
            statements.append(
                f"{r.arm}/seed{r.seed}: {r.path / 'results.jsonl'} has no result rows"
                " (after exclusions): this seed is used in no language"
            )
        for lang, count in sorted(r.environment_errors.items()):
            statements.append(
                f"{r.arm}/seed{r.seed} {lang}: {count} samples hit environment errors "
                "(left out of pass@k; fix the toolchain and re-evaluate)"
            )
    return statements


def _is_empty(runs: Sequence[RunResults], arm: str, seed: int) -> bool:
    """Whether the run of ``arm`` and ``seed`` has no result rows in any language."""
    return any(r.arm == arm and r.seed == seed and not r.problems for r in runs)


def _languages(runs: Sequence[RunResults]) -> tuple[list[str], list[str]]:
    """The languages with results (HumanEval-X order, then unknown ones alphabetically), and the
    HumanEval-X languages that no run has, so the report can say so."""
    present = {lang for r in runs for lang in r.problems}
    languages = [lang for lang in LANGUAGE_ORDER if lang in present]
    languages += sorted(present - set(LANGUAGE_ORDER))
    return languages, [lang for lang in LANGUAGE_ORDER if lang not in present]


def _check_problem_sets(language: str, runs: Sequence[RunResults]) -> list[str]:
    """The common task ids of ``language``; raises naming the arms whose problem sets differ."""
    reference = runs[0]
    ref_ids = set(reference.problems[language])
    for run in runs[1:]:
        ids = set(run.problems[language])
        if ids != ref_ids:
            missing = sorted(ref_ids - ids, key=task_number)[:5]
            extra = sorted(ids - ref_ids, key=task_number)[:5]
            raise ValueError(
                f"{language}: arms evaluated on different problem sets: "
                f"{reference.arm}/seed{reference.seed} has {len(ref_ids)} problems, "
                f"{run.arm}/seed{run.seed} has {len(ids)} (missing {missing}, extra {extra}). "
                "Paired comparisons need the same problems: evaluate every arm on the same "
                "HumanEval-X data and languages (and all its problems)."
            )
    return list(reference.problems[language])


def _language_entry(
    lang: str,
    runs: Sequence[RunResults],
    arms: Sequence[str],
    ks: Sequence[int],
    cmp_opts: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Matrices], list[str]]:
    """One language's entry, its per-metric matrices and its statements.

    Each language is reported on the arms that have it, over the problems every one of its runs
    evaluated; the matrices are kept aside for the comparison with the best NLU arm, which can
    only be chosen once every language is done.
    """
    lang_runs = [r for r in runs if lang in r.problems]
    lang_arms = sorted({r.arm for r in lang_runs}, key=arm_key)
    task_ids = _check_problem_sets(lang, lang_runs)
    entry: dict[str, Any] = {
        "zero_shot": lang != TARGET_LANGUAGE,
        "arms": lang_arms,
        "arms_missing": [a for a in arms if a not in lang_arms],
        "seeds": {a: sorted(r.seed for r in lang_runs if r.arm == a) for a in lang_arms},
        "task_ids": task_ids,
        "metrics": {},
    }
    statements = []
    if entry["arms_missing"]:
        statements.append(f"{lang}: no results for arms {', '.join(entry['arms_missing'])}")
    entry["seeds_missing"] = {}
    for arm in lang_arms:
        without = sorted(r.seed for r in runs if r.arm == arm and lang not in r.problems)
        if without:
            entry["seeds_missing"][arm] = without
            empty = [s for s in without if _is_empty(runs, arm, s)]
            why = f" (empty results: seeds {empty})" if empty else ""
            statements.append(
                f"{lang}: {arm} seeds {without} have no {lang} results{why}; {arm} is reported "
                f"over seeds {entry['seeds'][arm]} and compared on the seeds both arms have"
            )
    matrices: dict[str, Matrices] = {}
    for k in ks:
        metric = metric_name(k)
        entry["metrics"][metric], m_matrices, notes = _metric_entry(
            lang, k, lang_runs, lang_arms, task_ids, cmp_opts
        )
        statements += notes
        if m_matrices is not None:
            matrices[metric] = m_matrices
    return entry, matrices, statements


def _run_values(
    counts: Mapping[str, tuple[int, int]], task_ids: Sequence[str], k: int
) -> np.ndarray:
    """One run's per-problem pass@k over ``task_ids``, NaN where it has fewer than k scored
    samples (the unbiased estimator needs n >= k)."""
    out = np.full(len(task_ids), np.nan)
    usable = [i for i, t in enumerate(task_ids) if counts[t][0] >= k]
    out[usable] = per_problem_pass_at_k([counts[task_ids[i]] for i in usable], k)
    return out


def _metric_entry(
    lang: str,
    k: int,
    lang_runs: Sequence[RunResults],
    lang_arms: Sequence[str],
    task_ids: Sequence[str],
    cmp_opts: Mapping[str, Any],
) -> tuple[dict[str, Any], Matrices | None, list[str]]:
    """pass@k of one language: per-arm statistics and the comparisons, with its statements.

    Each run's problem uses that run's own scored samples while it has at least k of them (a
    problem short of k in one run is missing in that run only, not dropped for every arm);
    a run is averaged over its own problems, a comparison over the problems both arms have in
    every compared seed, and the coverage is stated.
    """
    metric = metric_name(k)
    values = {(r.arm, r.seed): _run_values(r.problems[lang], task_ids, k) for r in lang_runs}
    has_value = np.any([np.isfinite(v) for v in values.values()], axis=0)
    used = [t for t, ok in zip(task_ids, has_value, strict=True) if ok]
    short = {
        t: f"fewer than {k} scored samples in every run"
        for t, ok in zip(task_ids, has_value, strict=True)
        if not ok
    }
    m_entry: dict[str, Any] = {"problems": len(used), "dropped_problems": short}
    if not used:
        m_entry["available"] = False
        statement = f"{lang}: {metric} not available (needs >= {k} scored samples per problem)"
        return m_entry, None, [statement]
    statements = []
    partial = {
        f"{arm}/seed{s}": int(np.isfinite(v).sum())
        for (arm, s), v in values.items()
        if np.isfinite(v).sum() < len(used)
    }
    m_entry["runs_with_fewer_problems"] = partial
    if partial:
        listed = ", ".join(f"{run} {n}" for run, n in partial.items())
        statements.append(
            f"{lang}: {metric} over {len(used)} of {len(task_ids)} problems; "
            f"{len(partial)} of {len(values)} runs have >= {k} scored samples on fewer of them "
            f"({listed}): each run is averaged over its own problems, each comparison over the "
            "problems both arms have in every compared seed"
        )
    elif short:
        statements.append(
            f"{lang}: {metric} over {len(used)} of {len(task_ids)} problems "
            f"({len(short)} have fewer than {k} scored samples in every run)"
        )
    m_entry["available"] = True
    m_entry["task_ids"] = used
    keep = np.asarray(has_value)
    matrices: Matrices = {
        arm: {s: v[keep] for (a, s), v in values.items() if a == arm and np.isfinite(v).any()}
        for arm in lang_arms
    }
    matrices = {arm: m for arm, m in matrices.items() if m}
    without = [arm for arm in lang_arms if arm not in matrices]
    if without:
        statements.append(
            f"{lang}: {metric} not available for arms {', '.join(without)} "
            f"(no problem with >= {k} scored samples in any of their runs)"
        )
    m_entry["arms"] = {arm: _arm_stats(matrices[arm]) for arm in matrices}
    m_entry["vs_baseline"] = (
        {a: compare(matrices, BASELINE, a, **cmp_opts) for a in matrices if a != BASELINE}
        if BASELINE in matrices
        else None
    )
    m_entry["cnn_vs_nlu"] = (
        {a: compare(matrices, a, CNN, **cmp_opts) for a in matrices if a in NLU_ARMS}
        if CNN in matrices
        else None
    )
    return m_entry, matrices, statements


def _arm_stats(per_seed_matrix: Mapping[int, np.ndarray]) -> dict[str, Any]:
    """One arm's pass@k: the mean over seeds, their spread and the values behind them (per seed
    and per problem, None where a run lacks the problem), so the seed-to-seed variation is
    visible next to the interval."""
    per_seed = {s: float(np.nanmean(v)) for s, v in sorted(per_seed_matrix.items())}
    values = list(per_seed.values())
    return {
        "mean": float(np.mean(values)),
        "seed_sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        "per_seed": {str(s): v for s, v in per_seed.items()},
        "problems_per_seed": {
            str(s): int(np.isfinite(v).sum()) for s, v in sorted(per_seed_matrix.items())
        },
        "per_problem": {
            str(s): [round(float(x), 6) if np.isfinite(x) else None for x in v]
            for s, v in sorted(per_seed_matrix.items())
        },
    }


def _add_best_nlu_comparisons(
    per_language: Mapping[str, dict[str, Any]],
    matrices: Mapping[str, Mapping[str, Matrices]],
    best: str | None,
    cmp_opts: Mapping[str, Any],
) -> None:
    """Add ``cnn_vs_best_nlu`` to every available metric entry, in place: a separate pass
    because the best NLU arm is chosen over all languages (None where either arm is absent)."""
    for lang, entry in per_language.items():
        for metric, m_matrices in matrices[lang].items():
            entry["metrics"][metric]["cnn_vs_best_nlu"] = (
                compare(m_matrices, best, CNN, **cmp_opts)
                if best in m_matrices and CNN in m_matrices
                else None
            )


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
        key=arm_key,
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
        parts.append(f"{CNN} - {BASELINE} {describe(vs_base)}: CI {vs_base['verdict']}")
        out["vs_baseline"] = vs_base["verdict"]
    else:
        parts.append(f"vs {BASELINE}: {describe(vs_base) if vs_base else 'n/a (no baseline)'}")
    if vs_best and vs_best.get("available"):
        parts.append(f"{CNN} - best NLU arm ({best}) {describe(vs_best)}: CI {vs_best['verdict']}")
        out["vs_best_nlu"] = vs_best["verdict"]
    else:
        parts.append(f"vs best NLU arm: {describe(vs_best) if vs_best else 'n/a'}")
    return {"text": f"{label}, {metric}: " + "; ".join(parts), **out}
