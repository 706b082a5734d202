"""MBPP records in HumanEval's completion format: valid programs that still pass their tests."""

from __future__ import annotations

import ast
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from t5x_xfer.codeeval import languages as L
from t5x_xfer.io_utils import iter_jsonl
from t5x_xfer.tasks import sources
from t5x_xfer.tasks.code_format import completion_records, mbpp_to_completion

SHIPPED_HUMANEVAL_X = Path(__file__).resolve().parents[3] / "shared" / "data" / "humaneval-x"

# MBPP's own shapes: \r\n line ends, 1-space and tab indents, an import, a helper class that the
# tests use, a helper defined after the entry point, the record's own docstring, an assert that
# is not `==`.
RECORDS = [
    {
        "task_id": 2,
        "text": "Write a function to find the similar elements from the given two tuple lists.",
        "code": "def similar_elements(test_tup1, test_tup2):\r\n"
        "  res = tuple(set(test_tup1) & set(test_tup2))\r\n  return (res) ",
        "test_list": [
            "assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)",
            "assert similar_elements((1, 2, 3, 4),(5, 4, 3, 7)) == (3, 4)",
        ],
    },
    {
        "task_id": 3,
        "text": 'Write a python function to identify non-prime numbers ("""quoted""").',
        "code": "import math\r\ndef is_not_prime(n):\r\n\tresult = False\r\n"
        "\tfor i in range(2,int(math.sqrt(n)) + 1):\r\n\t\tif n % i == 0:\r\n"
        "\t\t\tresult = True\r\n\treturn result",
        "test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True"],
    },
    {
        "task_id": 601,
        "text": "Write a function to find the longest chain of pairs.",
        "code": "class Pair(object):\r\n\tdef __init__(self, a, b):\r\n\t\tself.a = a\r\n"
        "\t\tself.b = b\r\ndef max_chain_length(arr, n):\r\n\tmcl = [1] * n\r\n"
        "\tfor i in range(1, n):\r\n\t\tfor j in range(i):\r\n"
        "\t\t\tif arr[i].a > arr[j].b and mcl[i] < mcl[j] + 1:\r\n"
        "\t\t\t\tmcl[i] = mcl[j] + 1\r\n\treturn max(mcl)",
        "test_list": [
            "assert max_chain_length([Pair(5, 24), Pair(15, 25), Pair(27, 40), Pair(50, 60)], 4)"
            " == 3"
        ],
    },
    {
        "task_id": 602,
        "text": "Write a function to double and add one.",
        "code": 'def main(x):\n    """Old docstring."""\n    return helper(x) + 1\n'
        "def helper(y):\n    return y * 2\n",
        "test_list": ["assert math.isclose(main(1.5), 4.0)", "assert main(2) == 5"],
    },
]


def _args(record):
    return {"text": record["text"], "code": record["code"], "tests": record["test_list"]}


def _docstring_of(source: str, name: str) -> str:
    """The docstring's value (escapes resolved) of top-level function ``name`` in source that
    parses (a prompt parses once the missing body is a bare ``...``)."""
    tree = ast.parse(source + "    ...\n" if source.endswith('"""\n') else source)
    fn = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name][-1]
    doc = ast.get_docstring(fn, clean=False)
    assert doc is not None
    return doc


def _run_python(program: str) -> subprocess.CompletedProcess[str]:
    """Trusted test programs only (never model output): a plain child interpreter."""
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: str(r["task_id"]))
def test_prompt_plus_completion_passes_the_records_tests(record):
    converted = mbpp_to_completion(record["text"], record["code"], record["test_list"])
    assert converted is not None
    prompt, completion = converted["prompt"], converted["completion"]
    entry = converted["entry_point"]
    # HumanEval's shape: the prompt ends in the entry point's docstring, the body is indented,
    # and the evaluator's Python truncation keeps all of it.
    assert f"def {entry}(" in prompt and prompt.endswith('"""\n')
    assert _docstring_of(prompt, entry).startswith(" ".join(record["text"].split()) + "\n")
    assert all(line.startswith("    ") for line in completion.splitlines() if line.strip())
    assert L.truncate_completion("python", completion) == completion
    tests = "\n".join(["import math", *record["test_list"]])
    ok = _run_python(f"{prompt}{completion}\n{tests}\n")
    assert ok.returncode == 0, ok.stderr
    # The check can fail: the prompt alone (no body) does not pass.
    broken = _run_python(f"{prompt}    return None\n\n{tests}\n")
    assert broken.returncode != 0


def test_the_docstring_shows_the_first_test_as_a_doctest():
    converted = mbpp_to_completion(**_args(RECORDS[0]))
    assert converted is not None
    assert ">>> similar_elements((3, 4, 5, 6), (5, 7, 4, 10))\n    (4, 5)\n" in converted["prompt"]
    assert "Old docstring" not in mbpp_to_completion(**_args(RECORDS[3]))["completion"]


def test_unconvertible_records_are_left_out_and_named(caplog):
    bad = [
        {"task_id": 7, "text": "Python 2", "code": "print 'hi'", "test_list": ["assert f(1)"]},
        {
            "task_id": 8,
            "text": "Tests call nothing the code defines",
            "code": "def f(x):\n    return x\n",
            "test_list": ["assert g(1) == 1"],
        },
    ]
    with caplog.at_level(logging.WARNING):
        out = completion_records([*bad, RECORDS[0]], "MBPP train")
    assert [r["task_id"] for r in out] == ["2"]
    assert "2 of 3 records" in caplog.text
    assert "1 do not parse (task_ids 7)" in caplog.text
    assert "1 define no top-level function that their tests call (task_ids 8)" in caplog.text


def test_sources_give_the_completion_format(tmp_path):
    path = tmp_path / "mbpp.jsonl"
    rows = [{**r, "task_id": 600 + i} for i, r in enumerate(RECORDS, start=1)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = sources.mbpp_source(path, completion=True).get_dataset("train", shuffle=False)
    got = list(ds.as_numpy_iterator())
    assert [g["task_id"].decode() for g in got] == ["601", "602", "603", "604"]
    first = mbpp_to_completion(**_args(RECORDS[0]))
    assert got[0]["prompt"].decode() == first["prompt"]
    assert got[0]["completion"].decode() == first["completion"]
    plain = sources.mbpp_source(path).get_dataset("train", shuffle=False)
    assert next(plain.as_numpy_iterator())["code"].decode() == RECORDS[0]["code"]


def test_humaneval_python_canonical_programs_survive_the_rewrite():
    """Real code: every HumanEval-X Python canonical program (prompt + solution), rewritten as
    prompt/completion, still passes the benchmark's own tests (ast.unparse keeps semantics)."""
    path = SHIPPED_HUMANEVAL_X / "python" / "humaneval_python.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"HumanEval-X data not found at {path} (see shared/data/humaneval-x)")
    failed = []
    for _, row in iter_jsonl(path):
        entry = re.findall(r"check\((\w+)\)", row["test"])[-1]
        code = row["prompt"] + row["canonical_solution"]
        converted = mbpp_to_completion(row["text"], code, [f"{entry}()"])
        assert converted is not None, row["task_id"]
        program = converted["prompt"] + converted["completion"] + "\n" + row["test"] + "\n"
        if _run_python(program).returncode != 0:
            failed.append(row["task_id"])
    assert not failed


# Module shapes beyond imports, defs and plain assignments: (name, code, tests, tail), where
# tail says that code must stay after the entry point (it uses or rebinds it), so the
# completion continues past the body. Each program passes its tests as written here.
HOSTILE = [
    (
        "annotated_assignments",
        "from typing import Dict\nLIMIT: int = 10\nCACHE: Dict[int, int] = {}\n"
        "def capped(x):\n    CACHE[x] = min(x, LIMIT)\n    return CACHE[x]\nBONUS: int = 5\n",
        ["assert capped(3) == 3", "assert capped(30) == 10"],
        False,
    ),
    (
        "try_except_import",
        "try:\n    from math import gcd\nexcept ImportError:\n    from fractions import gcd\n"
        "def lcm(a, b):\n    return a * b // gcd(a, b)\n",
        ["assert lcm(4, 6) == 12", "assert lcm(5, 7) == 35"],
        False,
    ),
    (
        "loop_fills_a_table",
        "SQUARES = {}\nfor i in range(20):\n    SQUARES[i] = i * i\n"
        "def square_of(n):\n    return SQUARES[n]\n",
        ["assert square_of(7) == 49"],
        False,
    ),
    (
        "augmented_assignments",
        "OFFSET = 1\nOFFSET += 2\ndef shift(x):\n    return x + OFFSET\nOFFSET *= 10\n",
        ["assert shift(1) == 31"],
        False,
    ),
    (
        "with_block",
        "import io\nwith io.StringIO('a,b,c') as fh:\n    HEADER = fh.read().split(',')\n"
        "def column(i):\n    return HEADER[i]\n",
        ["assert column(1) == 'b'"],
        False,
    ),
    (
        "setrecursionlimit",
        "import sys\nsys.setrecursionlimit(10000)\n"
        "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n",
        ["assert depth(3000) == 3000"],
        False,
    ),
    (
        "if_block_defines_helpers",
        "import sys\nif sys.version_info >= (3, 0):\n    def helper(x):\n        return x * 2\n"
        "else:\n    def helper(x):\n        return x\n"
        "def double_plus_one(x):\n    return helper(x) + 1\n",
        ["assert double_plus_one(4) == 9"],
        False,
    ),
    (
        "async_helper_after_the_entry_point",
        "import asyncio\ndef run_triple(x):\n    return asyncio.run(triple(x))\n"
        "async def triple(x):\n    await asyncio.sleep(0)\n    return 3 * x\n",
        ["assert run_triple(4) == 12"],
        False,
    ),
    (
        "module_code_calls_the_entry_point",
        "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
        "    return a\nFIBS = [fib(i) for i in range(30)]\n"
        "def fib_index(value):\n    return FIBS.index(value)\n",
        ["assert fib(10) == 55", "assert fib_index(55) == 10"],
        True,
    ),
    (
        "class_body_calls_the_entry_point",
        "def area(w, h):\n    return w * h\nclass Shapes:\n    UNIT = area(1, 1)\n"
        "def unit_area():\n    return Shapes.UNIT\n",
        ["assert area(2, 3) == 6", "assert unit_area() == 1"],
        True,
    ),
    (
        "entry_point_rebound_by_a_cache",  # exponential without the cache: times out
        "import functools\ndef paths(n):\n    if n < 2:\n        return 1\n"
        "    return paths(n - 1) + paths(n - 2)\n"
        "paths = functools.lru_cache(maxsize=None)(paths)\n",
        ["assert paths(80) == 37889062373143906"],
        True,
    ),
    (
        "decorated_entry_point_keeps_its_order",
        "import functools\n@functools.lru_cache(maxsize=None)\ndef ways(n):\n"
        "    return 1 if n < 2 else ways(n - 1) + helper(n)\n"
        "def helper(n):\n    return ways(n - 2)\n",
        ["assert ways(80) == 37889062373143906"],
        True,
    ),
    (
        "main_guard_calls_the_entry_point",
        "def greet(name):\n    return 'Hello, ' + name\n"
        "if __name__ == '__main__':\n    print(greet('world'))\n",
        ["assert greet('x') == 'Hello, x'"],
        True,
    ),
    (
        "star_import_rebinds_the_entry_point",  # math.gcd replaces the stub: order matters
        "def gcd(a, b):\n    return 0\nfrom math import *\n",
        ["assert gcd(12, 8) == 4"],
        True,
    ),
    (
        "tests_with_triple_quotes_and_backslashes",
        "def count_quotes(s):\n    return s.count('\"')\n",
        ['assert count_quotes(\'say """hi"""\') == 6', 'assert count_quotes("a\\\\\\"") == 1'],
        False,
    ),
    (
        "non_equality_test_with_a_triple_quoted_newline",
        "def count_lines(s):\n    return len(s.splitlines())\n",
        ['assert count_lines("""one\ntwo\\\\\n""") > 1', "assert count_lines('') == 0"],
        False,
    ),
]


def _statements(source: str, entry: str) -> tuple[list[str], list[str]]:
    """Top-level statements (as ast dumps, docstrings dropped) before and after the last
    ``def entry``."""
    body = ast.parse(source).body
    at = max(i for i, n in enumerate(body) if isinstance(n, ast.FunctionDef) and n.name == entry)
    return [ast.dump(n) for n in body[:at]], [ast.dump(n) for n in body[at + 1 :]]


@pytest.mark.parametrize("name,code,tests,tail", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_module_shapes_stay_valid_and_pass(name, code, tests, tail):
    text = 'Check the """shape""" of C:\\temp\\new and "quotes".'
    assert _run_python(code + "\n" + "\n".join(tests) + "\n").returncode == 0  # as written
    converted = mbpp_to_completion(text, code, tests)
    assert converted is not None
    prompt, completion, entry = (converted[k] for k in ("prompt", "completion", "entry_point"))
    program = prompt + completion
    ast.parse(program)
    ok = _run_python(program + "\n" + "\n".join(tests) + "\n")
    assert ok.returncode == 0, ok.stderr
    # The docstring holds the description and the first test exactly (escapes resolved).
    assert prompt.endswith('"""\n')
    doc = _docstring_of(prompt, entry)
    assert doc.startswith(" ".join(text.split()) + "\n    >>> ")
    first = ast.parse(tests[0]).body[0].test
    assert ast.unparse(first.left if isinstance(first, ast.Compare) else first) in doc
    # Every statement survives; those before the entry point stay before it in order, those
    # that must follow it stay after it in order (only movable ones join the prompt).
    before, after = _statements(code, entry)
    new_before, new_after = _statements(program, entry)
    assert sorted(before + after) == sorted(new_before + new_after)
    assert new_before[: len(before)] == before
    assert new_after == after[len(after) - len(new_after) :]
    # A completion is the body alone unless code must run after the function.
    assert (L.truncate_completion("python", completion) != completion) == tail
    assert bool(new_after) == tail


def test_what_cannot_be_made_right_is_left_out_with_the_reason(caplog):
    """An entry point defined only inside a block, or bound to a lambda, has no top-level
    signature to put in a HumanEval prompt."""
    records = [
        {
            "task_id": 11,
            "text": "Only inside a block.",
            "code": "import sys\nif sys.version_info >= (3, 0):\n    def f(x):\n        return x\n",
            "test_list": ["assert f(1) == 1"],
        },
        {
            "task_id": 12,
            "text": "A lambda.",
            "code": "f = lambda x: x\n",
            "test_list": ["assert f(1) == 1"],
        },
    ]
    for r in records:  # the programs themselves pass
        assert _run_python(r["code"] + "\n" + r["test_list"][0] + "\n").returncode == 0
    with caplog.at_level(logging.WARNING):
        out = completion_records([*records, RECORDS[0]], "code_jsonl train")
    assert [r["task_id"] for r in out] == ["2"]
    assert "2 of 3 records left out" in caplog.text
    assert "2 define no top-level function that their tests call (task_ids 11, 12)" in caplog.text
