"""The research report: pass@k from evaluate_code rows, paired bootstrap, verdicts, files, errors.

Experiments are synthetic: per-problem (n, c) written as evaluate_code results.jsonl rows, so
every expected number is known by construction.
"""

from __future__ import annotations

import doctest
import importlib
import json
import math
import pkgutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from t5x_xfer import arms
from t5x_xfer import report as R
from t5x_xfer.codeeval.languages import LANGUAGES

PREFIX = {name: lang.task_prefix for name, lang in LANGUAGES.items()}


def write_eval(
    root: Path,
    arm: str,
    seed: int,
    counts: dict[str, Sequence[tuple[int, int]]],
    *,
    env_errors: dict[str, int] | None = None,
    tier: str = "bwrap+uid",
) -> Path:
    """An evaluate_code output dir: per language, problem i gets n samples of which c pass
    (plus ``env_errors[lang]`` environment-error samples on problem 0)."""
    out = root / arm / f"seed{seed}" / "eval"
    out.mkdir(parents=True)
    rows = []
    for lang, per_problem in counts.items():
        for i, (n, c) in enumerate(per_problem):
            statuses = ["passed"] * c + ["failed"] * (n - c)
            if i == 0:
                statuses += ["environment_error"] * (env_errors or {}).get(lang, 0)
            for j, status in enumerate(statuses):
                rows.append(
                    {
                        "task_id": f"{PREFIX[lang]}/{i}",
                        "language": lang,
                        "sample": j,
                        "status": status,
                        "passed": status == "passed",
                        "known_defect": None,
                    }
                )
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "summary.json").write_text(json.dumps({"sandbox": {"tier": tier, "detail": "test"}}))
    return out


def random_counts(rng: np.random.Generator, p: np.ndarray, n: int) -> list[tuple[int, int]]:
    return [(n, int(c)) for c in rng.binomial(n, p)]


def test_doctests() -> None:
    modules = [R, arms] + [
        importlib.import_module(f"{R.__name__}.{m.name}")
        for m in pkgutil.iter_modules(R.__path__)
        if m.name != "__main__"
    ]
    assert len(modules) >= 7
    for module in modules:
        assert doctest.testmod(module).failed == 0, module.__name__


def test_import_is_light() -> None:
    # The report reads JSONL and does arithmetic: importing it must not pull seqio, TensorFlow or
    # JAX (seconds of import and TensorFlow log lines on every report).
    code = (
        "import sys, t5x_xfer.report; "
        "print(sorted(m for m in ('tensorflow', 'seqio', 'jax') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    cli = [sys.executable, "-m", "t5x_xfer.report", "--help"]
    done = subprocess.run(cli, capture_output=True, text=True, check=True)
    assert "python -m t5x_xfer.report" in done.stdout and "--exclude_known_defects" in done.stdout


def test_writing_a_report_does_not_import_tensorflow(tmp_path: Path) -> None:
    # A whole report, plots included, from the CLI: the arm names come from t5x_xfer.arms,
    # not the task registry (which would import TensorFlow: seconds and log lines per run).
    for arm in ("baseline", "mnli", "cnn_dailymail"):
        write_eval(tmp_path, arm, 0, {"python": [(10, 3), (10, 0), (10, 9)]})
    code = (
        "import sys; from t5x_xfer.report import main; "
        f"rc = main(['--root', {str(tmp_path)!r}, '--out', {str(tmp_path / 'out')!r}]); "
        "print(rc, sorted(m for m in ('tensorflow', 'seqio', 'jax') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stdout + done.stderr
    assert (tmp_path / "out" / "pass_at_1_python.png").is_file()


def test_pass_at_k_against_hand_computed(tmp_path: Path) -> None:
    # n = 12 per problem, c = 0, 1, 12. pass@1 = c/n; pass@10 = 1 - C(n-c,10)/C(n,10):
    # c=1: 1 - C(11,10)/C(12,10) = 1 - 11/66 = 5/6; c=12: 1.
    write_eval(tmp_path, "baseline", 0, {"python": [(12, 0), (12, 1), (12, 12)]})
    rep = R.write_report(tmp_path, tmp_path / "out", n_resamples=200)
    m = rep["per_language"]["python"]["metrics"]
    assert m["pass@1"]["arms"]["baseline"]["mean"] == pytest.approx((0 + 1 / 12 + 1) / 3)
    assert m["pass@10"]["arms"]["baseline"]["mean"] == pytest.approx((0 + 5 / 6 + 1) / 3)
    assert m["pass@10"]["arms"]["baseline"]["per_problem"]["0"] == pytest.approx(
        [0.0, 5 / 6, 1.0], abs=1e-6
    )
    assert math.comb(11, 10) / math.comb(12, 10) == pytest.approx(1 / 6)


def test_per_problem_matches_codeeval_estimator() -> None:
    got = R.per_problem_pass_at_k([(5, 2), (20, 0), (10, 3)], 1)
    np.testing.assert_allclose(got, [0.4, 0.0, 0.3])
    with pytest.raises(ValueError, match="needs at least 10"):
        R.per_problem_pass_at_k([(5, 2)], 10)


def test_better_arm_interval_above_zero_identical_straddles(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.0, 0.6, size=40)
    langs = ("python", "cpp")
    for s in (0, 1):
        base = {lang: random_counts(rng, p, 10) for lang in langs}
        write_eval(tmp_path, "baseline", s, base)
        write_eval(tmp_path, "mnli", s, base)  # identical to the baseline
        better = {lang: random_counts(rng, np.minimum(p + 0.3, 1.0), 10) for lang in langs}
        write_eval(tmp_path, "cnn_dailymail", s, better)
        write_eval(tmp_path, "qqp", s, {lang: random_counts(rng, p * 0.5, 10) for lang in langs})
    rep = R.write_report(tmp_path, tmp_path / "out", n_resamples=2000)
    for lang in langs:
        m = rep["per_language"][lang]["metrics"]["pass@1"]
        cnn = m["vs_baseline"]["cnn_dailymail"]
        assert cnn["verdict"] == "above zero" and cnn["low"] > 0
        assert cnn["seeds"] == [0, 1] and cnn["n_seeds"] == 2 and cnn["n_problems"] == 40
        same = m["vs_baseline"]["mnli"]
        assert same["diff"] == 0.0 and same["low"] <= 0.0 <= same["high"]
        assert same["verdict"] == "straddles zero"
        assert m["vs_baseline"]["qqp"]["verdict"] == "below zero"
        assert m["cnn_vs_nlu"]["qqp"]["low"] > 0  # cnn - qqp
        assert m["cnn_vs_best_nlu"]["a"] == "mnli"
        verdict = rep["per_language"][lang]["verdict"]
        assert verdict["vs_baseline"] == "above zero" and verdict["vs_best_nlu"] == "above zero"
    assert rep["best_nlu"]["arm"] == "mnli"
    assert "target language" in rep["per_language"]["python"]["verdict"]["text"]
    # pass@10 is reported too (n = 10 per problem) and compared the same way
    assert rep["per_language"]["cpp"]["metrics"]["pass@10"]["vs_baseline"]["mnli"]["diff"] == 0


def test_paired_bootstrap_identical_and_shuffled() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(size=100)
    r = R.paired_bootstrap(a, a.copy(), n_resamples=500)
    assert (r.diff, r.low, r.high, r.verdict) == (0.0, 0.0, 0.0, "straddles zero")
    # Same values on other problems: equal means, but per-problem differences are noise.
    r = R.paired_bootstrap(a, rng.permutation(a), n_resamples=2000)
    assert r.diff == pytest.approx(0.0, abs=1e-12)
    assert r.low < 0 < r.high and r.verdict == "straddles zero"


def test_paired_bootstrap_pairs_problems() -> None:
    # Huge between-problem spread, a constant +0.05 gain: pairing makes the interval tight.
    rng = np.random.default_rng(0)
    a = rng.choice([0.0, 1.0], size=200) * 0.9
    b = a + 0.05 + rng.normal(0, 0.01, size=200)
    r = R.paired_bootstrap(a, b, n_resamples=2000)
    assert r.verdict == "above zero"
    assert 0.04 < r.low < r.diff < r.high < 0.06
    assert R.paired_bootstrap(b, a, n_resamples=2000).verdict == "below zero"


def test_paired_bootstrap_is_deterministic() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.uniform(size=(3, 30)), rng.uniform(size=(3, 30))
    assert R.paired_bootstrap(a, b, seed=7) == R.paired_bootstrap(a, b, seed=7)
    assert R.paired_bootstrap(a, b, seed=7) != R.paired_bootstrap(a, b, seed=8)


def test_paired_bootstrap_resamples_seeds() -> None:
    # The difference varies only between seeds: problem resampling alone sees no uncertainty.
    effects = np.array([0.3, -0.2, 0.1, 0.0, -0.15])
    a = np.zeros((5, 50))
    b = a + effects[:, None]
    for s in range(5):
        one = R.paired_bootstrap(a[s], b[s], n_resamples=1000)
        assert one.low == pytest.approx(one.high) == pytest.approx(effects[s])
    r = R.paired_bootstrap(a, b, n_resamples=4000)
    assert r.n_seeds == 5 and r.diff == pytest.approx(effects.mean())
    # bootstrap SE of a mean of 5 values with sd ~0.2: ~0.08, so the 95% width is ~0.3
    assert 0.2 < r.high - r.low < 0.5 and r.low < r.diff < r.high
    assert r.verdict == "straddles zero"


def test_paired_bootstrap_shares_the_problem_draw_across_seeds() -> None:
    # The difference varies only between problems, identically in every seed: more seeds add no
    # information, so the interval must not narrow (it would if each seed drew its own problems).
    rng = np.random.default_rng(5)
    d = rng.normal(0.02, 0.2, size=60)
    one = R.paired_bootstrap(np.zeros(60), d, n_resamples=3000)
    four = R.paired_bootstrap(np.zeros((4, 60)), np.tile(d, (4, 1)), n_resamples=3000)
    assert four.high - four.low == pytest.approx(one.high - one.low, rel=1e-9)


def test_paired_bootstrap_errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        R.paired_bootstrap(np.zeros((2, 5)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="n_resamples"):
        R.paired_bootstrap([0.1], [0.2], n_resamples=0)
    with pytest.raises(ValueError, match="at least one"):
        R.paired_bootstrap(np.zeros((1, 0)), np.zeros((1, 0)))
    with pytest.raises(ValueError, match="needs at least 2 problems, got 1"):
        R.crossed_interval([0.5], [0.5])  # one problem: no variance to estimate, no interval
    with pytest.raises(ValueError, match="same shape"):
        R.crossed_interval(np.zeros((2, 5)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="seed_sd must be >= 0, got -0.1"):
        R.crossed_interval([0.1, 0.2], [0.2, 0.3], seed_sd=-0.1)


def test_hierarchical_in_report_and_unpaired_seeds(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0.1, 0.5, size=20)
    for s in (0, 1, 2):
        write_eval(tmp_path, "baseline", s, {"go": random_counts(rng, p, 5)})
    for s in (0, 1):
        write_eval(tmp_path, "cnn_dailymail", s, {"go": random_counts(rng, p, 5)})
    rep = R.write_report(tmp_path, tmp_path / "out", n_resamples=500)
    m = rep["per_language"]["go"]["metrics"]
    cmp = m["pass@1"]["vs_baseline"]["cnn_dailymail"]
    assert cmp["seeds"] == [0, 1] and cmp["n_seeds"] == 2 and "unpaired" in cmp["note"]
    assert "(paired seeds [0, 1] only)" in (tmp_path / "out" / "report.md").read_text()
    base = m["pass@1"]["arms"]["baseline"]
    assert set(base["per_seed"]) == {"0", "1", "2"} and base["seed_sd"] is not None
    assert base["mean"] == pytest.approx(np.mean(list(base["per_seed"].values())))
    assert m["pass@10"]["available"] is False  # n = 5 < 10
    assert any("go: pass@10 not available" in s for s in rep["statements"])
    assert "no NLU arm" in " ".join(rep["statements"])


def test_files_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    p = rng.uniform(0, 0.5, size=10)
    for arm in ("baseline", "mnli", "squad_v2", "cnn_dailymail"):
        write_eval(tmp_path, arm, 0, {lang: random_counts(rng, p, 10) for lang in ("java", "js")})
    out = tmp_path / "out"
    rep = R.write_report(tmp_path, out, n_resamples=200)
    assert json.loads((out / "report.json").read_text())["best_nlu"] == rep["best_nlu"]
    md = (out / "report.md").read_text()
    assert "## Verdicts (pass@1)" in md and "## java" in md and "## js" in md
    assert "biases that comparison in the NLU arm's favour" in md
    assert "| cnn_dailymail |" in md and "minus each NLU arm" in md
    assert "![js](pass_at_1_js.png)" in md
    for lang in ("java", "js"):
        assert (out / f"pass_at_1_{lang}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temporaries
    assert sorted(rep["files"]["plots"]) == ["java", "js"]
    statements = " ".join(rep["statements"])
    assert "languages without results in any arm: python, cpp, go, rust" in statements
    assert "qqp" in statements and "all10" in statements  # expected arms not present


def test_missing_cnn_arm_and_language_is_stated(tmp_path: Path) -> None:
    write_eval(tmp_path, "baseline", 0, {"rust": [(1, 1), (1, 0)], "cpp": [(1, 0), (1, 0)]})
    write_eval(tmp_path, "anli_plus", 0, {"cpp": [(1, 1), (1, 0)]})
    (tmp_path / "anli_plus" / "seed1").mkdir()  # a run not evaluated yet
    rep = R.write_report(tmp_path, tmp_path / "out", n_resamples=200)
    statements = " ".join(rep["statements"])
    assert "no 'cnn_dailymail' arm" in statements
    assert "rust: no results for arms anli_plus" in statements
    assert "anli_plus/seed1: no eval/results.jsonl" in statements
    assert "no verdict" in rep["per_language"]["cpp"]["verdict"]["text"]
    assert rep["per_language"]["cpp"]["metrics"]["pass@1"]["cnn_vs_nlu"] is None
    assert rep["best_nlu"]["arm"] == "anli_plus"
    assert rep["best_nlu"]["languages"] == ["cpp"]  # rust lacks anli_plus
    md = (tmp_path / "out" / "report.md").read_text()
    assert "no verdict" in md


def test_environment_errors_are_left_out(tmp_path: Path) -> None:
    base = {"cpp": [(2, 1), (2, 2), (2, 0)]}
    write_eval(tmp_path, "baseline", 0, base, env_errors={"cpp": 3})
    write_eval(tmp_path, "mnli", 0, {"cpp": [(0, 0), (2, 2), (2, 1)]}, env_errors={"cpp": 2})
    rep = R.write_report(tmp_path, tmp_path / "out", n_resamples=200)
    m = rep["per_language"]["cpp"]["metrics"]["pass@1"]
    # CPP/0 has no scored sample in mnli: missing there only; the baseline keeps its own 2
    assert m["task_ids"] == ["CPP/0", "CPP/1", "CPP/2"] and not m["dropped_problems"]
    assert m["arms"]["baseline"]["mean"] == 0.5 and m["arms"]["mnli"]["mean"] == 0.75
    assert m["arms"]["mnli"]["per_problem"]["0"] == [None, 1.0, 0.5]
    assert m["runs_with_fewer_problems"] == {"mnli/seed0": 2}
    cmp = m["vs_baseline"]["mnli"]  # compared where both have a value: CPP/1 and CPP/2
    assert cmp["n_problems"] == 2 and cmp["problems_left_out"] == 1 and cmp["diff"] == 0.25
    statements = " ".join(rep["statements"])
    assert "baseline/seed0 cpp: 3 samples hit environment errors" in statements
    assert "1 of 2 runs have >= 1 scored samples on fewer of them (mnli/seed0 2)" in statements


def test_pass_at_10_uses_each_runs_own_samples(tmp_path: Path) -> None:
    """One environment error in one run (n = 9 < 10) costs that run's problem only: every other
    run keeps it for pass@10, and comparisons leave it out only where it is missing."""
    rng = np.random.default_rng(6)
    p = rng.uniform(0.05, 0.5, size=30)
    for arm in ("baseline", "mnli", "cnn_dailymail"):
        for s in (0, 1):
            counts = random_counts(rng, p, 10)
            if arm == "mnli" and s == 1:
                counts[0] = (9, counts[0][1] - (counts[0][1] > 0))
            write_eval(tmp_path, arm, s, {"python": counts})
    rep = R.write_report(tmp_path, tmp_path / "out", n_resamples=200)
    m = rep["per_language"]["python"]["metrics"]["pass@10"]
    assert m["problems"] == 30 and m["runs_with_fewer_problems"] == {"mnli/seed1": 29}
    assert m["arms"]["mnli"]["problems_per_seed"] == {"0": 30, "1": 29}
    assert m["arms"]["baseline"]["problems_per_seed"] == {"0": 30, "1": 30}
    assert m["vs_baseline"]["cnn_dailymail"]["n_problems"] == 30
    mnli = m["vs_baseline"]["mnli"]
    assert mnli["n_problems"] == 29 and mnli["problems_left_out"] == 1
    base = m["arms"]["baseline"]["per_problem"]
    # the mean of mnli seed 1 is over its own 29 problems
    per_seed = m["arms"]["mnli"]["per_seed"]["1"]
    values = m["arms"]["mnli"]["per_problem"]["1"]
    assert values[0] is None and per_seed == pytest.approx(np.mean(values[1:]), abs=1e-6)
    assert None not in base["0"] + base["1"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "29 problems; 1 lack a value" in md and "mnli/seed1 29" in md


def test_constant_gain_still_writes_report_with_interval_around_estimate(
    tmp_path: Path,
) -> None:
    """The same gain on every problem and seed: the interval is (up to rounding) one point,
    which must contain the estimate, and the plot must not fail on a negative error bar."""
    rng = np.random.default_rng(8)
    c = rng.integers(0, 9, size=50)
    for s in (0, 1, 2):
        write_eval(tmp_path, "baseline", s, {"js": [(10, int(x)) for x in c]})
        write_eval(tmp_path, "cnn_dailymail", s, {"js": [(10, int(x) + 1) for x in c]})
    rep = R.write_report(tmp_path, tmp_path / "out", n_resamples=500)
    for metric in ("pass@1", "pass@10"):
        cmp = rep["per_language"]["js"]["metrics"][metric]["vs_baseline"]["cnn_dailymail"]
        assert cmp["low"] <= cmp["diff"] <= cmp["high"], cmp
    cmp = rep["per_language"]["js"]["metrics"]["pass@1"]["vs_baseline"]["cnn_dailymail"]
    assert cmp["diff"] == pytest.approx(0.1) and cmp["verdict"] == "above zero"
    assert (tmp_path / "out" / "pass_at_1_js.png").is_file()
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(0, 9, size=(3, 40)) / 10
        r = R.paired_bootstrap(a, a + 0.1, n_resamples=200, seed=int(rng.integers(100)))
        assert r.low <= r.diff <= r.high


def test_a_failing_plot_is_stated_not_fatal(tmp_path: Path, monkeypatch) -> None:
    write_eval(tmp_path, "baseline", 0, {"go": [(1, 1), (1, 0)]})

    def broken(report, language):
        raise ValueError("'xerr' must not contain negative values")

    monkeypatch.setattr("t5x_xfer.report.write.plot_language", broken)
    rep = R.write_report(tmp_path, tmp_path / "out", n_resamples=50)
    assert (tmp_path / "out" / "report.json").is_file() and (
        tmp_path / "out" / "report.md"
    ).is_file()
    assert rep["files"]["plots"] == {}
    assert any("go: plot pass_at_1_go.png not drawn (ValueError" in s for s in rep["statements"])


def test_seeds_without_a_language_or_rows_are_stated_per_language(tmp_path: Path) -> None:
    two = {"python": [(2, 1), (2, 0), (2, 2)], "rust": [(2, 0), (2, 1), (2, 1)]}
    for s in (0, 1, 2):
        write_eval(tmp_path, "baseline", s, two)
    write_eval(tmp_path, "mnli", 0, two)
    write_eval(tmp_path, "mnli", 1, {"python": two["python"]})  # no rust
    write_eval(tmp_path, "mnli", 2, {})  # empty results.jsonl
    rep = R.write_report(tmp_path, tmp_path / "out", n_resamples=100)
    rust, python = rep["per_language"]["rust"], rep["per_language"]["python"]
    assert rust["seeds_missing"] == {"mnli": [1, 2]} and python["seeds_missing"] == {"mnli": [2]}
    assert rust["metrics"]["pass@1"]["vs_baseline"]["mnli"]["seeds"] == [0]
    assert any(
        s.startswith("rust: mnli seeds [1, 2] have no rust results (empty results: seeds [2])")
        for s in rust["statements"]
    )
    assert any(s.startswith("python: mnli seeds [2]") for s in python["statements"])
    assert any("mnli/seed2: " in s and "used in no language" in s for s in rep["statements"])
    md = (tmp_path / "out" / "report.md").read_text()
    section = md[md.index("## rust") :]
    assert "Coverage:" in section and "mnli seeds [1, 2] have no rust results" in section


def test_known_defects_can_be_excluded(tmp_path: Path) -> None:
    out = write_eval(tmp_path, "baseline", 0, {"go": [(1, 1), (1, 0)]})
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    rows[1]["known_defect"] = "flaky"
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept = R.write_report(tmp_path, tmp_path / "a", n_resamples=50)
    dropped = R.write_report(tmp_path, tmp_path / "b", n_resamples=50, exclude_known_defects=True)
    assert kept["per_language"]["go"]["metrics"]["pass@1"]["arms"]["baseline"]["mean"] == 0.5
    assert dropped["per_language"]["go"]["metrics"]["pass@1"]["arms"]["baseline"]["mean"] == 1.0


def test_different_problem_sets_raise_naming_arms(tmp_path: Path) -> None:
    write_eval(tmp_path, "baseline", 0, {"java": [(1, 1), (1, 0), (1, 0)]})
    write_eval(tmp_path, "cnn_dailymail", 0, {"java": [(1, 1), (1, 0)]})
    with pytest.raises(ValueError, match=r"baseline/seed0 has 3 .*cnn_dailymail/seed0 has 2"):
        R.write_report(tmp_path, tmp_path / "out")


def test_arms_selection_and_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such directory"):
        R.write_report(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(ValueError, match="no <arm>/seed<S>/eval/results.jsonl"):
        R.write_report(tmp_path, tmp_path / "out")
    write_eval(tmp_path, "baseline", 0, {"python": [(1, 1)]})
    write_eval(tmp_path, "mnli", 0, {"python": [(1, 0)]})
    rep = R.write_report(tmp_path, tmp_path / "out", arms=["baseline", "ccg"], n_resamples=50)
    assert rep["arms"] == ["baseline"]
    assert "arms without results (left out of the report): ccg" in rep["statements"]
    with pytest.raises(ValueError, match=r"found arms: \['baseline', 'mnli'\]"):
        R.write_report(tmp_path, tmp_path / "out", arms=["ccg"])
    bad = tmp_path / "bad" / "baseline" / "seed0" / "eval"
    bad.mkdir(parents=True)
    (bad / "results.jsonl").write_text('{"task_id": "Go/1", "status": "passed"}\n')
    with pytest.raises(ValueError, match=r"results.jsonl:1: row lacks \['language'\]"):
        R.write_report(tmp_path / "bad", tmp_path / "out")


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_eval(tmp_path, "baseline", 0, {"python": [(1, 1), (1, 0)]})
    write_eval(tmp_path, "cnn_dailymail", 0, {"python": [(1, 1), (1, 1)]})
    out = tmp_path / "out"
    argv = ["--root", str(tmp_path), "--out", str(out), "--n_resamples", "100"]
    assert R.main(argv) == 0
    printed = capsys.readouterr().out
    assert "python (target language, not zero-shot), pass@1: cnn_dailymail - baseline" in printed
    assert (out / "report.md").is_file()
    assert R.main(["--root", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "error: report root" in capsys.readouterr().err


def test_crossed_interval_with_one_seed_is_the_paired_t_interval() -> None:
    from scipy import stats

    rng = np.random.default_rng(11)
    a, b = rng.uniform(size=30), rng.uniform(size=30)
    d = b - a
    r = R.crossed_interval(a, b)
    low, high = stats.t.interval(0.95, 29, loc=d.mean(), scale=stats.sem(d))
    assert (r.low, r.high) == pytest.approx((low, high), rel=1e-9)
    assert r.method == "crossed" and r.df == 29 and r.n_seeds == 1
    wider = R.crossed_interval(a, b, seed_sd=0.05)  # an assumed seed sd widens it
    assert wider.low < r.low and wider.high > r.high and wider.assumed_seed_sd == 0.05
    half = (wider.high - wider.low) / 2
    assert half > 1.96 * math.sqrt(stats.sem(d) ** 2 + 0.05**2)


def test_crossed_interval_with_seed_effects_only_is_the_t_interval_of_seed_means() -> None:
    from scipy import stats

    effects = np.array([0.3, -0.2, 0.1, 0.0, -0.15])
    a = np.zeros((5, 50))
    r = R.crossed_interval(a, a + effects[:, None])
    low, high = stats.t.interval(0.95, 4, loc=effects.mean(), scale=stats.sem(effects))
    assert (r.low, r.high) == pytest.approx((low, high), rel=1e-9) and r.df == 4


def test_crossed_interval_counts_problem_noise_once() -> None:
    """No seed effect, three seeds: the interval is the one of the seed-averaged differences
    (the bootstrap counts this noise twice and is wider)."""
    rng = np.random.default_rng(12)
    p = rng.uniform(0, 1, size=(1, 164))
    a = rng.binomial(20, p, size=(3, 164)) / 20
    b = rng.binomial(20, np.clip(p + 0.05, 0, 1), size=(3, 164)) / 20
    r = R.crossed_interval(a, b)
    boot = R.paired_bootstrap(a, b, n_resamples=4000)
    assert r.low < r.diff < r.high and r.high - r.low < 0.85 * (boot.high - boot.low)


def test_crossed_interval_covers_near_nominal_in_a_normal_model() -> None:
    # d = 0.03 + seed effect + problem effect + noise, 3 seeds x 40 problems, 4000 replicates
    # (Monte Carlo SE 0.34 points); the full grid of regimes is benchmarks/interval_coverage.py.
    from scipy import stats

    from t5x_xfer.report.stats import crossed_moments

    rng = np.random.default_rng(13)
    for seed_sd in (0.0, 0.03):
        d = (
            0.03
            + rng.normal(0, seed_sd, (4000, 3, 1))
            + rng.normal(0, 0.1, (4000, 1, 40))
            + rng.normal(0, 0.2, (4000, 3, 40))
        )
        m = crossed_moments(d)
        half = stats.t.ppf(0.975, m["df"]) * m["se"]
        coverage = np.mean(np.abs(m["mean"] - 0.03) <= half)
        assert 0.93 <= coverage <= 0.975, (seed_sd, coverage)


def test_interval_flag_and_seed_sd_in_report(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(14)
    p = rng.uniform(0, 0.6, size=20)
    for arm in ("baseline", "cnn_dailymail"):
        write_eval(tmp_path, arm, 0, {"go": random_counts(rng, p, 10)})
    crossed = R.write_report(tmp_path, tmp_path / "a")
    boot = R.write_report(tmp_path, tmp_path / "b", interval="bootstrap", n_resamples=300)
    assumed = R.write_report(tmp_path, tmp_path / "c", seed_sd=0.02)
    get = lambda rep: rep["per_language"]["go"]["metrics"]["pass@1"]["vs_baseline"]["cnn_dailymail"]  # noqa: E731
    assert get(crossed)["method"] == "crossed" and get(boot)["method"] == "bootstrap"
    assert get(assumed)["high"] - get(assumed)["low"] > get(crossed)["high"] - get(crossed)["low"]
    assert "crossed (problems x seeds) t" in (tmp_path / "a" / "report.md").read_text()
    assert "paired bootstrap (300 resamples" in (tmp_path / "b" / "report.md").read_text()
    assert "seed sd 2.00 pp assumed" in (tmp_path / "c" / "report.md").read_text()
    one_seed = "comparisons on one shared seed: their intervals cover these runs' difference only"
    assert any(s.startswith(one_seed) for s in crossed["statements"])
    assert not any(s.startswith(one_seed) for s in assumed["statements"] + boot["statements"])
    argv = ["--root", str(tmp_path), "--out", str(tmp_path / "d")]
    with pytest.raises(SystemExit):
        R.main([*argv, "--seed_sd", "-1"])
    assert "--seed_sd must be in [0, 100] pp, got -1.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        R.main([*argv, "--interval", "normal"])
    assert "invalid choice: 'normal'" in capsys.readouterr().err


def test_cnn_against_nlu_figures(tmp_path: Path) -> None:
    """The research question drawn: per language CNN/DM minus each NLU arm and the best one
    (pass@1 and pass@10), and one summary across languages; degenerate inputs still draw."""
    rng = np.random.default_rng(15)
    p = rng.uniform(0.05, 0.6, size=30)
    for arm in ("baseline", "mnli", "qqp", "nlu9", "cnn_dailymail"):
        for s in (0, 1):
            counts = {"python": random_counts(rng, p, 10), "go": random_counts(rng, p, 5)}
            if arm == "cnn_dailymail":
                counts.pop("go")  # CNN/DM has no go results: its panels say so
            write_eval(tmp_path, arm, s, counts)
    out = tmp_path / "out"
    rep = R.write_report(tmp_path, out)
    assert rep["files"]["cnn_plots"] == {
        "python": "cnn_vs_nlu_python.png",
        "go": "cnn_vs_nlu_go.png",
    }
    assert rep["files"]["summary_plot"] == "cnn_summary.png"
    for name in ("cnn_vs_nlu_python.png", "cnn_vs_nlu_go.png", "cnn_summary.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "![cnn_dailymail against the NLU arms, all languages](cnn_summary.png)" in md
    assert "![cnn_dailymail minus the NLU arms, python](cnn_vs_nlu_python.png)" in md
    assert not any("not drawn" in s for s in rep["statements"])
    # the figures are pure functions of the report dict: redrawn from report.json alone
    saved = json.loads((out / "report.json").read_text())
    assert R.plot_cnn_summary(saved)[:4] == b"\x89PNG"
    assert R.plot_cnn_vs_nlu(saved, "go")[:4] == b"\x89PNG"


def test_an_arm_without_enough_samples_for_pass_at_10(tmp_path: Path) -> None:
    # mnli was decoded with 5 samples, the others with 12: pass@10 exists for the others only
    rng = np.random.default_rng(16)
    p = rng.uniform(0.1, 0.6, size=12)
    write_eval(tmp_path, "baseline", 0, {"js": random_counts(rng, p, 12)})
    write_eval(tmp_path, "cnn_dailymail", 0, {"js": random_counts(rng, p, 12)})
    write_eval(tmp_path, "mnli", 0, {"js": random_counts(rng, p, 5)})
    rep = R.write_report(tmp_path, tmp_path / "out")
    m = rep["per_language"]["js"]["metrics"]["pass@10"]
    assert m["available"] and sorted(m["arms"]) == ["baseline", "cnn_dailymail"]
    assert "mnli" not in m["vs_baseline"] and "mnli" not in m["cnn_vs_nlu"]
    assert "js: pass@10 not available for arms mnli" in " ".join(rep["statements"])
    assert "| mnli | 1 |" in (tmp_path / "out" / "report.md").read_text()
    assert sorted(rep["files"]["plots"]) == ["js"] and rep["files"]["cnn_plots"] == {
        "js": "cnn_vs_nlu_js.png"
    }
    assert not any("not drawn" in s for s in rep["statements"])
