"""Gin at the edge, as in T5X: binaries attach gin to their entry functions
(:func:`configurable_entry`, T5X's ``train_using_gin = gin.configurable(train)``) and parse
``--gin_file`` files found on search paths, then ``--gin.X=V`` overrides. Library code is plain
Python: gin files reach it by dynamic registration (``from __gin__ import dynamic_registration``).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gin

REPO_ROOT = Path(__file__).resolve().parents[1]


def configurable_entry(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The gin-configurable version of a binary's entry function, registered under its
    package module (``t5x_xfer.train.train``) also when the binary runs as ``python -m``, whose
    module is ``__main__``: gin files name the package module, so both must be one object.

    A binary calls this first, before parsing: it clears any earlier config (a parsed config is
    locked against new registrations, and bindings must not leak between two calls of main in
    one process). Calling it again returns an equivalent configurable.
    """
    gin.clear_config()
    if fn.__module__ == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        if spec is not None:
            fn = getattr(importlib.import_module(spec.name), fn.__name__)
    return gin.configurable(fn)


def configurable_settings(cls: type, module: str) -> Callable[..., Any]:
    """A factory of plain ``cls`` instances with gin's bindings for ``cls`` applied (e.g.
    ``--gin.DecodeSettings.temperature=0.2``), the class itself left untouched. ``module`` is
    the public path gin files import it from (``t5x_xfer.decoding``), so that a gin file's
    dynamic registration and this one are the same selector."""
    factory = gin.external_configurable(cls, module=module)

    def build(**overrides: Any) -> Any:
        built = factory(**overrides)
        return cls(**{f.name: getattr(built, f.name) for f in dataclasses.fields(cls)})

    return build


def bound_parameters(configurable: Callable[..., Any]) -> set[str]:
    """The parameters gin binds for a configurable (after parsing)."""
    return set(gin.get_bindings(configurable))


def search_paths(extra: Sequence[str] = ()) -> list[str]:
    """Where gin files are looked up: given paths, the working dir, the repo root, then the
    repo's gin/ folder (so ``models/tiny.gin`` and ``gin/models/tiny.gin`` both work)."""
    paths = [*extra, os.getcwd(), str(REPO_ROOT), str(REPO_ROOT / "gin")]
    return list(dict.fromkeys(str(Path(p).resolve()) for p in paths))


def parse(
    gin_files: Sequence[str],
    bindings: Sequence[str] = (),
    gin_search_paths: Sequence[str] = (),
    finalize: bool = True,
    extra_macros: Sequence[str] = (),
    require_macros: bool = False,
) -> None:
    """Parse files then bindings; a missing file, an unknown binding, a value gin cannot
    parse (an unquoted string) or a macro no loaded gin file uses (a misspelling: the closest
    known name is suggested) fails here in one line, before work. ``extra_macros``: macros the
    binary itself reads (``macro(name)``), so binding them is known too. ``require_macros``:
    every macro used must have a value (:func:`check_macros_set`)."""
    gin.clear_config()
    paths = search_paths(gin_search_paths)
    for p in paths:
        gin.add_config_file_search_path(p)
    # Resolve to absolute paths here: a relative name gin cannot find in the working directory
    # is looked up as a Python package resource, which crashes on folders such as ./runs.
    resolved = []
    for f in gin_files:
        found = [Path(f)] if Path(f).is_file() else [Path(p) / f for p in paths]
        found = [c for c in found if c.is_file()]
        if not found:
            raise FileNotFoundError(f"gin file {f!r} not found in {paths}")
        resolved.append(str(found[0].resolve()))
    quiet = _DropPathNotFound()
    logging.getLogger().addFilter(quiet)  # gin logs every search path it tries and misses
    try:
        for f in resolved:
            gin.parse_config_file(f)
        known = macros() | set(extra_macros)
        for binding in bindings:
            _check_macro(binding, known)
            try:
                gin.parse_config(binding)
            except SyntaxError as e:
                raise ValueError(_syntax_message(binding, e)) from None
        if require_macros:
            check_macros_set()
        if finalize:
            gin.finalize()
    finally:
        logging.getLogger().removeFilter(quiet)


_MACRO_BINDING = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=")


def macros() -> set[str]:
    """Macros the parsed config defines or references (``%NAME``)."""
    names = {key[0] for key in gin.config._CONFIG if key[1] == "gin.macro"}
    for params in gin.config._CONFIG.values():
        for ref in _references(list(params.values())):
            if ref.scoped_selector.endswith("/gin.macro"):
                names.add(ref.scoped_selector.rsplit("/", 1)[0])
    return names


def _references(value: Any) -> Iterator[Any]:
    if isinstance(value, gin.config.ConfigurableReference):
        yield value
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _references(item)


def _check_macro(binding: str, known: set[str]) -> None:
    match = _MACRO_BINDING.match(binding)
    if match is None or match.group(1) in known:
        return
    name = match.group(1)
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    raise ValueError(
        f"--gin.{binding.strip()}: no loaded gin file uses a macro {name}; {hint}"
        f"known macros: {', '.join(sorted(known)) or 'none'}"
    )


def _syntax_message(binding: str, error: SyntaxError) -> str:
    name, _, value = binding.partition("=")
    value = value.strip()
    if value and value[0] not in "\"'([{%@" and not _is_literal(value):
        return (
            f"--gin.{binding.strip()}: gin values are Python literals, so a string needs "
            f"quotes inside the shell's: --gin.{name.strip()}='\"{value}\"'"
        )
    return f"--gin.{binding.strip()}: gin cannot parse it ({error.msg})"


def _is_literal(value: str) -> bool:
    try:
        ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value in ("True", "False", "None")
    return True


def check_macros_set() -> None:
    """Every macro the parsed config uses is given a value: one line naming a missing one and
    how to give it (gin's own error dumps the whole config at call time)."""
    defined = {
        key[0]: p.get("value") for key, p in gin.config._CONFIG.items() if key[1] == "gin.macro"
    }
    for name in sorted(macros()):
        value = defined.get(name, _UNSET)
        if value is _UNSET or (
            isinstance(value, gin.config.ConfigurableReference)
            and value.scoped_selector.startswith("gin.REQUIRED")
        ):
            raise ValueError(
                f"macro {name} is required but not set: give --gin.{name}=VALUE "
                f"(strings quoted: --gin.{name}='\"...\"')"
            )


_UNSET = object()


def error_line(error: BaseException) -> str:
    """An error's message without the lines gin appends ("In call to configurable ...")."""
    return str(error).split("\n  In call to configurable")[0].strip()


class _DropPathNotFound(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Path not found", "system_path_file_exists"))


def macro(name: str) -> Any:
    """The value of a gin macro, calling the configurable if it is a reference (``@x()``)."""
    value = gin.query_parameter(f"%{name}")
    if isinstance(value, gin.config.ConfigurableReference):
        return value.scoped_configurable_fn() if value.evaluate else value.scoped_configurable_fn
    return value


def split_flags(argv: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """Split T5X-style ``--gin_file=F``, ``--gin.X=V`` and ``--gin_bindings=X=V`` flags.

    Returns (files, bindings, other args).
    """
    files, bindings, rest = [], [], []
    for arg in argv:
        if arg.startswith("--gin_file="):
            files.append(arg.split("=", 1)[1])
        elif arg.startswith("--gin."):
            bindings.append(arg[len("--gin.") :])
        elif arg.startswith("--gin_bindings="):
            bindings.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return files, bindings, rest
