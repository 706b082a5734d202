"""Settings of the host process that the binaries apply at start."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Mapping

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the kernel.

    XLA's CPU runtime allocates every step's temporary buffers anew. glibc adjusts its mmap and
    trim thresholds to what the process freed before, and after earlier work in the same process
    (the smoke data writer, an earlier stage of ``experiments run``) those buffers came from
    fresh pages: 10,000 page faults per step of the tiny debug model, a stage 30-50% slower.
    Fixed thresholds (what tcmalloc users get) keep them. The user's own ``GLIBC_TUNABLES``
    threshold settings win. Returns whether the settings were applied (glibc on Linux only).

    >>> isinstance(keep_freed_memory(), bool)
    True
    """
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if not sys.platform.startswith("linux") or any(
        f"glibc.malloc.{name}" in tunables for name in _THRESHOLD_TUNABLES
    ):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    settings = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 512 << 20), (M_TOP_PAD, 64 << 20))
    return all(mallopt(param, value) == 1 for param, value in settings)


_THRESHOLD_TUNABLES = ("mmap_threshold", "trim_threshold", "top_pad", "mmap_max")

# glibc's malloc on transparent huge pages (glibc 2.35+; older ones ignore it).
HUGE_PAGES = "glibc.malloc.hugetlb=1"


def with_huge_pages(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with :data:`HUGE_PAGES` added to ``GLIBC_TUNABLES``, for processes it starts.

    Why: XLA's CPU runtime touches fresh memory for large buffers every step, and the kernel
    faults it in 4 KiB pages. CodeT5+ 220M's shapes (2 layers, batch 8, 512 -> 128, bfloat16)
    took 510,000 page faults and 3.9-4.1 s per step, on huge pages 1,600 and 3.5 s; the tiny
    debug model's step was unchanged. glibc reads the setting only when a process starts, so
    the launch scripts (``launch/env.sh``), the grid driver's workers and the benchmarks set it
    for the processes they start. A ``glibc.malloc.hugetlb`` of the user's own wins.

    >>> with_huge_pages({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})["GLIBC_TUNABLES"]
    'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1'
    >>> with_huge_pages({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})["GLIBC_TUNABLES"]
    'glibc.malloc.hugetlb=0'
    """
    out = dict(env)
    tunables = out.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" not in tunables:
        out["GLIBC_TUNABLES"] = f"{tunables}:{HUGE_PAGES}" if tunables else HUGE_PAGES
    return out


def limit_xla_cpu_threads(threads: int) -> None:
    """Give JAX's CPU backend ``threads`` worker threads instead of one per core.

    Why: on a few cores the tiny debug model's step is bound by dispatching XLA's thousands of
    small thunks; a second thread made it only 6% faster in wall time and cost a third more
    CPU time (2 cores: 32.9 ms and 52 ms of CPU per step against 35.0 ms and 37 ms), CPU that
    another worker driver or the sandboxed executions beside it use better. XLA sizes the pool
    by the CPUs the process may run on when the backend starts, and has no option for it: so
    the backend starts on ``threads`` CPUs, then every thread may run on all of them again.
    Call before anything starts JAX's backend (a ``RuntimeError`` otherwise).
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    import jax
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        raise RuntimeError("limit_xla_cpu_threads: JAX's backend has started already")
    if not hasattr(os, "sched_setaffinity"):  # not Linux: JAX's own pool size
        return
    cpus = sorted(os.sched_getaffinity(0))
    if threads >= len(cpus):
        return
    os.sched_setaffinity(0, set(cpus[:threads]))
    try:
        jax.devices()
    finally:
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(tid), set(cpus))
