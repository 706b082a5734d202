"""Statistics: pass@k per problem, and paired bootstrap intervals for differences between arms.

pass@k is estimated per problem with codeeval's unbiased estimator (samples with an environment
error left out, as codeeval does) and averaged over problems, then over seeds. Arms are compared
on the same problems, so the comparison is paired: the bootstrap resamples problems once per
replicate and applies the draw to both arms; with several seeds it also resamples seeds (seed i
of one arm is paired with seed i of the other, which share the target-stage seed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from t5x_xfer.codeeval.results import pass_at_k

CONFIDENCE = 0.95


def metric_name(k: int) -> str:
    """The report's key for pass@k, shared by the JSON and the markdown.

    >>> metric_name(10)
    'pass@10'
    """
    return f"pass@{k}"


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
    """A difference of means (b - a) with its interval (crossed t or percentile bootstrap)."""

    diff: float
    low: float
    high: float
    n_seeds: int
    n_problems: int
    n_resamples: int
    confidence: float = CONFIDENCE
    method: str = "bootstrap"  # or "crossed": see crossed_moments
    df: float | None = None  # the crossed interval's Satterthwaite degrees of freedom
    assumed_seed_sd: float | None = None  # one seed: the seed-to-seed sd added by assumption

    @property
    def verdict(self) -> str:
        """Where the interval lies: "above zero", "below zero" or "straddles zero"."""
        if self.low > 0:
            return "above zero"
        if self.high < 0:
            return "below zero"
        return "straddles zero"

    def to_dict(self) -> dict[str, Any]:
        """The fields and the verdict, for the report's JSON."""
        return {**dataclasses.asdict(self), "verdict": self.verdict}


INTERVALS = ("crossed", "bootstrap")
SEED_DF_CAP = 1.5  # the crossed interval's degrees of freedom: at most 1.5 (seeds - 1)


def crossed_moments(d: np.ndarray, seed_sd: float | None = None) -> dict[str, np.ndarray]:
    """Mean, standard error and degrees of freedom of the mean of ``d`` (..., seeds, problems)
    under the crossed random-effects model d[s, j] = effect + seed[s] + problem[j] + noise[s, j].

    Why: a researcher's claim generalises over problems and over training seeds, so both the
    problem-by-arm and the arm-by-seed variation belong in the standard error, each once:
    Var(mean) = var_problem / P + var_seed / S + var_noise / (S P), estimated from the two-way
    mean squares (negative components set to 0) with Satterthwaite's degrees of freedom, at
    most 1.5 (S - 1) when the seed term is in (coverage by simulation:
    benchmarks/interval_coverage.py).
    With one seed var_seed cannot be estimated: the standard error is then that of this
    seed's runs (``seed_sd``, in pass@k units, adds an assumed seed-to-seed standard deviation
    of the difference). Vectorised over leading axes (the coverage benchmark's replicates).

    >>> m = crossed_moments(np.array([[0.1, 0.3, 0.2], [0.2, 0.4, 0.3]]))
    >>> [round(float(m[k]), 4) for k in ("mean", "se", "df")]
    [0.25, 0.0764, 1.5]
    """
    d = np.asarray(d, dtype=np.float64)
    n_seeds, n_problems = d.shape[-2:]
    if n_problems < 2:
        raise ValueError(f"the crossed interval needs at least 2 problems, got {n_problems}")
    mean = d.mean(axis=(-2, -1))
    problem_means = d.mean(axis=-2)
    ms_p = n_seeds * ((problem_means - mean[..., None]) ** 2).sum(-1) / (n_problems - 1)
    cells = n_seeds * n_problems
    if n_seeds == 1:
        var = ms_p / cells
        df = np.full_like(var, n_problems - 1.0)
        if seed_sd:  # an assumed variance known exactly: Satterthwaite with one estimated term
            total = var + seed_sd**2
            with np.errstate(divide="ignore", invalid="ignore"):
                df = np.where(var > 0, df * (total / np.where(var > 0, var, 1)) ** 2, np.inf)
            var = total
        return {"mean": mean, "se": np.sqrt(var), "df": df}
    seed_means = d.mean(axis=-1)
    ms_s = n_problems * ((seed_means - mean[..., None]) ** 2).sum(-1) / (n_seeds - 1)
    resid = d - seed_means[..., :, None] - problem_means[..., None, :] + mean[..., None, None]
    df_e = (n_seeds - 1) * (n_problems - 1)
    ms_e = (resid**2).sum(axis=(-2, -1)) / df_e
    use_p, use_s = ms_p > ms_e, ms_s > ms_e
    # cells * Var(mean) = ms_e + max(ms_p - ms_e, 0) + max(ms_s - ms_e, 0)
    c_e = 1.0 - use_p - use_s
    total = c_e * ms_e + use_p * ms_p + use_s * ms_s
    denom = (
        (c_e * ms_e) ** 2 / df_e
        + (use_p * ms_p) ** 2 / (n_problems - 1)
        + (use_s * ms_s) ** 2 / (n_seeds - 1)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denom > 0, total**2 / np.where(denom > 0, denom, 1), np.inf)
    # Satterthwaite over-states what 3-5 seeds say about the seed term (92.6-93% coverage in
    # benchmarks/interval_coverage.py); the containment value S - 1 is wider than needed: cap
    # between the two.
    df = np.where(use_s, np.minimum(df, SEED_DF_CAP * (n_seeds - 1)), df)
    return {"mean": mean, "se": np.sqrt(np.maximum(total, 0) / cells), "df": df}


def crossed_interval(
    a: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    b: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    seed_sd: float | None = None,
) -> Interval:
    """Mean of b - a with a 95% t interval from :func:`crossed_moments` (the report's default).

    ``a`` and ``b`` as for :func:`paired_bootstrap`. The interval is the estimate +- t * SE and
    always contains it; when every difference is equal it is that single point.

    >>> r = crossed_interval([0.0, 0.2, 0.5, 0.1], [0.1, 0.3, 0.6, 0.2])  # +0.1 on every problem
    >>> (round(r.diff, 6), round(r.low, 6), round(r.high, 6), r.verdict)
    (0.1, 0.1, 0.1, 'above zero')
    """
    from scipy import stats as scipy_stats

    a_arr, b_arr = _paired(a, b, "crossed_interval")
    if not (np.isfinite(a_arr).all() and np.isfinite(b_arr).all()):
        raise ValueError("crossed_interval: a and b must be finite")
    if seed_sd is not None and seed_sd < 0:
        raise ValueError(f"seed_sd must be >= 0, got {seed_sd}")
    if a_arr.shape[1] < 2:
        raise ValueError(f"the crossed interval needs at least 2 problems, got {a_arr.shape[1]}")
    d = b_arr - a_arr
    if np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):  # one value: no spread at all
        diff = float(d.mean())
        if not seed_sd or d.shape[0] > 1:
            return Interval(diff, diff, diff, *d.shape, n_resamples=0, method="crossed", df=None)
    m = crossed_moments(d, seed_sd=seed_sd if d.shape[0] == 1 else None)
    diff, se, df = float(m["mean"]), float(m["se"]), float(m["df"])
    half = float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * se if se > 0 else 0.0
    return Interval(
        diff=diff,
        low=diff - half,
        high=diff + half,
        n_seeds=d.shape[0],
        n_problems=d.shape[1],
        n_resamples=0,
        method="crossed",
        df=round(df, 3) if np.isfinite(df) else None,
        assumed_seed_sd=seed_sd if d.shape[0] == 1 else None,
    )


def _paired(a: Any, b: Any, who: str) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` as (seeds, problems) float arrays of one shape, else an error naming who."""
    a_arr = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b_arr = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a_arr.ndim != 2 or a_arr.shape != b_arr.shape:
        raise ValueError(
            f"{who} needs a and b of the same shape (problems,) or (seeds, problems); "
            f"got {np.shape(a)} and {np.shape(b)}"
        )
    return a_arr, b_arr


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
    a_arr, b_arr = _paired(a, b, "paired_bootstrap")
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
    diff = float(d.mean())
    return Interval(  # the replicates' sums round differently from d.mean(): keep diff inside
        diff=diff,
        low=min(float(low), diff),
        high=max(float(high), diff),
        n_seeds=n_seeds,
        n_problems=n_problems,
        n_resamples=n_resamples,
    )


def compare(
    matrices: Mapping[str, Mapping[int, np.ndarray]],
    a: str,
    b: str,
    *,
    n_resamples: int,
    seed: int,
    interval: str = "crossed",
    seed_sd: float | None = None,
) -> dict[str, Any]:
    """b - a on the seeds both arms have (paired by seed number), as a JSON-able dict.

    ``matrices[arm][seed]`` is that run's per-problem pass@k, NaN where the run has fewer than
    k scored samples of a problem. Seeds only one arm has cannot be paired: they are left out
    with a note rather than failing the comparison. Problems missing in any compared run are
    left out of this comparison only (counted in ``problems_left_out``), so both arms are
    averaged over the same problems and seeds. ``interval``: "crossed" (:func:`crossed_interval`,
    ``seed_sd`` its assumed seed-to-seed sd with one seed) or "bootstrap" (the paired
    hierarchical bootstrap, :func:`paired_bootstrap`).
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval {interval!r} unknown; allowed: {list(INTERVALS)}")
    seeds = sorted(set(matrices[a]) & set(matrices[b]))
    if not seeds:
        return {
            "a": a,
            "b": b,
            "available": False,
            "reason": f"{a} (seeds {sorted(matrices[a])}) and {b} (seeds {sorted(matrices[b])}) "
            "share no seed",
        }
    a_mat = np.stack([matrices[a][s] for s in seeds])
    b_mat = np.stack([matrices[b][s] for s in seeds])
    complete = np.isfinite(a_mat).all(axis=0) & np.isfinite(b_mat).all(axis=0)
    needed = 2 if interval == "crossed" else 1
    if complete.sum() < needed:
        return {
            "a": a,
            "b": b,
            "available": False,
            "reason": f"{int(complete.sum())} problems have a value in every run of {a} and {b} "
            f"(seeds {seeds}); the {interval} interval needs {needed}",
        }
    if interval == "crossed":
        result = crossed_interval(a_mat[:, complete], b_mat[:, complete], seed_sd=seed_sd)
    else:
        result = paired_bootstrap(
            a_mat[:, complete], b_mat[:, complete], n_resamples=n_resamples, seed=seed
        )
    out = {"a": a, "b": b, "available": True, "seeds": seeds, **result.to_dict()}
    left_out = int((~complete).sum())
    if left_out:
        out["problems_left_out"] = left_out
    dropped = sorted(set(matrices[a]) ^ set(matrices[b]))
    if dropped:
        out["note"] = f"only the shared seeds {seeds} are compared (seeds {dropped} unpaired)"
    return out
