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
        """The fields and the verdict, for the report's JSON."""
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
) -> dict[str, Any]:
    """b - a on the seeds both arms have (paired by seed number), as a JSON-able dict.

    ``matrices[arm][seed]`` is that run's per-problem pass@k, NaN where the run has fewer than
    k scored samples of a problem. Seeds only one arm has cannot be paired: they are left out
    with a note rather than failing the comparison. Problems missing in any compared run are
    left out of this comparison only (counted in ``problems_left_out``), so both arms are
    averaged over the same problems and seeds.
    """
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
    if not complete.any():
        return {
            "a": a,
            "b": b,
            "available": False,
            "reason": f"no problem has a value in every run of {a} and {b} (seeds {seeds})",
        }
    interval = paired_bootstrap(
        a_mat[:, complete], b_mat[:, complete], n_resamples=n_resamples, seed=seed
    )
    out = {"a": a, "b": b, "available": True, "seeds": seeds, **interval.to_dict()}
    left_out = int((~complete).sum())
    if left_out:
        out["problems_left_out"] = left_out
    dropped = sorted(set(matrices[a]) ^ set(matrices[b]))
    if dropped:
        out["note"] = f"only the shared seeds {seeds} are compared (seeds {dropped} unpaired)"
    return out
