"""The warm javac (compile_server): judged like javac in the sandbox, survives its failures."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from t5x_xfer.codeeval import compile_server, processes
from t5x_xfer.codeeval import data as D
from t5x_xfer.codeeval import sandbox as sb
from t5x_xfer.codeeval.evaluate import evaluate
from tests.codeeval import fakes

GOOD = "class Main { public static void main(String[] a) { System.out.println(1 + 1); } }\n"
BAD = "class Main { public static void main(String[] a) { int x = ; } }\n"


def _java() -> str:
    fakes.require_languages("java")
    return fakes._chains()["java"].tools["java"]


def test_server_compiles_reports_errors_and_restarts_after_a_timeout(tmp_path) -> None:
    server = compile_server.JavacServer(_java())
    try:
        (tmp_path / "Main.java").write_text(GOOD)
        out = server.compile(tmp_path / "Main.java", tmp_path, timeout_s=60)
        assert out is not None and out.returncode == 0 and not out.timed_out, out
        assert (tmp_path / "Main.class").is_file()
        first_pid = server.pid
        (tmp_path / "Main.java").write_text(BAD)
        out = server.compile(tmp_path / "Main.java", tmp_path, timeout_s=60)
        assert out.returncode == 1 and "Main.java:1: error" in out.stderr, out
        assert server.pid == first_pid  # one JVM for both
        # A compile that outlives its timeout is a timeout, and the server is replaced.
        out = server.compile(tmp_path / "Main.java", tmp_path, timeout_s=0.0)
        assert out.timed_out and server.pid is None
        (tmp_path / "Main.java").write_text(GOOD)
        out = server.compile(tmp_path / "Main.java", tmp_path, timeout_s=60)
        assert out.returncode == 0 and server.pid not in (None, first_pid)
    finally:
        server.close()


def test_server_that_cannot_start_hands_back_to_the_sandbox(tmp_path) -> None:
    server = compile_server.JavacServer(str(tmp_path / "no-java"))
    (tmp_path / "Main.java").write_text(GOOD)
    assert server.compile(tmp_path / "Main.java", tmp_path, timeout_s=10) is None
    assert server.failures == 1


def test_warm_javac_judges_like_javac_in_the_sandbox(tmp_path) -> None:
    """Passed, compile error, failed and runtime error: the same status either way, and a
    compile error names the file as the program sees it, not the worker's scratch dir."""
    data = fakes.require_data()
    fakes.require_sandbox()
    _java()
    problems = D.load_problems(["java"], data)
    canonical = problems["java"]["Java/0"]["canonical_solution"]
    samples = [
        D.Sample("Java/0", canonical, "java"),
        D.Sample("Java/0", "        return x y;\n    }\n}\n", "java"),
        D.Sample("Java/0", fakes.DEFAULT_BODY["java"], "java"),
        D.Sample("Java/0", fakes.THROW_BODY["java"], "java"),
    ]
    runs = {
        warm: evaluate(
            samples, problems, out_dir=tmp_path / str(warm), progress=False, warm_javac=warm
        )
        for warm in (True, False)
    }
    statuses = {warm: [r["status"] for r in run.rows] for warm, run in runs.items()}
    assert (
        statuses[True]
        == statuses[False]
        == [
            "passed",
            "compile_error",
            "failed",
            "runtime_error",
        ]
    ), statuses
    error = runs[True].rows[1]["stderr"]
    assert "Main.java:" in error and str(sb.scratch_root()) not in error, error


def test_cleanup_after_a_program_spares_kept_processes() -> None:
    """kill_descendants (tiers without a uid of their own) must not kill the warm compiler."""
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    kept = subprocess.Popen(sleep)
    doomed = subprocess.Popen(sleep)
    try:
        processes.kill_descendants(os.getpid(), keep=frozenset({kept.pid}))
        deadline = time.monotonic() + 10
        while doomed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert doomed.poll() is not None
        assert kept.poll() is None
    finally:
        for p in (kept, doomed):
            p.kill()
            p.wait()


@pytest.mark.parametrize("language", ["rust", "cpp"])
def test_fast_link_recipes_still_pass_ground_truth(tmp_path, language: str) -> None:
    """Rust links std dynamically and C++ links with gold where available: canonical
    programs still pass and a wrong one still fails."""
    data = fakes.require_data()
    fakes.require_sandbox()
    fakes.require_languages(language)
    problems = D.load_problems([language], data)
    prefix = fakes.PREFIX[language]
    samples = [
        D.Sample(
            f"{prefix}/{i}", problems[language][f"{prefix}/{i}"]["canonical_solution"], language
        )
        for i in (0, 16, 32)
    ] + [D.Sample(f"{prefix}/0", fakes.DEFAULT_BODY[language], language)]
    result = evaluate(samples, problems, out_dir=tmp_path, progress=False)
    assert [r["status"] for r in result.rows] == ["passed"] * 3 + ["failed"], result.rows


def _interpreters() -> dict[str, str]:
    fakes.require_languages("python", "js")
    chains = fakes._chains()
    return {"python3": chains["python"].tools["python3"], "node": chains["js"].tools["node"]}


def test_parse_server_answers_parses_or_syntax_error_and_hands_back_the_rest(tmp_path) -> None:
    """Python's compile() and Node's CommonJS compilation, nothing run: a syntax error with the
    interpreter's message; ES-module syntax, which node --check judges by its own rules, and a
    server that died or cannot start hand the program back to the sandbox (None)."""
    tools = _interpreters()
    py = compile_server.ParseServer(compile_server.server_argv("python", tools))
    js = compile_server.ParseServer(compile_server.server_argv("js", tools))
    try:
        marker = tmp_path / "ran"
        ran = f"import pathlib; pathlib.Path({str(marker)!r}).touch()\n"
        assert py.check("/w/main.py", ran).returncode == 0
        assert not marker.exists()  # parsed, never run
        out = py.check("/w/main.py", "def f(:\n    pass\n")
        assert out.returncode == 1 and 'File "/w/main.py", line 1' in out.stderr, out
        assert "SyntaxError" in out.stderr
        out = py.check("/w/main.py", "if x:\nreturn 1\n")
        assert out.returncode == 1 and "IndentationError" in out.stderr, out
        assert py.check("/w/main.py", "x = " + "(" * 10_000 + "\n").returncode == 1
        assert js.check("/w/main.js", "const f = (a) => a + 1;\nreturn f(1);\n").returncode == 0
        out = js.check("/w/main.js", "const f = (a => {\n")
        assert out.returncode == 1 and "/w/main.js:" in out.stderr, out
        assert "SyntaxError" in out.stderr
        assert js.check("/w/main.js", "import x from 'y';\n") is None
        assert js.check("/w/main.js", "await f();\n") is None
        pid = py.pid
        os.kill(pid, 9)
        py.proc.wait()
        assert py.check("/w/main.py", "x = 1\n").returncode == 0 and py.pid != pid  # restarted
    finally:
        py.close()
        js.close()
    missing = compile_server.ParseServer(["/nonexistent/python3", "-c", "pass"])
    assert missing.check("/w/main.py", "x = 1\n") is None and missing.failures == 1
    dies = compile_server.ParseServer([sys.executable, "-c", "import sys; sys.stdin.readline()"])
    assert dies.check("/w/main.py", "x = 1\n") is None and dies.failures == 1  # mid-request
    silent = compile_server.ParseServer(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_timeout_s=0.5
    )
    try:
        assert silent.check("/w/main.py", "x = 1\n", timeout_s=0.2) is None
    finally:
        silent.close()


def test_parse_servers_judge_like_the_sandbox(tmp_path) -> None:
    """Passed, failed, runtime error and the kinds of syntax errors: the same status with
    the warm parsers as with the sandboxed interpreters alone."""
    from t5x_xfer.codeeval import minibench

    fakes.require_sandbox()
    _interpreters()
    problems = D.load_problems(["python", "js"], minibench.MINIBENCH_DIR)
    py, js = problems["python"]["Python/0"], problems["js"]["JavaScript/0"]
    cases = [
        ("Python/0", py["canonical_solution"], "passed"),
        ("Python/0", fakes.DEFAULT_BODY["python"], "failed"),
        ("Python/0", fakes.THROW_BODY["python"], "runtime_error"),
        ("Python/0", "    return a +\n", "compile_error"),
        ("Python/0", "  return a\n    return b\n", "compile_error"),  # indentation
        ("Python/0", "    nonlocal q\n    return a + b\n", "compile_error"),  # symtable
        ("JavaScript/0", js["canonical_solution"], "passed"),
        ("JavaScript/0", fakes.THROW_BODY["js"], "runtime_error"),
        ("JavaScript/0", "  return a +;\n}\n", "compile_error"),
        ("JavaScript/0", "  let a = 1;\n  return a;\n}\n", "compile_error"),  # redeclared
        # node --check lets an import statement through (as a module); it fails when run
        ("JavaScript/0", "  return a + b;\n}\nimport x from 'y';\n", "runtime_error"),
        # not CommonJS, which the parser hands back: node itself runs it
        ("JavaScript/0", "  return a + b;\n}\nawait 1;\n", "passed"),
    ]
    samples = [D.Sample(t, c, "python" if t.startswith("Python") else "js") for t, c, _ in cases]
    statuses = {
        warm: [
            r["status"]
            for r in evaluate(
                samples, problems, out_dir=tmp_path / str(warm), progress=False, warm_parse=warm
            ).rows
        ]
        for warm in (True, False)
    }
    assert statuses[True] == statuses[False], statuses
    assert statuses[True] == [s for _, _, s in cases], statuses
