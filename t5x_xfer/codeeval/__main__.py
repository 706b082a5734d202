"""``python -m t5x_xfer.codeeval doctor``: per language, ready or what is missing and how to
install it, and the sandbox tier this machine offers."""

import argparse
import sys

from t5x_xfer.codeeval.toolchains import doctor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m t5x_xfer.codeeval")
    parser.add_argument("command", choices=["doctor"])
    parser.parse_args(argv)
    return doctor()


if __name__ == "__main__":
    sys.exit(main())
