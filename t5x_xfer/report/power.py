"""Power before the grid runs: the smallest difference in pass@1 between two arms that the
report's crossed interval detects (excludes zero) with 80% probability at the 5% level, per
language, for the grid's seeds, samples and problems.

The difference of arm B and arm A on problem j in seed s is modelled as
``delta + u[s] + e[s, j]``: ``u`` the arm-by-seed effect (two runs' seed effects:
variance 2 run_sd^2), ``e`` the per-problem noise of two runs (variance 2 noise_var: the
binomial noise of the samples plus which problems a retrained model happens to solve). The
effect is assumed equal on every problem (effects that vary between problems need more), and
the two arms' runs of one seed independent (runs sharing a target-stage seed may be correlated,
which would help). The variances come from assumptions (a pass rate through a logit-normal
model of problem difficulty, and a seed-to-seed sd) or from a pilot: evaluate_code outputs of
one arm (two or more seeds separate the seed effect from the noise).

The minimum detectable difference is found by simulating the report's own interval
(:func:`t5x_xfer.report.stats.crossed_moments`) under this model, so the degrees of freedom it
uses with few seeds are accounted for; :func:`mdd_closed_form` is the normal-theory value
(non-central t) it is tested against.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from t5x_xfer.report.stats import CONFIDENCE, crossed_moments

POWER = 0.80
ALPHA = 1 - CONFIDENCE
# Logit-normal problem difficulty when no pilot is given: HumanEval-like, most problems near
# 0 or 1 (a model solves a problem almost always or almost never).
DIFFICULTY_SD = 2.0
RUN_PROBLEM_SD = 0.5  # logit sd of a problem's pass rate between retrained runs
DEFAULT_PASS_RATE = 0.2
DEFAULT_SEED_SD = 0.01  # sd of a run's pass@1 between seeds (1 pp)


@dataclasses.dataclass(frozen=True)
class Components:
    """One arm's variances in pass@1 units: ``run_sd`` (a run's mean pass@1 between seeds),
    ``noise_var`` (a problem's pass@1 in one run around its mean over runs, for the grid's
    samples per problem), with where they came from."""

    pass_rate: float
    run_sd: float
    noise_var: float
    source: str


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def assumed_components(
    pass_rate: float,
    seed_sd: float,
    samples: int,
    *,
    difficulty_sd: float = DIFFICULTY_SD,
    run_problem_sd: float = RUN_PROBLEM_SD,
    draws: int = 20_000,
) -> Components:
    """Components from an assumed mean pass@1: problem logits ~ N(m, difficulty_sd^2) with m
    chosen so the mean pass rate is ``pass_rate``, a run's per-problem logit off by
    N(0, run_problem_sd^2), ``samples`` samples per problem (deterministic draws).

    >>> c = assumed_components(0.2, 0.01, 20)
    >>> round(c.pass_rate, 3), round(c.noise_var, 4)
    (0.2, 0.0094)
    """
    if not 0 < pass_rate < 1:
        raise ValueError(f"pass rate must be in (0, 1), got {pass_rate}")
    from scipy import stats as scipy_stats

    rng = np.random.default_rng(0)
    z = rng.standard_normal((draws, 1))
    v = scipy_stats.norm.ppf((np.arange(32) + 0.5) / 32)[None, :]  # runs: quantiles
    lo, hi = -20.0, 20.0
    for _ in range(50):  # the mean logit giving the pass rate over problems and runs (monotone)
        mid = (lo + hi) / 2
        rate = _expit(mid + difficulty_sd * z + run_problem_sd * v).mean()
        lo, hi = (mid, hi) if rate < pass_rate else (lo, mid)
    p_run = _expit((lo + hi) / 2 + difficulty_sd * z + run_problem_sd * v)
    between_runs = float(p_run.var(axis=1).mean())  # a problem's rate between runs
    binomial = float(np.mean(p_run * (1 - p_run))) / samples
    return Components(
        pass_rate=float(p_run.mean()),
        run_sd=seed_sd,
        noise_var=between_runs + binomial,
        source=f"assumed: pass@1 {100 * pass_rate:.1f}%, seed sd {100 * seed_sd:.2f} pp, "
        f"problem logit sd {difficulty_sd}, run-to-run logit sd {run_problem_sd}",
    )


def pilot_components(
    counts: Sequence[Mapping[str, tuple[int, int]]],
    samples: int,
    seed_sd: float | None = None,
) -> Components:
    """Components from a pilot: one arm's runs (one per seed) of one language, each
    ``{task_id: (n, c)}``. With two or more runs the two-way mean squares give the seed sd and
    the per-problem noise; the binomial part is rescaled from the pilot's samples to the
    grid's ``samples``. One run gives only the binomial part (a lower bound, stated) and needs
    ``seed_sd``.
    """
    if not counts:
        raise ValueError("a pilot needs at least one run")
    common = sorted(set.intersection(*(set(c) for c in counts)))
    common = [t for t in common if all(run[t][0] >= 2 for run in counts)]
    if len(common) < 2:
        raise ValueError(f"the pilot's runs share {len(common)} problems with >= 2 samples")
    n = np.array([[run[t][0] for t in common] for run in counts], dtype=np.float64)
    c = np.array([[run[t][1] for t in common] for run in counts], dtype=np.float64)
    x = c / n
    # unbiased per-problem binomial variance of one run's pass@1: p(1-p)/n
    binom_pilot = x * (1 - x) / (n - 1)
    binom_grid = float(np.mean(x * (1 - x) * n / (n - 1))) / samples
    runs, problems = x.shape
    if runs == 1:
        if seed_sd is None:
            raise ValueError("a pilot of one run cannot estimate the seed sd: give --seed_sd")
        return Components(
            pass_rate=float(x.mean()),
            run_sd=seed_sd,
            noise_var=binom_grid,
            source=f"pilot: 1 run, {problems} problems (binomial noise only: a lower bound, "
            f"retrained runs also differ per problem); seed sd {100 * seed_sd:.2f} pp assumed",
        )
    m = x.mean()
    ms_s = problems * ((x.mean(1) - m) ** 2).sum() / (runs - 1)
    resid = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + m
    ms_e = (resid**2).sum() / ((runs - 1) * (problems - 1))
    run_problem = max(ms_e - float(binom_pilot.mean()), 0.0)
    run_sd = float(np.sqrt(max(ms_s - ms_e, 0.0) / problems)) if seed_sd is None else seed_sd
    how = "estimated" if seed_sd is None else "assumed"
    return Components(
        pass_rate=float(m),
        run_sd=run_sd,
        noise_var=run_problem + binom_grid,
        source=f"pilot: {runs} runs x {problems} problems; seed sd {100 * run_sd:.2f} pp {how}",
    )


def mdd_simulated(
    comp: Components, seeds: int, problems: int, *, reps: int = 4000, seed: int = 0
) -> float:
    """The smallest difference whose crossed interval excludes zero in ``POWER`` of
    simulated grids (common random numbers: the null draws shifted by the difference)."""
    from scipy import stats as scipy_stats

    rng = np.random.default_rng(seed)
    u = rng.normal(0, np.sqrt(2) * comp.run_sd, (reps, seeds, 1))
    e = rng.normal(0, np.sqrt(2 * comp.noise_var), (reps, seeds, problems))
    # one seed: the report can only count the seed sd as assumed (--seed_sd)
    m = crossed_moments(u + e, seed_sd=np.sqrt(2) * comp.run_sd if seeds == 1 else None)
    half = scipy_stats.t.ppf(1 - ALPHA / 2, m["df"]) * m["se"]
    mean = m["mean"]

    def power(delta: float) -> float:
        return float(np.mean(np.abs(mean + delta) > half))

    lo, hi = 0.0, 1.0
    if power(hi) < POWER:
        return float("inf")
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if power(mid) < POWER else (lo, mid)
    return hi


def mdd_closed_form(comp: Components, seeds: int, problems: int) -> float:
    """Normal theory: the difference at which a two-sided t test with the interval's expected
    standard error and degrees of freedom (Satterthwaite on the expected mean squares, capped
    as the report caps them) has ``POWER`` (non-central t)."""
    from scipy import optimize
    from scipy import stats as scipy_stats

    from t5x_xfer.report.stats import SEED_DF_CAP

    var_s, var_e = 2 * comp.run_sd**2, 2 * comp.noise_var
    se = np.sqrt(var_s / seeds + var_e / (seeds * problems))
    if seeds == 1:  # the assumed seed variance is known exactly: Satterthwaite
        df = (problems - 1.0) * (se**2 / (var_e / problems)) ** 2
    elif var_s == 0:  # the seed term is 0 in expectation: the problem mean square alone
        df = problems - 1.0
    else:
        ms_p, ms_s = var_e, var_e + problems * var_s  # expected mean squares (no problem term)
        df = (ms_p + ms_s - var_e) ** 2 / (
            ms_p**2 / (problems - 1)
            + ms_s**2 / (seeds - 1)
            + var_e**2 / ((seeds - 1) * (problems - 1))
        )
        df = min(df, SEED_DF_CAP * (seeds - 1))
    crit = scipy_stats.t.ppf(1 - ALPHA / 2, df)

    def shortfall(delta: float) -> float:
        nc = delta / se
        power = scipy_stats.nct.sf(crit, df, nc) + scipy_stats.nct.cdf(-crit, df, nc)
        return (power if np.isfinite(power) else 1.0) - POWER  # NaN only far in the tail

    return float(optimize.brentq(shortfall, 0.0, se * (4 * crit + 10)))


def load_pilot(dirs: Sequence[Path]) -> dict[str, list[dict[str, tuple[int, int]]]]:
    """Per language, each pilot run's ``{task_id: (n, c)}`` (environment errors left out)."""
    from t5x_xfer.report.load import load_run

    out: dict[str, list[dict[str, tuple[int, int]]]] = {}
    for i, d in enumerate(dirs):
        run = load_run(Path(d), arm="pilot", seed=i)
        for lang, problems in run.problems.items():
            out.setdefault(lang, []).append(problems)
    return out


def power_table(
    *,
    languages: Sequence[str],
    seeds: int,
    samples: int,
    problems: int | Mapping[str, int],
    pass_rates: Mapping[str, float] | None = None,
    seed_sd: float | None = None,
    pilot: Sequence[Path] = (),
) -> dict[str, Any]:
    """Per language: the components used, the minimum detectable difference (simulated and
    closed form), and the assumptions, as a JSON-able dict."""
    if seeds < 1 or samples < 1:
        raise ValueError(f"seeds and samples must be >= 1, got {seeds} and {samples}")
    pilot_runs = load_pilot(pilot) if pilot else {}
    rows = {}
    for lang in languages:
        n_problems = problems[lang] if isinstance(problems, Mapping) else problems
        if lang in pilot_runs:
            comp = pilot_components(pilot_runs[lang], samples, seed_sd)
        else:
            rate = (pass_rates or {}).get(lang, DEFAULT_PASS_RATE)
            sd = DEFAULT_SEED_SD if seed_sd is None else seed_sd
            comp = assumed_components(rate, sd, samples)
            if pilot:
                comp = dataclasses.replace(comp, source=f"{comp.source} (no pilot results)")
        rows[lang] = {
            **dataclasses.asdict(comp),
            "problems": n_problems,
            "mdd": mdd_simulated(comp, seeds, n_problems),
            "mdd_closed_form": mdd_closed_form(comp, seeds, n_problems),
        }
    notes = []
    if pilot and seed_sd is None:
        notes.append(
            f"a seed sd estimated from a pilot of {len(pilot)} runs has {len(pilot) - 1} degrees "
            "of freedom and is uncertain: compare the table with --seed_sd values"
        )
    return {
        "seeds": seeds,
        "samples": samples,
        "power": POWER,
        "level": ALPHA,
        "languages": rows,
        "assumptions": [
            f"two-sided test at the {ALPHA:.0%} level with {POWER:.0%} power: the report's "
            "crossed interval excludes zero",
            "one comparison of two arms (no correction for the dozen comparisons per language)",
            "the difference is the same on every problem; effects that vary between problems "
            "need more",
            "the two arms' runs of one seed are independent (shared target-stage seeds that "
            "correlate them would help)",
            "with one seed the report's interval is about those runs only: the detectable "
            "difference counts the seed sd as the report does with --seed_sd",
            *notes,
        ],
    }


def parse_pass_rates(values: Sequence[str], languages: Sequence[str]) -> dict[str, float]:
    """``--pass_rate`` values: one rate for every language, and/or ``language=rate`` pairs.

    >>> parse_pass_rates(["0.2", "python=0.4"], ["python", "go"])
    {'python': 0.4, 'go': 0.2}
    >>> parse_pass_rates(["rust=2"], ["rust"])
    Traceback (most recent call last):
    ...
    ValueError: --pass_rate rust=2: the rate must be a number in (0, 1); e.g. 0.2 or python=0.35
    """
    rates: dict[str, float] = {}
    default = DEFAULT_PASS_RATE
    for value in values:
        lang, _, rate = value.rpartition("=")
        try:
            number = float(rate)
        except ValueError:
            number = -1.0
        if not 0 < number < 1:
            raise ValueError(
                f"--pass_rate {value}: the rate must be a number in (0, 1); e.g. 0.2 or python=0.35"
            )
        if lang and lang not in languages:
            raise ValueError(f"--pass_rate {value}: {lang!r} is not one of {list(languages)}")
        if lang:
            rates[lang] = number
        else:
            default = number
    return {lang: rates.get(lang, default) for lang in languages}


def format_power(table: Mapping[str, Any], grid_name: str) -> str:
    """The table as text: one line per language, then the assumptions."""
    lines = [
        f"power of grid {grid_name}: minimum detectable difference in pass@1 between two arms "
        f"({table['seeds']} seeds, {table['samples']} samples per problem, "
        f"{table['level']:.0%} level, {table['power']:.0%} power)",
        "",
        f"{'language':<10} {'problems':>8} {'pass@1':>7} {'seed sd':>8} {'noise sd':>9} "
        f"{'MDD (pp)':>9}  source",
    ]
    for lang, r in table["languages"].items():
        lines.append(
            f"{lang:<10} {r['problems']:>8} {100 * r['pass_rate']:>6.1f}% "
            f"{100 * r['run_sd']:>6.2f}pp {100 * np.sqrt(r['noise_var']):>7.2f}pp "
            f"{100 * r['mdd']:>9.2f}  {r['source']}"
        )
    lines += [
        "",
        "seed sd: a run's pass@1 between seeds; noise sd: a problem's pass@1 in one run around "
        "its mean over runs (samples and retraining); MDD: simulated with the report's crossed "
        "interval (mdd_closed_form in t5x_xfer.report.power is the normal-theory value).",
    ]
    lines += ["", "assumptions:", *(f"- {a}" for a in table["assumptions"])]
    return "\n".join(lines)
