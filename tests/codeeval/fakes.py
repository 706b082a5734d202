"""Shared helpers for the codeeval tests: data location, skips with reasons, sample bodies."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from pathlib import Path

import pytest

from t5x_xfer.codeeval import sandbox as sb
from t5x_xfer.codeeval import toolchains as tc

DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "humaneval-x"
ALL = ("python", "cpp", "java", "js", "go", "rust")

# Bodies that must fail: a default value, or an exception. Java and Go need the task's type.
DEFAULT_BODY = {
    "python": "    return None\n",
    "cpp": "    return {};\n}\n",
    "java": "        return false;\n    }\n}\n",  # Java/0 returns boolean
    "js": "  return undefined;\n}\n",
    "go": "    return false\n}\n",  # Go/0 returns bool
    "rust": "    return Default::default();\n}\n",
}
THROW_BODY = {
    "python": "    raise RuntimeError('not implemented')\n",
    "cpp": "    throw 1;\n}\n",
    "java": '        throw new RuntimeException("not implemented");\n    }\n}\n',
    "js": "  throw new Error('not implemented');\n}\n",
    "go": '    panic("not implemented")\n}\n',
    "rust": '    panic!("not implemented");\n}\n',
}
PREFIX = {"python": "Python", "cpp": "CPP", "java": "Java", "js": "JavaScript", "go": "Go"}
PREFIX["rust"] = "Rust"


def require_data() -> Path:
    if not (DATA_DIR / "python").is_dir():
        pytest.skip(f"HumanEval-X data not found at {DATA_DIR} (see shared/data/humaneval-x)")
    return DATA_DIR


@functools.lru_cache(maxsize=1)
def _chains() -> dict[str, tc.Toolchain]:
    return tc.discover(ALL)


def ready_languages(languages: Iterable[str] = ALL) -> list[str]:
    """Languages whose toolchain is complete; prints why the others are left out."""
    ready = []
    for lang in languages:
        chain = _chains()[lang]
        if chain.ready:
            ready.append(lang)
        else:
            print(f"[codeeval tests] {lang} left out: {'; '.join(chain.missing)}")
    return ready


def require_languages(*languages: str) -> None:
    for lang in languages:
        if not _chains()[lang].ready:
            pytest.skip(f"{lang} toolchain missing: {'; '.join(_chains()[lang].missing)}")


def require_sandbox() -> sb.Probe:
    found = sb.probe()
    if found.tier == "none":
        pytest.skip("no sandbox tier available (no bubblewrap namespaces and not root)")
    return found


def write_samples(path: Path, records: Iterable[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def processes() -> list[tuple[int, int, str]]:
    """(pid, real uid, command line) of every live process, to look for survivors."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            uid = int(Path(f"/proc/{entry}/status").read_text().split("Uid:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue
        found.append((int(entry), uid, cmdline))
    return found
