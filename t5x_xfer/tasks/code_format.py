"""MBPP-format records as HumanEval-style completions: the format HumanEval-X decodes in.

HumanEval-X prompts are code (imports, the signature and a doc comment) and the model writes
the body; the evaluator runs prompt + completion. A target stage trained on MBPP's
description -> whole program pairs learns to restate the signature, which a completion
evaluator cuts away (Python: at the first unindented line). This module rewrites an MBPP record
into that format with the ``ast`` module: the prompt is the module up to the entry point, then
its signature with the description and the first test as its docstring (``>>> call`` /
expected value, as in HumanEval); the completion is the function's body (see
``mbpp_to_completion`` for the module code that must run after it).
"""

from __future__ import annotations

import ast
import copy
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

INDENT = "    "
_PLACEHOLDER = "T5X_XFER_DOCSTRING_PLACEHOLDER"  # where the hand-written docstring goes
# Calls through which a statement can reach any module-level name without naming it.
_DYNAMIC = frozenset({"globals", "locals", "vars", "eval", "exec", "__import__"})


def _called_names(test: str) -> list[str]:
    """Names called in a test assert, in source order."""
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return []
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    return [c.func.id for c in sorted(calls, key=lambda c: (c.lineno, c.col_offset))]


def _example(test: str) -> str:
    """A test as a doctest: ``assert f(x) == y`` -> ``>>> f(x)`` then ``y``; other statements
    as they are (continuation lines marked ``...``). The text is the docstring's value: quotes
    and backslashes are escaped when it is written."""
    try:
        node = ast.parse(test).body[0]
    except (SyntaxError, IndexError):
        return ">>> " + " ".join(test.split())
    if (
        isinstance(node, ast.Assert)
        and isinstance(node.test, ast.Compare)
        and len(node.test.ops) == 1
        and isinstance(node.test.ops[0], ast.Eq)
    ):
        call, expected = ast.unparse(node.test.left), ast.unparse(node.test.comparators[0])
        return f">>> {call}\n{INDENT}{expected}"
    return ">>> " + f"\n{INDENT}... ".join(ast.unparse(node).splitlines())


def _docstring(text: str, tests: Sequence[str]) -> str:
    """HumanEval's docstring layout: the description, then the first test as a doctest."""
    doc = " ".join(text.split())
    if tests:
        doc += f"\n{INDENT}{_example(tests[0])}"
    return doc + f"\n{INDENT}"


def _reads(node: ast.AST) -> set[str]:
    """Every name a statement mentions, nested bodies included (a safe superset of what it
    reads when it runs)."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _binds(node: ast.AST, nested: bool = False) -> set[str]:
    """Module-level names a statement may bind or delete (a superset): not the locals of the
    functions and classes it defines, but their ``global`` names; ``*`` for a star import."""
    out: set[str] = set()
    if isinstance(node, ast.Global):
        out.update(node.names)
    elif not nested:
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            out.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.add(node.name)
        elif isinstance(node, ast.alias):
            out.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            out.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            out.add(node.rest)
    scope = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    inner = nested or isinstance(node, scope)
    for child in ast.iter_child_nodes(node):
        out |= _binds(child, inner)
    return out


def _definition_reads(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
    """What a ``def`` evaluates when it runs: decorators, defaults and annotations."""
    a = fn.args
    parts: list[ast.AST | None] = [*fn.decorator_list, *a.defaults, *a.kw_defaults, fn.returns]
    for arg in [*a.posonlyargs, *a.args, a.vararg, *a.kwonlyargs, a.kwarg]:
        parts.append(arg.annotation if arg is not None else None)
    return [p for p in parts if p is not None]


def _runs(stmt: ast.stmt) -> set[str]:
    """Names a module-level statement may read while it executes (a function's body does not
    run when it is defined; a class body does)."""
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
        return set().union(*(_reads(p) for p in _definition_reads(stmt)))
    return _reads(stmt)


def _movable(after: list[ast.stmt], fn: ast.FunctionDef, module: list[ast.stmt]) -> int:
    """How many of the statements after the entry point can run before its ``def`` instead,
    unchanged in meaning: a prefix that neither uses the function (directly or through what
    refers to it), nor rebinds its name or what its ``def`` evaluates. Helpers defined after
    the entry point thus join the prompt; code that calls it stays after it."""
    if fn.decorator_list or any(
        isinstance(n, ast.Call) for p in _definition_reads(fn) for n in ast.walk(p)
    ):
        return 0  # the def itself runs code: keep the original order
    uses = {fn.name}  # names whose use may reach the entry point
    while True:
        grown = uses.union(*(_binds(s) for s in module if _reads(s) & uses))
        if grown == uses:
            break
        uses = grown
    protected = {fn.name}.union(*(_reads(p) for p in _definition_reads(fn)))
    for i, stmt in enumerate(after):
        bound = _binds(stmt)
        if _runs(stmt) & (uses | _DYNAMIC) or bound & protected or "*" in bound:
            return i
    return len(after)


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if (
        len(body) > 1
        and isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return body[1:]  # the record's own docstring gives way to the description
    return body


def _convert(text: str, code: str, tests: Sequence[str]) -> tuple[dict[str, Any] | None, str]:
    """The completion record (``tail``: code follows the body), or None and why not."""
    try:
        tree = ast.parse(code.replace("\r\n", "\n"))
    except SyntaxError:
        return None, "do not parse"
    # The last top-level def of a name is the one the tests call.
    defs = {n.name: i for i, n in enumerate(tree.body) if isinstance(n, ast.FunctionDef)}
    entry = next((name for t in tests for name in _called_names(t) if name in defs), None)
    if entry is None:
        return None, "define no top-level function that their tests call"
    index = defs[entry]
    fn = tree.body[index]
    assert isinstance(fn, ast.FunctionDef)
    after = tree.body[index + 1 :]
    moved = _movable(after, fn, tree.body)
    head = tree.body[:index] + after[:moved]
    # The docstring is written here, always in HumanEval's triple double quotes (unparse
    # would switch quotes for a test containing them); a placeholder marks its place.
    doc = _docstring(text, tests)
    placeholder = ast.Constant(_PLACEHOLDER)
    signature = copy.copy(fn)
    signature.body = [ast.Expr(placeholder)]
    whole = copy.copy(fn)
    whole.body = [ast.Expr(placeholder), *_without_docstring(fn.body)]
    program = ast.Module(body=[*head, whole, *after[moved:]], type_ignores=[])
    prompt = ast.unparse(ast.Module(body=[*head, signature], type_ignores=[])) + "\n"
    full = ast.unparse(program) + "\n"
    marker = f'"""{_PLACEHOLDER}"""'
    if full.count(marker) != 1 or not full.startswith(prompt):
        return None, "are not reproduced by ast.unparse"
    literal = '"""' + doc.replace("\\", "\\\\").replace('"""', r"\"\"\"") + '"""'
    prompt, full = prompt.replace(marker, literal), full.replace(marker, literal)
    placeholder.value = doc
    try:
        same = ast.dump(ast.parse(full)) == ast.dump(program)
    except SyntaxError:
        same = False
    if not same:
        return None, "are not reproduced by ast.unparse"
    completion = full[len(prompt) :].lstrip("\n")  # unparse's blank line before a nested def
    tail = moved < len(after)
    return {"entry_point": entry, "prompt": prompt, "completion": completion, "tail": tail}, ""


def mbpp_to_completion(text: str, code: str, tests: Sequence[str]) -> dict[str, str] | None:
    """``{"entry_point", "prompt", "completion"}`` for one MBPP record, or None when the code
    does not parse or no test calls a top-level function it defines (then there is no
    completion to learn).

    prompt + completion is the record's program, normalised by ``ast.unparse`` (4-space
    indents, comments dropped), with the description and first test as the entry point's
    docstring, so it passes the record's tests when the code did. Every module-level
    statement keeps its place relative to the entry point, except that statements after it
    which cannot reach it (helpers, constants) move before it, into the prompt; what must run
    after the function (code calling it, rebinding it) follows its body in the completion,
    unindented, where HumanEval's truncation would cut a generated completion."""
    converted = _convert(text, code, tests)[0]
    if converted is not None:
        del converted["tail"]
    return converted


def _ids(ids: list[str]) -> str:
    return ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")


def completion_records(records: Iterable[Mapping[str, Any]], source: str) -> list[dict[str, Any]]:
    """MBPP-format records (``task_id``, ``text``, ``code``, ``test_list``) as completion
    records (``task_id``, ``prompt``, ``completion``, ``test_list``); records that cannot be
    converted are counted and logged with the reason, not silently dropped."""
    out: list[dict[str, Any]] = []
    skipped: dict[str, list[str]] = {}
    tails: list[str] = []
    for r in records:
        task_id = str(r.get("task_id", ""))
        converted, why = _convert(r["text"], r["code"], r["test_list"])
        if converted is None:
            skipped.setdefault(why, []).append(task_id)
            continue
        if converted.pop("tail"):
            tails.append(task_id)
        out.append(
            {
                "task_id": task_id,
                "prompt": converted["prompt"],
                "completion": converted["completion"],
                "test_list": list(r["test_list"]),
            }
        )
    if skipped:
        total = sum(len(ids) for ids in skipped.values())
        log.warning(
            "%s: %d of %d records left out of the completion format: %s",
            source,
            total,
            total + len(out),
            "; ".join(f"{len(ids)} {why} (task_ids {_ids(ids)})" for why, ids in skipped.items()),
        )
    if tails:
        log.info(
            "%s: %d records keep module code that must run after the entry point (it uses or "
            "rebinds it) after the body in their completion (task_ids %s)",
            source,
            len(tails),
            _ids(tails),
        )
    return out
