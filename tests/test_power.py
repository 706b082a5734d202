"""Power before the grid runs: the minimum detectable difference against normal theory and an
independent simulation, components from assumptions and from a pilot, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from t5x_xfer import experiments
from t5x_xfer.report import power as P
from t5x_xfer.report.stats import crossed_interval

FULL = "gin/experiments/grid_codet5p_220m.gin"


@pytest.mark.parametrize(
    ("seeds", "problems", "seed_sd"),
    [(1, 164, 0.0), (1, 40, 0.01), (3, 164, 0.01), (3, 40, 0.03), (5, 164, 0.01)],
)
def test_mdd_agrees_with_normal_theory(seeds: int, problems: int, seed_sd: float) -> None:
    # Where the seed term is either absent (one seed, known sd) or clearly present, the
    # simulated MDD of the report's interval is the non-central t value.
    comp = P.assumed_components(0.2, seed_sd, 20)
    sim = P.mdd_simulated(comp, seeds, problems)
    closed = P.mdd_closed_form(comp, seeds, problems)
    assert sim == pytest.approx(closed, rel=0.08), (sim, closed)


def test_mdd_has_80_percent_power_in_an_independent_simulation() -> None:
    comp = P.Components(pass_rate=0.2, run_sd=0.01, noise_var=0.012, source="test")
    mdd = P.mdd_simulated(comp, 3, 80)
    rng = np.random.default_rng(99)  # fresh draws, through the report's own interval
    rejected = 0
    for _ in range(1500):
        u = rng.normal(0, np.sqrt(2) * comp.run_sd, (3, 1))
        d = mdd + u + rng.normal(0, np.sqrt(2 * comp.noise_var), (3, 80))
        rejected += crossed_interval(np.zeros_like(d), d).verdict != "straddles zero"
    assert 0.765 <= rejected / 1500 <= 0.835  # 80% +- 3.4 Monte Carlo SE
    assert P.mdd_simulated(comp, 5, 80) < mdd < P.mdd_simulated(comp, 3, 20)


def test_more_noise_or_seed_variance_needs_a_larger_difference() -> None:
    base = P.assumed_components(0.2, 0.01, 20)
    assert P.assumed_components(0.2, 0.02, 20).run_sd == 0.02
    noisy = P.assumed_components(0.2, 0.01, 2)  # 2 samples per problem: more binomial noise
    assert noisy.noise_var > base.noise_var
    assert P.mdd_simulated(noisy, 3, 164) > P.mdd_simulated(base, 3, 164)
    seedy = P.assumed_components(0.2, 0.03, 20)
    assert P.mdd_simulated(seedy, 3, 164) > 2 * P.mdd_simulated(base, 3, 164)
    with pytest.raises(ValueError, match=r"pass rate must be in \(0, 1\), got 1.5"):
        P.assumed_components(1.5, 0.01, 20)


def _pilot_counts(rng, runs: int, run_sd: float, problems: int = 400, n: int = 20):
    p = rng.beta(0.5, 1.5, size=problems)
    out = []
    for _ in range(runs):
        rate = np.clip(p + rng.normal(0, run_sd), 0, 1)
        c = rng.binomial(n, rate)
        out.append({f"Python/{j}": (n, int(c[j])) for j in range(problems)})
    return out, p


def test_pilot_components_recover_the_seed_sd_and_the_binomial_noise() -> None:
    rng = np.random.default_rng(5)
    counts, p = _pilot_counts(rng, runs=30, run_sd=0.02)
    comp = P.pilot_components(counts, samples=20)
    assert comp.run_sd == pytest.approx(0.02, rel=0.3)
    binomial = float(np.mean(p * (1 - p))) / 20  # no run-by-problem term in this pilot
    assert comp.noise_var == pytest.approx(binomial, rel=0.1)
    # the binomial part is rescaled to the grid's samples per problem
    assert P.pilot_components(counts, samples=5).noise_var == pytest.approx(
        4 * comp.noise_var, rel=0.1
    )
    one = P.pilot_components(counts[:1], samples=20, seed_sd=0.015)
    assert one.run_sd == 0.015 and "binomial noise only" in one.source
    with pytest.raises(ValueError, match="cannot estimate the seed sd: give --seed_sd"):
        P.pilot_components(counts[:1], samples=20)


def _write_pilot(root: Path, counts: list[dict[str, tuple[int, int]]]) -> list[str]:
    dirs = []
    for s, run in enumerate(counts):
        out = root / f"seed{s}" / "eval"
        out.mkdir(parents=True)
        rows = [
            {"task_id": t, "language": "python", "status": st, "passed": st == "passed"}
            for t, (n, c) in run.items()
            for st in ["passed"] * c + ["failed"] * (n - c)
        ]
        (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        dirs.append(str(out))
    return dirs


def test_plan_power_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--grid", FULL, "--power", "--pass_rate", "0.1", "python=0.4"]
    assert experiments.main([*argv, "--seed_sd", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "3 seeds, 20 samples per problem, 5% level, 80% power" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if " 164 " in line}
    assert sorted(rows) == ["cpp", "go", "java", "js", "python", "rust"]
    assert rows["python"][2] == "40.0%" and rows["go"][2] == "10.0%"
    assert "seed sd 1.50 pp" in out and "assumptions:" in out and "independent" in out
    # a pilot of one arm's runs replaces the assumptions for its languages
    rng = np.random.default_rng(3)
    counts, _ = _pilot_counts(rng, runs=3, run_sd=0.01, problems=60)
    dirs = _write_pilot(tmp_path, counts)
    assert experiments.main(["plan", "--grid", FULL, "--power", "--pilot", *dirs]) == 0
    out = capsys.readouterr().out
    assert "pilot: 3 runs x 60 problems; seed sd" in out and "estimated" in out
    assert "(no pilot results)" in out  # the other languages fall back to the assumptions
    assert "pilot of 3 runs has 2 degrees of freedom" in out


def test_plan_power_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["plan", "--grid", FULL, "--power"]
    assert experiments.main([*base, "--pass_rate", "python=2"]) == 2
    assert "--pass_rate python=2: the rate must be a number in (0, 1)" in capsys.readouterr().err
    assert experiments.main([*base, "--pass_rate", "cobol=0.2"]) == 2
    assert "'cobol' is not one of" in capsys.readouterr().err
    assert experiments.main([*base, "--pilot", str(tmp_path)]) == 2
    assert "no results.jsonl" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        experiments.main([*base, "--seed_sd", "-2"])
    assert "--seed_sd must be in [0, 100] pp, got -2.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        experiments.main(["plan", "--grid", FULL, "--pass_rate", "0.2"])
    assert "--pass_rate is a --power flag" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        experiments.main(["status", "--grid", FULL, "--power"])
    assert "--power goes with plan, not status" in capsys.readouterr().err
