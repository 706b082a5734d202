"""Quiet by default: the binaries show the project's own progress and results, not the start-up
chatter of TensorFlow, absl and CUDA (oneDNN notices, "Could not find cuda drivers", "failed
call to cuInit", seqio's "uncached FunctionDataset" warning), which repeats in every stage.

``--verbose`` on a binary, or ``T5X_XFER_VERBOSE=1`` in the environment (inherited by the
stages the grid driver starts), brings all of it back.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator

ENV_VAR = "T5X_XFER_VERBOSE"
FORMAT = "%(levelname)s %(name)s: %(message)s"
# Libraries that log through Python logging; quiet mode keeps only their errors.
PROJECT_LOGGER = "t5x_xfer"
NOISY_LOGGERS = ("absl", "tensorflow", "jax._src.xla_bridge", "orbax", "datasets", "h5py")


class _DropOrphanedTaskErrors(logging.Filter):
    """asyncio's "Task (or _GatheringFuture) exception was never retrieved", logged whenever
    the garbage collector meets an orbax read that failed beside another: the binary has
    reported the unreadable checkpoint in its own line already."""

    def filter(self, record: logging.LogRecord) -> bool:
        first = record.getMessage().split("\n", 1)[0]
        return not first.endswith("exception was never retrieved")


_ORPHANED_TASKS = _DropOrphanedTaskErrors()


def verbose_requested(flag: bool = False) -> bool:
    return flag or os.environ.get(ENV_VAR, "") not in ("", "0")


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose",
        action="store_true",
        help=f"show library start-up and warning messages too (or set {ENV_VAR}=1)",
    )


def setup(verbose: bool = False, *, tensorflow: bool = False, fmt: str = FORMAT) -> bool:
    """Configure logging for a binary; returns whether it is verbose.

    ``tensorflow``: import TensorFlow now, with its C++ start-up lines sent to /dev/null in
    quiet mode, and hide GPUs from it (as T5X does: TensorFlow only feeds data and must not
    claim accelerator memory that JAX needs). Binaries that use seqio pass True.
    """
    verbose = verbose_requested(verbose)
    if verbose:
        os.environ[ENV_VAR] = "1"  # the stages a binary starts inherit it
    # force: orbax's import has already configured the root logger (WARNING), which made a
    # plain basicConfig a no-op and hid the project's own INFO lines. The project's loggers
    # show INFO; libraries show warnings (errors only for the noisy ones), INFO when verbose.
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=fmt, force=True)
    logging.getLogger(PROJECT_LOGGER).setLevel(logging.INFO)
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        logging.getLogger("asyncio").addFilter(_ORPHANED_TASKS)  # once: filters are a set
    if tensorflow:
        with contextlib.nullcontext() if verbose else stderr_to_devnull():
            import tensorflow as tf

            tf.config.set_visible_devices([], "GPU")
    return verbose


@contextlib.contextmanager
def stderr_to_devnull() -> Iterator[None]:
    """Send file descriptor 2 (what C++ libraries write to) to /dev/null for a while; Python
    exceptions still reach the caller and are printed after it is restored."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
