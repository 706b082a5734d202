"""File helpers shared by every binary: atomic writes and JSONL reading with line numbers.

Kept free of TensorFlow and JAX so that the code evaluator and launchers import it cheaply.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and os.replace: never a torn file.

    The temporary file is created with mode 0666 and the kernel applies the umask, so the
    result has the mode a plain ``open(path, "w")`` gives (mkstemp's would be a private 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def iter_jsonl(path: str | Path, label: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for each non-blank line of a JSONL file (gzip if it ends in .gz).

    ``where`` is "[label ]path:line" for error messages; a line that is not a JSON object
    raises ValueError naming it.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    prefix = f"{label} " if label else ""
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{prefix}{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: malformed JSON ({e.msg}); expected one object") from e
            if not isinstance(record, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
            yield where, record


def check_output_dir(path: str | Path, flag: str) -> None:
    """Fail in one line, before anything is written, when directory ``path`` (given as
    ``flag``) cannot be used for output: it or a parent is a file, or it cannot be created or
    written to (probed with a temporary file in its nearest existing ancestor, so that
    root-owned and read-only filesystems are caught too). Remote paths (``gs://``) pass."""
    if "://" in str(path):
        return
    target = Path(path).expanduser()
    if target.exists() and not target.is_dir():
        raise ValueError(f"{flag} {target} is an existing file; give a directory path")
    ancestor = target
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{flag} {target}: {ancestor} is a file, so it cannot hold a directory")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as e:
        raise ValueError(
            f"{flag} {target} is not writable ({ancestor}: {e.strerror}); give a directory you "
            "can write to"
        ) from None


def check_output_file(path: str | Path, flag: str) -> None:
    """As :func:`check_output_dir` for a file: it must not be a directory, and its directory
    must be usable."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ValueError(f"{flag} {target} is a directory; give a file path")
    check_output_dir(target.parent, f"{flag} {target}: its directory")
