"""Per-language recipes for HumanEval-X: stop rules, program assembly, commands and judging.

Everything that differs between languages lives in the ``LANGUAGES`` table so that a new
language (MultiPL-E style) is one more entry. The module imports nothing heavy because the
decoder imports ``STOP_SEQUENCES`` and ``truncate_completion`` from here to stop sampling early.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Callable, Mapping

# Status names, in the order reports list them. Only "passed" counts for pass@k.
STATUSES = (
    "passed",
    "failed",
    "compile_error",
    "runtime_error",
    "timeout",
    "output_limit",
    "environment_error",
)

# Text at which decoding may stop: each marks the start of something the harness supplies
# (the test, a main function) or the end of a code block. ``truncate_completion`` applies them.
STOP_SEQUENCES: dict[str, tuple[str, ...]] = {
    "python": ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ", "\n```"),
    "cpp": ("\nint main", "\n```"),
    "java": ("\npublic class Main", "\nclass Main", "\n```"),
    "js": ("\nconst test", "\nconsole.log(", "\nmodule.exports", "\n```"),
    "go": ("\nfunc Test", "\nfunc main", "\npackage ", "\n```"),
    "rust": ("\n#[cfg(test)]", "\nmod tests", "\nfn main", "\n```"),
}


def truncate_completion(language: str, completion: str) -> str:
    """Cut a generated continuation where the function ends, per the language's stop rules.

    Python follows HumanEval: the completion ends at its first non-empty unindented line.
    Brace languages end at the first stop sequence, so helpers after the function survive.

    >>> truncate_completion("python", "    return 1\\n\\ndef f():\\n    pass\\n")
    '    return 1\\n\\n'
    >>> truncate_completion("cpp", "  return 1;\\n}\\nint main(){}\\n")
    '  return 1;\\n}'
    """
    if language not in STOP_SEQUENCES:
        raise ValueError(f"unknown language {language!r}; known: {sorted(STOP_SEQUENCES)}")
    if language == "python":
        lines = completion.splitlines(keepends=True)
        for i, line in enumerate(lines):
            if line.strip() and not line[0].isspace():
                return "".join(lines[:i])
        return completion
    cut = len(completion)
    for stop in STOP_SEQUENCES[language]:
        at = completion.find(stop)
        if at != -1:
            cut = min(cut, at)
    return completion[:cut]


# --- program assembly ---

PYTHON_PREAMBLE = "\n".join(
    [
        "import math",
        "import re",
        "import sys",
        "import copy",
        "import datetime",
        "import itertools",
        "import collections",
        "import heapq",
        "import statistics",
        "import functools",
        "import hashlib",
        "import string",
        "import numpy",
        "import numpy as np",
        "from typing import *",
        "from collections import *",
    ]
)

# The headers the benchmark's C++ convention makes available; also the precompiled header.
CPP_HEADERS = (
    "stdlib.h",
    "stdio.h",
    "math.h",
    "string.h",
    "climits",
    "cmath",
    "cstring",
    "algorithm",
    "numeric",
    "vector",
    "string",
    "set",
    "map",
    "unordered_map",
    "unordered_set",
    "queue",
    "stack",
    "list",
    "deque",
    "iostream",
    "sstream",
    "fstream",
    "boost/any.hpp",
)
CPP_PREAMBLE = "".join(f"#include<{h}>\n" for h in CPP_HEADERS)

# Go standard packages a completion may use without importing them (it cannot add imports:
# the prompt's import block is replaced by exactly the packages the program uses).
GO_PACKAGES = {
    "math": "math",
    "strings": "strings",
    "fmt": "fmt",
    "strconv": "strconv",
    "time": "time",
    "bytes": "bytes",
    "regexp": "regexp",
    "sort": "sort",
    "rand": "math/rand",
    "md5": "crypto/md5",
    "unicode": "unicode",
    "utf8": "unicode/utf8",
    "big": "math/big",
    "bits": "math/bits",
    "errors": "errors",
    "hex": "encoding/hex",
    "reflect": "reflect",
    "heap": "container/heap",
}
_GO_IMPORT_BLOCK = re.compile(r"^import\s*(\([^)]*\)|\"[^\"]*\")\s*$", re.MULTILINE)


def go_imports_for(code: str, already: str = "") -> list[str]:
    """Import paths the code uses as ``pkg.Exported`` and ``already`` does not import.

    Go rejects unused imports, so the prompt's block cannot simply be kept.

    >>> go_imports_for("x := strings.Split(s, \\" \\"); math.Abs(1)")
    ['math', 'strings']
    """
    used = []
    for name, path in GO_PACKAGES.items():
        if re.search(rf"(?<![\w.]){name}\.[A-Z]", code) and f'"{path}"' not in already:
            used.append(path)
    return sorted(used)


# Printed once the harness's tests have all run (Python, C++, Java, JavaScript). Exit status 0
# alone is no pass: code under test that exits early with status 0 (sys.exit(0), exit(0),
# System.exit(0), process.exit(0)) skips the tests. Go's test binary runs with
# -test.paniconexit0 and Rust's must print libtest's "test result: ok." instead.
TESTS_DONE = "__t5x_xfer_tests_done__"
_CPP_MAIN = re.compile(r"\bint\s+main\s*\(")
_RUST_OK = re.compile(r"^test result: ok\.", re.M)


def _assemble_python(problem: Mapping[str, str], completion: str) -> dict[str, str]:
    done = f"print({TESTS_DONE!r})"
    program = "\n".join(
        [PYTHON_PREAMBLE, problem["prompt"] + completion, "", problem["test"], done, ""]
    )
    return {"main.py": program}


def _assemble_cpp(problem: Mapping[str, str], completion: str) -> dict[str, str]:
    """The harness's ``int main()`` becomes a function that the program's own main calls and
    then prints the marker (HumanEval-X's harnesses never return a value from main)."""
    test, n = _CPP_MAIN.subn("void t5x_xfer_tests(", problem["test"], count=1)
    if not n:
        raise ValueError(f"{problem.get('task_id')}: the C++ test harness has no 'int main('")
    test += f'\nint main() {{\n    t5x_xfer_tests();\n    puts("{TESTS_DONE}");\n}}\n'
    return {"main.cpp": CPP_PREAMBLE + problem["prompt"] + completion + "\n" + test}


# Java runs this class, which calls the harness's Main.main and then prints the marker.
JAVA_ENTRY = "T5xXferTests"


def _assemble_java(problem: Mapping[str, str], completion: str) -> dict[str, str]:
    entry = (
        f"class {JAVA_ENTRY} {{\n    public static void main(String[] args) throws Exception {{\n"
        f'        Main.main(args);\n        System.out.println("{TESTS_DONE}");\n    }}\n}}\n'
    )
    return {"Main.java": problem["prompt"] + completion + "\n" + problem["test"] + "\n" + entry}


def _assemble_js(problem: Mapping[str, str], completion: str) -> dict[str, str]:
    done = f'console.log("{TESTS_DONE}");\n'
    return {"main.js": problem["prompt"] + completion + "\n" + problem["test"] + "\n" + done}


def _assemble_go(problem: Mapping[str, str], completion: str) -> dict[str, str]:
    setup = problem["test_setup"]
    body = _GO_IMPORT_BLOCK.sub("", problem["prompt"]) + completion + "\n" + problem["test"]
    imports = go_imports_for(body, already=setup)
    block = "import (\n" + "".join(f'    "{p}"\n' for p in imports) + ")\n" if imports else ""
    return {"main_test.go": setup + "\n" + block + body + "\n"}


def _assemble_rust(problem: Mapping[str, str], completion: str) -> dict[str, str]:
    return {"main.rs": generation_prompt("rust", problem) + completion + "\n" + problem["test"]}


def generation_prompt(language: str, problem: Mapping[str, str]) -> str:
    """The text a model continues. Rust's ``prompt`` is only the doc comment, so the
    declaration (``use`` lines and signature) follows it; other languages use ``prompt``."""
    if language == "rust":
        return problem["prompt"] + problem["declaration"]
    return problem["prompt"]


# --- judging ---
# A program that ran and exited non-zero is "failed" when the output shows that one of the
# test harness's assertions failed (the program answered a test wrongly, even if it crashed
# afterwards), else "runtime_error" (it crashed or exited outside the tests' assertions). Each
# pattern is what that language's HumanEval-X harness prints for a failed assertion.

_PY_ASSERT = re.compile(r"^AssertionError\b", re.M)
# glibc's assert(): "prog: main.cpp:12: int main(): Assertion `x == 1' failed."
_CPP_ASSERT = re.compile(r"Assertion .* failed")
# The harness throws AssertionError from main; uncaught, the JVM prints this line.
_JAVA_ASSERT = re.compile(r"^Exception in thread \S+ java\.lang\.AssertionError\b", re.M)
# console.assert prints "Assertion failed" (exit status 0); node's assert module throws.
_JS_ASSERT = re.compile(r"Assertion failed|AssertionError")
# testify's assert.* report "Error Trace:"; a bare t.Error/t.Fail only leaves "--- FAIL:".
_GO_ASSERT = re.compile(r"^\s+Error Trace:", re.M)
_GO_FAIL = re.compile(r"^--- FAIL: ", re.M)
_GO_CRASH = re.compile(r"^(panic: |fatal error: )", re.M)
# assert!/assert_eq!/assert_ne! panics, in the message formats of Rust >= 1.73
# ("panicked at main.rs:5:9:\nassertion `left == right` failed") and before
# ("panicked at 'assertion failed: `(left == right)`...', main.rs:5:9").
_RUST_ASSERT = re.compile(
    r"panicked at (?:'assertion failed"
    r"|[^\n]*:\n(?:assertion failed: |assertion `left [=!]= right` failed))"
)


def _done(out: str) -> str:
    """Exit status 0: passed when the tests all ran, else the code under test exited early."""
    return "passed" if TESTS_DONE in out else "runtime_error"


def _judge_python(rc: int, out: str, err: str) -> str:
    if rc == 0:
        return _done(out)
    if "Traceback" not in err and re.search(r"^(SyntaxError|IndentationError|TabError)", err, re.M):
        return "compile_error"
    return "failed" if _PY_ASSERT.search(err) else "runtime_error"


def _judge_cpp(rc: int, out: str, err: str) -> str:
    if rc == 0:
        return _done(out)
    return "failed" if _CPP_ASSERT.search(err) else "runtime_error"


def _judge_java(rc: int, out: str, err: str) -> str:
    if rc == 0:
        return _done(out)
    return "failed" if _JAVA_ASSERT.search(err) else "runtime_error"


def _judge_js(rc: int, out: str, err: str) -> str:
    # console.assert only prints "Assertion failed"; the exit status stays 0.
    if _JS_ASSERT.search(err):
        return "failed"
    return _done(out) if rc == 0 else "runtime_error"


def _judge_go(rc: int, out: str, err: str) -> str:
    if rc == 0:
        return "passed"
    text = out + err
    # A panic inside a test also prints "--- FAIL:", a fatal error (stack overflow, deadlock)
    # or an exit from the code under test prints no assertion at all: crashes, not failures.
    asserted = _GO_ASSERT.search(text) or (_GO_FAIL.search(text) and not _GO_CRASH.search(text))
    return "failed" if asserted else "runtime_error"


def _judge_rust(rc: int, out: str, err: str) -> str:
    if rc == 0:  # libtest's summary: an early process::exit(0) never prints it
        return "passed" if _RUST_OK.search(out) else "runtime_error"
    return "failed" if _RUST_ASSERT.search(out + err) else "runtime_error"


# --- the recipe table ---

Command = list[str]
# (tool paths, work dir as the program sees it) -> commands
CommandsFn = Callable[[Mapping[str, str], str], list[Command]]


@dataclasses.dataclass(frozen=True)
class Language:
    """How one language is assembled, built, run and judged.

    ``build``/``run`` get resolved tool paths (see ``toolchains``) and the work dir path as
    seen inside the sandbox; ``env`` likewise. ``missing_library`` matches compiler or runtime
    output that means a benchmark dependency is absent: scored environment_error, not failure.
    ``parse``: the file a warm parser of the worker checks first (``compile_server``): a syntax
    error is the compile_error the sandbox would find, and a file that parses skips ``build``
    (for these languages only a syntax check).
    """

    name: str
    task_prefix: str
    hf_name: str
    executables: tuple[str, ...]
    assemble: Callable[[Mapping[str, str], str], dict[str, str]]
    build: CommandsFn
    run: CommandsFn
    judge: Callable[[int, str, str], str]
    env: Callable[[Mapping[str, str]], dict[str, str]]
    missing_library: str
    compile_timeout_s: float
    run_timeout_s: float
    version: int = 1  # bump to invalidate cached results when the recipe changes
    parse: str | None = None


def _no_env(tools: Mapping[str, str]) -> dict[str, str]:
    return {}


def _rust_build(t: Mapping[str, str], w: str) -> list[Command]:
    externs = []
    for crate in ("rand", "regex", "md5"):
        externs += ["--extern", f"{crate}={t['rust_crate_' + crate]}"]
    return [
        # opt-level 0 keeps overflow checks on, as `cargo test` (the benchmark's runner) does.
        [t["rustc"], "--edition", "2021", "--test", "-A", "warnings", "-C", "opt-level=0"]
        + ["-C", "debuginfo=0", *externs, "-L", f"dependency={t['rust_deps']}"]
        + (["-C", "link-arg=-fuse-ld=gold"] if t.get("ld.gold") else [])
        # std as a shared library: linking takes half the time (found at run time by rpath).
        + (
            ["-C", "prefer-dynamic", "-C", f"link-arg=-Wl,-rpath,{t['rust_std_dylib']}"]
            if t.get("rust_std_dylib")
            else []
        )
        + [f"{w}/main.rs", "-o", f"{w}/main"]
    ]


def _go_build(t: Mapping[str, str], w: str) -> list[Command]:
    """``go test -c``, after gofmt's parse when gofmt is there: on a file that does not
    parse (most samples of an untrained model) the go command spends about 120 ms, gofmt
    10 ms. gofmt's parser (go/parser) accepts the language the compiler's does; what it
    passes, the compiler still judges. Both run as one sandboxed command, so a program that
    parses pays gofmt's 10 ms, not a second sandbox set-up."""
    build = [t["go"], "test", "-c", "-vet=off", "-ldflags=-s -w", "-o", f"{w}/main.test", "."]
    if not t.get("gofmt"):
        return [build]
    parse = f"{shlex.quote(t['gofmt'])} -l -e {shlex.quote(w + '/main_test.go')} >/dev/null"
    return [["/bin/sh", "-c", f"{parse} && exec {shlex.join(build)}"]]


_JVM_FAST = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData"]

LANGUAGES: dict[str, Language] = {
    lang.name: lang
    for lang in [
        Language(
            name="python",
            task_prefix="Python",
            hf_name="python",
            executables=("python3",),
            assemble=_assemble_python,
            build=lambda t, w: [],
            run=lambda t, w: [[t["python3"], "-I", "-B", f"{w}/main.py"]],
            judge=_judge_python,
            env=_no_env,
            missing_library=r"No module named '?numpy",
            compile_timeout_s=0,
            run_timeout_s=15,
            version=3,  # 2: passed only when the tests all ran (TESTS_DONE); 3: parse server
            parse="main.py",
        ),
        Language(
            name="cpp",
            task_prefix="CPP",
            hf_name="cpp",
            executables=("g++",),
            assemble=_assemble_cpp,
            build=lambda t, w: [
                [t["g++"], "-std=c++17", "-w"]
                + (["-include", t["cpp_pch"]] if t.get("cpp_pch") else [])
                + (["-fuse-ld=gold"] if t.get("ld.gold") else [])
                + [f"{w}/main.cpp", "-o", f"{w}/main", "-lcrypto", "-lssl"]
            ],
            run=lambda t, w: [[f"{w}/main"]],
            judge=_judge_cpp,
            env=_no_env,
            missing_library=r"(boost|openssl)/[\w./]+: No such file|cannot find -l(crypto|ssl)",
            compile_timeout_s=60,
            run_timeout_s=15,
            version=3,  # 2: linked by gold when available; 3: TESTS_DONE
        ),
        Language(
            name="java",
            task_prefix="Java",
            hf_name="java",
            executables=("javac", "java"),
            assemble=_assemble_java,
            build=lambda t, w: [
                [t["javac"], *(f"-J{f}" for f in _JVM_FAST), "-nowarn", "-encoding", "UTF-8"]
                + ([f"-J-XX:SharedArchiveFile={t['javac_cds']}"] if t.get("javac_cds") else [])
                + ["-d", w, f"{w}/Main.java"]
            ],
            run=lambda t, w: [[t["java"], *_JVM_FAST, "-cp", w, JAVA_ENTRY]],
            judge=_judge_java,
            env=_no_env,
            missing_library=r"(?!)",
            compile_timeout_s=60,
            run_timeout_s=15,
            version=4,  # 2: judged by the assertion output; 3: warm javac; 4: TESTS_DONE
        ),
        Language(
            name="js",
            task_prefix="JavaScript",
            hf_name="js",
            executables=("node",),
            assemble=_assemble_js,
            build=lambda t, w: [[t["node"], "--check", f"{w}/main.js"]],
            run=lambda t, w: [[t["node"], f"{w}/main.js"]],
            judge=_judge_js,
            env=lambda t: {"NODE_PATH": t["node_modules"]},
            missing_library=r"Cannot find module 'js-md5'",
            compile_timeout_s=30,
            run_timeout_s=15,
            version=3,  # 2: passed only when the tests all ran (TESTS_DONE); 3: parse server
            parse="main.js",
        ),
        Language(
            name="go",
            task_prefix="Go",
            hf_name="go",
            executables=("go",),
            assemble=_assemble_go,
            build=_go_build,
            # os.Exit(0) inside a test would end the binary with status 0 before the tests
            # finished; with this flag (which `go test` passes too) it panics instead.
            run=lambda t, w: [[f"{w}/main.test", "-test.paniconexit0"]],
            judge=_judge_go,
            env=lambda t: {
                "GO111MODULE": "off",
                "GOPATH": t["gopath"],
                "CGO_ENABLED": "0",
                "GOFLAGS": "",
                "GOTOOLCHAIN": "local",
            },
            missing_library=r"cannot find package \"github.com/stretchr/testify",
            compile_timeout_s=120,
            run_timeout_s=15,
            version=4,  # 2: judged by the assertions; 3: gofmt parses first; 4: paniconexit0
        ),
        Language(
            name="rust",
            task_prefix="Rust",
            hf_name="rust",
            executables=("rustc",),
            assemble=_assemble_rust,
            build=_rust_build,
            run=lambda t, w: [[f"{w}/main", "--test-threads=1"]],
            judge=_judge_rust,
            env=_no_env,
            missing_library=r"can't find crate for `(rand|regex|md5)`",
            compile_timeout_s=120,
            run_timeout_s=15,
            version=4,  # 2: judged by the assertions; 3: std linked dynamically; 4: summary
        ),
    ]
}

PREFIX_TO_LANGUAGE = {lang.task_prefix: lang.name for lang in LANGUAGES.values()}


def language_of(task_id: str) -> str:
    """The language of a task id such as ``CPP/0``; raises naming the known prefixes."""
    prefix = task_id.split("/", 1)[0]
    if prefix not in PREFIX_TO_LANGUAGE or "/" not in task_id:
        raise ValueError(
            f"task_id {task_id!r} has no known language prefix; known: "
            + ", ".join(f"{p}/<n>" for p in PREFIX_TO_LANGUAGE)
        )
    return PREFIX_TO_LANGUAGE[prefix]


def check_languages(names: list[str] | tuple[str, ...]) -> list[str]:
    """Validate language names, raising with the allowed ones."""
    bad = [n for n in names if n not in LANGUAGES]
    if bad:
        raise ValueError(f"unknown language(s) {bad}; allowed: {sorted(LANGUAGES)}")
    return list(names)
