"""MBPP records in HumanEval's completion format: valid programs that still pass their tests."""

from __future__ import annotations

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
    assert " ".join(record["text"].split()).replace('"""', "'''") in prompt
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
    assert "2 of 3 records" in caplog.text and "7, 8" in caplog.text


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
