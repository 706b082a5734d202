"""The mini benchmark: committed files match build.py, loaders read them, every canonical
solution passes and every default-value body fails in each language, through the real
evaluator with the sandbox."""

from __future__ import annotations

import gzip
import json
import logging
import os

import pytest

from t5x_xfer.codeeval import data as D
from t5x_xfer.codeeval.evaluate import Evaluation, evaluate
from t5x_xfer.codeeval.minibench import MINIBENCH_DIR, build
from tests.codeeval import fakes

# Each language's record fields, in the order of its HumanEval-X file.
FIELDS = {
    "python": ["task_id", "prompt", "canonical_solution", "test", "text", "declaration"]
    + ["example_test"],
    "cpp": ["task_id", "prompt", "canonical_solution", "test", "declaration", "example_test"],
    "java": ["task_id", "prompt", "canonical_solution", "test", "text", "declaration"]
    + ["example_test"],
    "js": ["task_id", "prompt", "canonical_solution", "test", "declaration", "example_test"],
    "go": ["task_id", "prompt", "import", "docstring", "declaration", "canonical_solution"]
    + ["test", "test_setup", "example_test"],
    "rust": ["task_id", "prompt", "declaration", "canonical_solution", "test", "example_test"],
}
WRONG_CLOSE = {
    "python": "\n",
    "cpp": ";\n}\n",
    "java": ";\n    }\n}\n",
    "js": ";\n}\n",
    "go": "\n}\n",
    "rust": ";\n}\n",
}
INDENT = {"python": 4, "cpp": 4, "java": 8, "js": 2, "go": 4, "rust": 4}


def wrong_body(lang: str, problem: build.Problem) -> str:
    """A well-typed body that returns the type's default value, which no problem accepts."""
    value = build.DEFAULT_RETURN[lang][problem.returns]
    return " " * INDENT[lang] + f"return {value}" + WRONG_CLOSE[lang]


def test_committed_files_are_what_build_writes():
    assert build.stale() == [], "run: python -m t5x_xfer.codeeval.minibench.build"
    for lang in build.LANGUAGES:
        raw = (MINIBENCH_DIR / build.relative_path(lang)).read_bytes()
        # gzip header: no FNAME flag, mtime 0, so the bytes depend only on the content.
        assert raw[3] & 0x08 == 0 and raw[4:8] == b"\0\0\0\0", lang
        assert gzip.decompress(raw) == build.jsonl_bytes(lang)


def test_records_have_humaneval_x_fields_and_ids():
    problems = D.load_problems(build.LANGUAGES, MINIBENCH_DIR)
    n = len(build.PROBLEMS)
    assert 4 <= n <= 6
    for lang in build.LANGUAGES:
        prefix = build.TASK_PREFIX[lang]
        assert list(problems[lang]) == [f"{prefix}/{i}" for i in range(n)]
        for record in problems[lang].values():
            assert list(record) == FIELDS[lang], (lang, list(record))
            assert all(isinstance(v, str) for v in record.values()), record["task_id"]
            assert record["prompt"] and record["canonical_solution"] and record["test"]


def test_fields_match_the_real_data_when_present():
    """Same field names and order as the HumanEval-X copy under shared/data (if there)."""
    real_dir = fakes.require_data()
    real = D.load_problems(build.LANGUAGES, real_dir)
    for lang in build.LANGUAGES:
        first = next(iter(real[lang].values()))
        assert list(first) == FIELDS[lang], lang
        assert next(iter(real[lang])).split("/")[0] == build.TASK_PREFIX[lang]


def test_one_resolver_for_where_humaneval_x_lives(monkeypatch, caplog, tmp_path):
    """An argument, else $T5X_HUMANEVAL_X_DIR, else the caller's default: the hub (None),
    the mini benchmark (with a warning that these are not HumanEval-X numbers) or a dir."""
    resolve = D.humaneval_x_dir
    monkeypatch.setattr(D, "_warned", [])  # the warning is once per process
    monkeypatch.setenv(D.ENV_VAR, str(tmp_path / "from_env"))
    assert resolve(str(tmp_path / "given"), default="minibench") == tmp_path / "given"
    assert resolve(None, default="minibench") == tmp_path / "from_env"
    assert resolve(None) == tmp_path / "from_env"
    monkeypatch.delenv(D.ENV_VAR)
    assert resolve(None) is None  # the hub
    assert resolve("minibench") == MINIBENCH_DIR
    assert resolve("", default=tmp_path / "dflt") == tmp_path / "dflt"
    assert "NOT HumanEval-X" not in caplog.text
    with caplog.at_level(logging.WARNING):
        assert resolve(None, default="minibench") == MINIBENCH_DIR
        assert resolve(None, default="minibench") == MINIBENCH_DIR
    assert caplog.text.count("NOT HumanEval-X numbers") == 1


def test_build_cli_check_and_write(tmp_path, capsys):
    assert build.main(["--check", "--out", str(tmp_path)]) == 1
    assert build.main(["--out", str(tmp_path)]) == 0
    assert build.main(["--check", "--out", str(tmp_path)]) == 0
    for lang in build.LANGUAGES:
        assert (tmp_path / build.relative_path(lang)).read_bytes() == (
            MINIBENCH_DIR / build.relative_path(lang)
        ).read_bytes()
    line = gzip.decompress((tmp_path / "python" / "humaneval_python.jsonl.gz").read_bytes())
    assert json.loads(line.splitlines()[0])["task_id"] == "Python/0"


@pytest.fixture(scope="module")
def minibench_eval(tmp_path_factory: pytest.TempPathFactory) -> tuple[Evaluation, int]:
    """Canonical and default-value samples of every ready language in one sandboxed run;
    returns the evaluation and how many leading rows are canonical."""
    fakes.require_sandbox()
    languages = fakes.ready_languages(build.LANGUAGES)
    if not languages:
        pytest.skip("no language toolchain is ready (run launch/install_toolchains.sh)")
    problems = D.load_problems(languages, MINIBENCH_DIR)
    canonical = D.canonical_samples(problems)
    wrong = [
        D.Sample(f"{build.TASK_PREFIX[lang]}/{i}", wrong_body(lang, p), lang)
        for lang in languages
        for i, p in enumerate(build.PROBLEMS)
    ]
    result = evaluate(
        canonical + wrong,
        problems,
        out_dir=tmp_path_factory.mktemp("minibench"),
        workers=os.cpu_count() or 2,
        progress=False,
    )
    return result, len(canonical)


def test_every_canonical_solution_passes(minibench_eval):
    result, n = minibench_eval
    assert result.summary["sandbox"]["tier"] != "none"
    bad = [(r["task_id"], r["status"], r["stderr"][-300:]) for r in result.rows[:n]]
    assert all(status == "passed" for _, status, _ in bad), [b for b in bad if b[1] != "passed"]
    assert {r["language"] for r in result.rows[:n]} == set(result.summary["languages"])


def test_default_value_bodies_fail(minibench_eval):
    """Each test suite rejects a well-typed wrong answer: a clean test failure, not a crash."""
    result, n = minibench_eval
    rows = result.rows[n:]
    assert len(rows) == n
    wrong = [(r["task_id"], r["status"], r["stderr"][-300:]) for r in rows]
    assert all(status == "failed" for _, status, _ in wrong), wrong
