"""Gin at the edge, as in T5X: binaries attach gin to their entry functions
(:func:`configurable_entry`, T5X's ``train_using_gin = gin.configurable(train)``) and parse
``--gin_file`` files found on search paths, then ``--gin.X=V`` overrides. Library code is plain
Python: gin files reach it by dynamic registration (``from __gin__ import dynamic_registration``).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
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
) -> None:
    """Parse files then bindings; a missing file or unknown binding fails here, before work."""
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
        gin.parse_config_files_and_bindings(resolved, list(bindings), finalize_config=finalize)
    finally:
        logging.getLogger().removeFilter(quiet)


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
