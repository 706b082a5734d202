"""The ``t5x-xfer`` console script: ``t5x-xfer BINARY [ARGS]`` = ``python -m t5x_xfer.BINARY``."""

from __future__ import annotations

import importlib
import sys

BINARIES = {
    "convert": "t5x_xfer.convert",
    "evaluate_code": "t5x_xfer.evaluate_code",
    "experiments": "t5x_xfer.experiments",
    "infer": "t5x_xfer.infer",
    "report": "t5x_xfer.report",
    "smoke_data": "t5x_xfer.testing.smoke_data",
    "train": "t5x_xfer.train",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BINARIES:
        known = ", ".join(sorted(BINARIES))
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown binary {argv[0]!r}; known: {known}", file=sys.stderr)
            return 2
        print(f"usage: t5x-xfer BINARY [ARGS]   (BINARY: {known})")
        return 0
    module = importlib.import_module(BINARIES[argv[0]])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
