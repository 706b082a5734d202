"""File helpers shared by every binary: atomic writes and JSONL reading with line numbers.

Kept free of TensorFlow and JAX so that the code evaluator and launchers import it cheaply.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    """The process umask (read once: os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and os.replace: never a torn file.

    The file gets the mode a plain ``open(path, "w")`` would (0666 less the umask), not
    mkstemp's private 0600, so results stay readable by the rest of a team.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fchmod(f.fileno(), _FILE_MODE)
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
