"""Host-process settings (t5x_xfer.host), each checked in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CODE = "from t5x_xfer import host; print(host.keep_freed_memory())"


def _run(env_extra: dict[str, str]) -> str:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _glibc() -> bool:
    import platform

    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not _glibc(), reason="malloc settings apply to glibc on Linux only")
def test_malloc_settings_apply_on_glibc():
    assert _run({"GLIBC_TUNABLES": ""}) == "True"


def test_users_own_malloc_tunables_win():
    assert _run({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1048576"}) == "False"


THREADS = """
import os, sys
from t5x_xfer import host
if sys.argv[1] != "default":
    host.limit_xla_cpu_threads(int(sys.argv[1]))
import jax
total = int(jax.numpy.ones(3).sum())
names = [open(f"/proc/self/task/{t}/comm").read() for t in os.listdir("/proc/self/task")]
print(total, sum("XLAEigen" in name for name in names))  # XLA's CPU worker pool
cpus = os.sched_getaffinity(0)
assert all(os.sched_getaffinity(int(t)) == cpus for t in os.listdir("/proc/self/task"))
try:
    host.limit_xla_cpu_threads(1)
except RuntimeError as e:
    print(e)
"""


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and at least 2 CPUs to see a smaller thread pool",
)
def test_xla_cpu_threads_start_fewer_threads_that_still_run_on_every_cpu():
    """One worker thread instead of one per CPU (XLA names its pool's threads tf_XLAEigen):
    the backend computes the same, every thread may run on all CPUs after, and a second call
    (the backend has started) is refused."""

    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device

    def run(arg: str) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", THREADS, arg], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    default, limited = run("default"), run("1")
    assert default[0].split()[0] == limited[0].split()[0] == "3"
    assert int(limited[0].split()[1]) == 1 < int(default[0].split()[1])
    assert "backend has started already" in limited[1]


def test_huge_pages_alone_leave_the_thresholds_to_keep_freed_memory():
    from t5x_xfer import host

    env = host.with_huge_pages({"GLIBC_TUNABLES": ""})
    assert env["GLIBC_TUNABLES"] == host.HUGE_PAGES
    assert _run(env) == str(_glibc())


HUGE = """
import ctypes
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
size = 64 << 20  # through malloc itself: numpy asks for huge pages on its own
ctypes.memset(libc.malloc(size), 1, size)
for line in open("/proc/self/smaps_rollup"):
    if line.startswith("AnonHugePages:"):
        print(int(line.split()[1]))
"""


def _thp_mode() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "absent"
    return text.split("[")[1].split("]")[0]


def test_with_huge_pages_puts_malloc_on_huge_pages():
    """A process started with ``with_huge_pages`` gets its large allocations on transparent
    huge pages where the kernel leaves them to madvise (glibc 2.35+)."""
    import platform

    from t5x_xfer import host

    version = tuple(int(p) for p in platform.libc_ver()[1].split(".")[:2] if p.isdigit())
    mode = _thp_mode()
    if not _glibc() or version < (2, 35) or mode != "madvise":
        pytest.skip(f"needs glibc 2.35+ and THP in madvise mode: {platform.libc_ver()}, {mode}")

    def huge_kib(env: dict[str, str]) -> int:
        out = subprocess.run(
            [sys.executable, "-c", HUGE], env=env, capture_output=True, text=True, check=True
        )
        return int(out.stdout)

    plain = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    assert huge_kib(plain) == 0
    assert huge_kib(host.with_huge_pages(plain)) >= 32 << 10
