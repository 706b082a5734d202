"""File helpers shared by every binary: atomic writes and JSONL reading with line numbers.

Kept free of TensorFlow and JAX so that the code evaluator and launchers import it cheaply.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import secrets
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
