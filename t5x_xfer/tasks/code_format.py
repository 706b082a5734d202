"""MBPP-format records as HumanEval-style completions: the format HumanEval-X decodes in.

HumanEval-X prompts are code (imports, the signature and a doc comment) and the model writes
the body; the evaluator runs prompt + completion. A target stage trained on MBPP's
description -> whole program pairs learns to restate the signature, which a completion
evaluator cuts away (Python: at the first unindented line). This module rewrites an MBPP record
into that format with the ``ast`` module: the prompt is the other top-level definitions, then
the entry point's signature with the description and the first test as its docstring
(``>>> call`` / expected value, as in HumanEval); the completion is the function's body.
"""

from __future__ import annotations

import ast
import copy
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

INDENT = "    "
# Top-level statements kept in the prompt: what a function can depend on, not scripts or prints.
_PROMPT_NODES = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign)


def _called_names(test: str) -> list[str]:
    """Names called in a test assert, in source order."""
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return []
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    return [c.func.id for c in sorted(calls, key=lambda c: (c.lineno, c.col_offset))]


def _example(test: str) -> str:
    """A test as a doctest line: ``assert f(x) == y`` -> ``>>> f(x)`` then ``y``."""
    try:
        node = ast.parse(test).body[0]
    except (SyntaxError, IndexError):
        return f">>> {test.strip()}"
    if (
        isinstance(node, ast.Assert)
        and isinstance(node.test, ast.Compare)
        and len(node.test.ops) == 1
        and isinstance(node.test.ops[0], ast.Eq)
    ):
        call, expected = ast.unparse(node.test.left), ast.unparse(node.test.comparators[0])
        return f">>> {call}\n{INDENT}{expected}"
    return f">>> {test.strip()}"


def _docstring(text: str, tests: Sequence[str]) -> str:
    text = " ".join(text.split()).replace("\\", "\\\\").replace('"""', "'''")
    lines = [f'{INDENT}"""{text}']
    if tests:
        lines.append(f"{INDENT}{_example(tests[0])}")
    return "\n".join(lines) + f'\n{INDENT}"""\n'


def _indent(source: str) -> str:
    return "".join(INDENT + line if line.strip() else line for line in source.splitlines(True))


def mbpp_to_completion(text: str, code: str, tests: Sequence[str]) -> dict[str, str] | None:
    """``{"entry_point", "prompt", "completion"}`` for one MBPP record, or None when the code
    does not parse or no test calls a function it defines (then there is no completion to
    learn). Code is normalised by ``ast.unparse`` (4-space indents, comments dropped), so
    prompt + completion is a valid program and passes the record's tests when the code did."""
    try:
        tree = ast.parse(code.replace("\r\n", "\n"))
    except SyntaxError:
        return None
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    entry = next((name for t in tests for name in _called_names(t) if name in defs), None)
    if entry is None:
        return None
    fn = defs[entry]
    body = fn.body
    if len(body) > 1 and ast.get_docstring(fn, clean=False) is not None:
        body = body[1:]  # the record's own docstring gives way to the description
    header = copy.copy(fn)
    header.body = [ast.Pass()]
    signature = ast.unparse(header).rsplit("\n", 1)[0] + "\n"
    context = [n for n in tree.body if n is not fn and isinstance(n, _PROMPT_NODES)]
    preamble = "\n".join(ast.unparse(n) for n in context) + "\n\n" if context else ""
    completion = _indent(ast.unparse(ast.Module(body=body, type_ignores=[]))) + "\n"
    return {
        "entry_point": entry,
        "prompt": preamble + signature + _docstring(text, tests),
        "completion": completion,
    }


def completion_records(records: Iterable[Mapping[str, Any]], source: str) -> list[dict[str, Any]]:
    """MBPP-format records (``task_id``, ``text``, ``code``, ``test_list``) as completion
    records (``task_id``, ``prompt``, ``completion``, ``test_list``); records that cannot be
    converted are counted and logged, not silently dropped."""
    out, skipped = [], []
    for r in records:
        converted = mbpp_to_completion(r["text"], r["code"], r["test_list"])
        if converted is None:
            skipped.append(str(r.get("task_id", "")))
            continue
        out.append(
            {
                "task_id": str(r.get("task_id", "")),
                "prompt": converted["prompt"],
                "completion": converted["completion"],
                "test_list": list(r["test_list"]),
            }
        )
    if skipped:
        log.warning(
            "%s: %d of %d records do not parse or have no function that their tests call "
            "(task_ids %s%s); left out of the completion format",
            source,
            len(skipped),
            len(skipped) + len(out),
            ", ".join(skipped[:10]),
            " ..." if len(skipped) > 10 else "",
        )
    return out
