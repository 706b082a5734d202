"""Settings of the host process that the binaries apply at start."""

from __future__ import annotations

import ctypes
import os
import sys

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the kernel.

    XLA's CPU runtime allocates every step's temporary buffers anew. glibc adjusts its mmap and
    trim thresholds to what the process freed before, and after earlier work in the same process
    (the smoke data writer, an earlier stage of ``experiments run``) those buffers came from
    fresh pages: 10,000 page faults per step of the tiny debug model, a stage 30-50% slower.
    Fixed thresholds (what tcmalloc users get) keep them. The user's own ``GLIBC_TUNABLES``
    malloc settings win. Returns whether the settings were applied (glibc on Linux only).

    >>> isinstance(keep_freed_memory(), bool)
    True
    """
    if not sys.platform.startswith("linux") or "glibc.malloc" in os.environ.get(
        "GLIBC_TUNABLES", ""
    ):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    settings = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 512 << 20), (M_TOP_PAD, 64 << 20))
    return all(mallopt(param, value) == 1 for param, value in settings)
