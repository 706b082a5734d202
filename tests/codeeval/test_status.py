"""Status split: a failed test assertion is "failed" in every language, a crash outside the
tests' assertions is "runtime_error". Judges on captured output (fast), then real programs
through the sandboxed evaluator on the mini benchmark and on HumanEval-X (when present)."""

from __future__ import annotations

import os

import pytest

from t5x_xfer.codeeval import data as D
from t5x_xfer.codeeval import languages as L
from t5x_xfer.codeeval.evaluate import evaluate
from t5x_xfer.codeeval.minibench import MINIBENCH_DIR, build
from tests.codeeval import fakes

RUST_ASSERT_EQ = (
    "---- tests::test_f stdout ----\n\nthread 'tests::test_f' (7) panicked at /w/main.rs:12:9:\n"
    "assertion `left == right` failed\n  left: 2\n right: 3\n"
)
RUST_ASSERT_NE = "thread 'tests::t' panicked at main.rs:9:5:\nassertion `left != right` failed\n"
RUST_ASSERT = "thread 'tests::t' panicked at main.rs:9:5:\nassertion failed: f(1) == 3\n"
RUST_OLD_ASSERT_EQ = (
    "thread 'tests::t' panicked at 'assertion failed: `(left == right)`\n  left: `2`,\n"
    " right: `3`', src/main.rs:6:5\n"
)
RUST_INDEX = (
    "thread 'tests::t' panicked at main.rs:1:69:\n"
    "index out of bounds: the len is 0 but the index is 2\n"
)
RUST_OWN_PANIC = "thread 'tests::t' panicked at main.rs:3:5:\nthe assertion failed, says f\n"
RUST_STACK = "thread 'tests::t' has overflowed its stack\nfatal runtime error: stack overflow\n"
GO_TESTIFY = (
    "--- FAIL: TestF (0.00s)\n    main_test.go:16: \n        \tError Trace:\tmain_test.go:16\n"
    "        \tError:      \tNot equal: \n        \t            \texpected: 5\n"
)
GO_PANIC = (
    "--- FAIL: TestF (0.00s)\npanic: assignment to entry in nil map [recovered]\n"
    "\tpanic: assignment to entry in nil map\n\ngoroutine 20 [running]:\n"
)
GO_STACK = "runtime: goroutine stack exceeds 1000000000-byte limit\nfatal error: stack overflow\n"
JAVA_ASSERT = 'Exception in thread "main" java.lang.AssertionError\n\tat Main.main(Main.java:9)\n'
JAVA_NPE = (
    'Exception in thread "main" java.lang.NullPointerException\n\tat Solution.f(Main.java:3)\n'
)

CASES = [
    # (language, returncode, stdout, stderr, expected status)
    ("rust", 101, RUST_ASSERT_EQ, "", "failed"),
    ("rust", 101, RUST_ASSERT_NE, "", "failed"),
    ("rust", 101, RUST_ASSERT, "", "failed"),
    ("rust", 101, RUST_OLD_ASSERT_EQ, "", "failed"),
    ("rust", 101, RUST_INDEX, "", "runtime_error"),
    ("rust", 101, RUST_OWN_PANIC, "", "runtime_error"),
    ("rust", 134, "", RUST_STACK, "runtime_error"),
    ("rust", 0, "test result: ok. 1 passed\n", "", "passed"),
    ("go", 1, GO_TESTIFY + "FAIL\n", "", "failed"),
    ("go", 2, GO_PANIC, "", "runtime_error"),
    ("go", 2, GO_TESTIFY + GO_PANIC, "", "failed"),  # a test assertion failed first
    ("go", 2, "", GO_STACK, "runtime_error"),
    ("go", 1, "--- FAIL: TestF (0.00s)\n    main_test.go:9: wrong\nFAIL\n", "", "failed"),
    ("go", 1, "", "", "runtime_error"),  # os.Exit(1) in the code under test
    ("java", 1, "", JAVA_ASSERT, "failed"),
    ("java", 1, "", JAVA_NPE, "runtime_error"),
    ("java", 1, "", "java.lang.AssertionError\n\tat Solution.f(Main.java:3)\n", "runtime_error"),
    ("cpp", 134, "", "main: main.cpp:30: int main(): Assertion `f(1) == 2' failed.\n", "failed"),
    ("cpp", 139, "", "", "runtime_error"),
    ("cpp", 134, "", "terminate called after throwing an instance of 'int'\n", "runtime_error"),
    ("js", 0, "", "Assertion failed\n", "failed"),
    ("js", 1, "", "AssertionError [ERR_ASSERTION]: false == true\n", "failed"),
    ("js", 1, "", "TypeError: Cannot read properties of null (reading 'x')\n", "runtime_error"),
    ("js", 0, L.TESTS_DONE + "\n", "", "passed"),
    # Status 0 without the harness's last line: the code under test exited early.
    ("js", 0, "", "", "runtime_error"),
    ("python", 0, "", "", "runtime_error"),
    ("python", 0, L.TESTS_DONE + "\n", "", "passed"),
    ("cpp", 0, "", "", "runtime_error"),
    ("java", 0, "", "", "runtime_error"),
    ("rust", 0, "", "", "runtime_error"),
    ("python", 1, "", "Traceback (most recent call last):\nAssertionError\n", "failed"),
    (
        "python",
        1,
        "",
        "Traceback (most recent call last):\nIndexError: list index\n",
        "runtime_error",
    ),
    ("python", 1, "", '  File "main.py", line 3\nSyntaxError: invalid syntax\n', "compile_error"),
]


@pytest.mark.parametrize("language,rc,out,err,expected", CASES)
def test_judges_split_assertion_failures_from_crashes(language, rc, out, err, expected) -> None:
    assert L.LANGUAGES[language].judge(rc, out, err) == expected


# Bodies that crash outside any assertion, whatever the function returns.
CRASH_BODY = {
    "python": "    return [][1]\n",
    "cpp": "    volatile int* p = nullptr;\n    *p = 1;\n    return {};\n}\n",
    "java": "        int[] empty = new int[0];\n        empty[1] = 1;\n"
    '        throw new IllegalStateException("unreachable");\n    }\n}\n',
    "js": "  return null.x;\n}\n",
    "go": '    var m map[string]int\n    m["a"] = 1\n    panic("unreachable")\n}\n',
    "rust": '    let v: Vec<i32> = Vec::new();\n    panic!("{}", v[1]);\n}\n',
}
_CLOSE = {"python": "\n", "cpp": ";\n}\n", "java": ";\n    }\n}\n", "js": ";\n}\n"}
_CLOSE |= {"go": "\n}\n", "rust": ";\n}\n"}
_INDENT = {"python": 4, "cpp": 4, "java": 8, "js": 2, "go": 4, "rust": 4}


def _wrong_body(dataset: str, lang: str) -> str:
    """A well-typed body returning a value problem 0's tests reject: an assertion fails."""
    if dataset == "humaneval-x":
        return fakes.DEFAULT_BODY[lang]
    value = build.DEFAULT_RETURN[lang][build.PROBLEMS[0].returns]
    return " " * _INDENT[lang] + f"return {value}" + _CLOSE[lang]


@pytest.mark.parametrize("dataset", ["minibench", "humaneval-x"])
def test_assertion_failures_fail_and_crashes_are_runtime_errors(dataset, tmp_path) -> None:
    """Problem 0 of every ready language: a wrong answer fails an assertion of the real test
    harness (Rust: assert! in the mini benchmark, assert_eq! in HumanEval-X), a crash in the
    code under test is a runtime error; both through the sandboxed evaluator."""
    data_dir = fakes.require_data() if dataset == "humaneval-x" else MINIBENCH_DIR
    fakes.require_sandbox()
    languages = fakes.ready_languages()
    if not languages:
        pytest.skip("no language toolchain is ready (run launch/install_toolchains.sh)")
    problems = D.load_problems(languages, data_dir)
    samples, expected = [], []
    for lang in languages:
        task = f"{fakes.PREFIX[lang]}/0"
        samples += [D.Sample(task, _wrong_body(dataset, lang), lang)]
        samples += [D.Sample(task, CRASH_BODY[lang], lang)]
        expected += [(task, "failed"), (task, "runtime_error")]
    result = evaluate(
        samples, problems, out_dir=tmp_path, workers=os.cpu_count() or 2, progress=False
    )
    got = [(r["task_id"], r["status"]) for r in result.rows]
    detail = [(r["task_id"], r["status"], r["stderr"][-300:]) for r in result.rows]
    assert got == expected, detail


# Bodies that end the program with status 0 before the tests can fail. (A Go completion
# cannot import os; the test binary runs with -test.paniconexit0 for any other way there.)
EXIT_BODY = {
    "python": "    import sys\n    sys.exit(0)\n",
    "cpp": "    exit(0);\n}\n",
    "java": "        System.exit(0);\n        return false;\n    }\n}\n",
    "js": "  process.exit(0);\n}\n",
    "rust": "    std::process::exit(0);\n}\n",
}


def test_exiting_with_status_0_before_the_tests_is_no_pass(tmp_path) -> None:
    """Exit status 0 counts only when the harness's tests all ran (languages.TESTS_DONE,
    Rust's libtest summary): an early exit(0) in the code under test is a runtime error."""
    data_dir = fakes.require_data()
    fakes.require_sandbox()
    languages = [lang for lang in fakes.ready_languages() if lang in EXIT_BODY]
    if not languages:
        pytest.skip("no language toolchain is ready (run launch/install_toolchains.sh)")
    problems = D.load_problems(languages, data_dir)
    samples = [D.Sample(f"{fakes.PREFIX[lang]}/0", EXIT_BODY[lang], lang) for lang in languages]
    result = evaluate(samples, problems, out_dir=tmp_path, workers=2, progress=False)
    detail = [(r["task_id"], r["status"], r["returncode"], r["stderr"][-300:]) for r in result.rows]
    assert [(r["status"], r["returncode"]) for r in result.rows] == [("runtime_error", 0)] * len(
        languages
    ), detail
