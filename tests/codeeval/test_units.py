"""Fast checks without executing programs: pass@k, stop rules, assembly, input validation."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from t5x_xfer import evaluate_code as cli
from t5x_xfer.codeeval import data as D
from t5x_xfer.codeeval import languages as L
from t5x_xfer.codeeval import results
from t5x_xfer.codeeval import sandbox as sb
from t5x_xfer.codeeval import toolchains as tc
from tests.codeeval import fakes


@pytest.mark.parametrize("n,c,k", [(1, 0, 1), (1, 1, 1), (5, 2, 1), (10, 3, 5), (20, 0, 10)])
def test_pass_at_k_matches_closed_form(n: int, c: int, k: int) -> None:
    expected = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert results.pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_on_hand_made_counts() -> None:
    assert results.pass_at_k(200, 200, 100) == 1.0
    assert results.pass_at_k(200, 0, 1) == 0.0
    means = results.mean_pass_at_k([(10, 1), (10, 0), (12, 6)])
    assert set(means) == {"pass@1", "pass@10"}  # pass@100 needs n >= 100 everywhere
    assert means["pass@1"] == pytest.approx((0.1 + 0 + 0.5) / 3)
    assert means["pass@10"] == pytest.approx((1.0 + 0 + 1 - math.comb(6, 10) / 66) / 3)
    with pytest.raises(ValueError, match="pass@10 needs at least 10"):
        results.pass_at_k(5, 1, 10)


def test_summary_excludes_known_defects_separately() -> None:
    rows = [
        {"task_id": "Go/1", "language": "go", "passed": True, "status": "passed"},
        {"task_id": "Go/95", "language": "go", "passed": False, "status": "failed"},
    ]
    rows[1].update(known_defect="flaky", known_defect_note="map order")
    s = results.summarize(rows)
    assert s["languages"]["go"]["pass_at_k"]["pass@1"] == 0.5
    assert s["languages"]["go"]["pass_at_k_excluding_known_defects"]["pass@1"] == 1.0
    assert s["known_defects"][0]["task_id"] == "Go/95"
    s["sandbox"] = {"tier": "bwrap+uid", "detail": "x"}
    assert "bwrap+uid" in results.markdown(s) and "Go/95 (flaky)" in results.markdown(s)


def test_environment_errors_are_not_model_failures() -> None:
    rows = [
        {"task_id": "JavaScript/1", "language": "js", "passed": True, "status": "passed"},
        {
            "task_id": "JavaScript/1",
            "language": "js",
            "passed": False,
            "status": "environment_error",
        },
        {
            "task_id": "JavaScript/2",
            "language": "js",
            "passed": False,
            "status": "environment_error",
        },
    ]
    s = results.summarize(rows)["languages"]["js"]
    assert s["pass_at_k"] == {"pass@1": 1.0} and s["problems"] == 1
    assert s["statuses"]["environment_error"] == 2


def test_truncation() -> None:
    body = "    x = 1\n    return x\n\n\ndef helper():\n    pass\nprint(1)\n"
    assert L.truncate_completion("python", body) == "    x = 1\n    return x\n\n\n"
    js = "  return 1;\n}\nconst testFoo = () => {}\n"
    assert L.truncate_completion("js", js) == "  return 1;\n}"
    rust = "    1\n}\nfn helper() {}\n#[cfg(test)]\nmod tests {}\n"
    assert L.truncate_completion("rust", rust) == "    1\n}\nfn helper() {}"
    with pytest.raises(ValueError, match="unknown language 'cobol'"):
        L.truncate_completion("cobol", "")


def test_go_imports_are_repaired() -> None:
    problem = {
        "prompt": 'import (\n    "math"\n)\n\nfunc F(x float64) string {\n',
        "test_setup": 'package main\n\nimport (\n    "testing"\n)\n',
        "test": "func TestF(t *testing.T) {}\n",
    }
    text = L.LANGUAGES["go"].assemble(problem, "    return strconv.Itoa(int(x))\n}\n")
    program = text["main_test.go"]
    assert '"strconv"' in program and '"math"' not in program  # unused imports are errors


def test_canonical_solutions_survive_stop_rules() -> None:
    problems = D.load_problems(fakes.ALL, fakes.require_data())
    for lang, by_id in problems.items():
        for tid, p in by_id.items():
            sol = p["canonical_solution"]
            assert L.truncate_completion(lang, sol) == sol, tid


def test_strip_echoed_prompt() -> None:
    assert D.strip_prompt("def f():\n    return 1\n", "def f():\n") == "\n    return 1\n"
    assert D.strip_prompt("    return 1\n", "def f():\n") == "    return 1\n"


def test_bad_samples_are_reported_with_line(tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "Python/0", "generation": "x"}\n{oops\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: malformed JSON"):
        D.read_samples(bad)
    bad.write_text('{"task_id": "Cobol/0", "generation": "x"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: task_id 'Cobol/0'.*known: Python/<n>"):
        D.read_samples(bad)
    bad.write_text('{"task_id": "Python/0", "text": "x"}\n')
    with pytest.raises(ValueError, match=r':1: expected a string "generation" or "completion"'):
        D.read_samples(bad)


def test_cli_rejects_bad_input_before_work(tmp_path, monkeypatch) -> None:
    data = fakes.require_data()
    out = tmp_path / "out"
    samples = fakes.write_samples(
        tmp_path / "s.jsonl", [{"task_id": "Python/999", "completion": "    pass\n"}]
    )
    with pytest.raises(ValueError, match=r"unknown task_id 'Python/999' \(known: Python/0"):
        cli.evaluate_code(samples=samples, out=out, data_dir=data, progress=False)
    with pytest.raises(ValueError, match=r"unknown language\(s\) \['cobol'\]; allowed"):
        cli.evaluate_code(samples=samples, out=out, languages=["cobol"], data_dir=data)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cli.evaluate_code(samples=None, out=out, checkpoint=str(tmp_path / "ckpt"))
    with pytest.raises(ValueError, match="--sandbox 'chroot' unknown; allowed"):
        cli.evaluate_code(samples=samples, out=out, sandbox="chroot", data_dir=data)
    # A language whose toolchain is missing is an error up front, not a model failure.
    samples = fakes.write_samples(
        tmp_path / "g.jsonl", [{"task_id": "Go/0", "generation": "    return true\n}\n"}]
    )
    monkeypatch.setenv("T5X_CODEEVAL_GO", str(tmp_path / "no-go"))
    with pytest.raises(RuntimeError, match=r"toolchain missing for samples in \['go'\]"):
        cli.evaluate_code(samples=samples, out=out, data_dir=data, progress=False)
    assert not out.exists()  # nothing was executed or written


def test_cli_exit_code_and_message(tmp_path) -> None:
    samples = fakes.write_samples(tmp_path / "s.jsonl", [{"task_id": "Nope/1", "generation": ""}])
    proc = subprocess.run(
        [sys.executable, "-m", "t5x_xfer.evaluate_code", "--samples", str(samples)]
        + ["--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "error:" in proc.stderr and "Nope/1" in proc.stderr


def test_refuses_without_isolation() -> None:
    none = sb.Probe("none", "NO isolation", "")
    with pytest.raises(sb.SandboxRefused, match="--unsafe"):
        sb.check_allowed(none, unsafe=False)
    sb.check_allowed(none, unsafe=True)
    with pytest.raises(ValueError, match="memory_mb must be positive"):
        sb.Limits(memory_mb=0)


def test_doctor_names_every_language_and_the_tier() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "t5x_xfer.codeeval", "doctor"], capture_output=True, text=True
    )
    for lang in fakes.ALL:
        assert lang in proc.stdout
    assert "sandbox tier:" in proc.stdout


def test_loader_reads_hf_layout(tmp_path) -> None:
    record = {"task_id": "Python/0", "prompt": "def f():\n", "test": "", "declaration": ""}
    (tmp_path / "data" / "python" / "data").mkdir(parents=True)
    (tmp_path / "data/python/data/humaneval.jsonl").write_text(json.dumps(record) + "\n")
    assert D.load_problems(["python"], tmp_path)["python"]["Python/0"] == record
    with pytest.raises(FileNotFoundError, match="no HumanEval-X file for 'cpp'"):
        D.load_problems(["cpp"], tmp_path)


def test_preflight_looks_for_toolchains_once_per_setting(tmp_path, monkeypatch) -> None:
    """A grid driver checks the toolchains before each checkpoint's decoding: found ready, they
    are not looked for again while PATH and the T5X_* settings stay; a changed setting is
    looked at anew, and a missing toolchain still fails before any decoding."""
    chain = tc.discover(["python"])["python"]
    if not chain.ready:
        pytest.skip("python toolchain missing: " + "; ".join(chain.missing))
    calls = []
    real = tc.discover
    monkeypatch.setattr(
        tc, "discover", lambda langs, **kw: calls.append(list(langs)) or real(langs, **kw)
    )
    monkeypatch.setattr(cli, "_READY", set())
    cli._preflight(["python"], None, unsafe=True, probe_sandbox=False)
    cli._preflight(["python"], None, unsafe=True, probe_sandbox=False)
    assert calls == [["python"]]
    monkeypatch.setenv("T5X_CODEEVAL_PYTHON3", str(tmp_path / "no-python"))
    with pytest.raises(RuntimeError, match=r"toolchain missing for \['python'\].*no-python"):
        cli._preflight(["python"], None, unsafe=True, probe_sandbox=False)
    assert calls == [["python"], ["python"]]
