"""Host-process settings (t5x_xfer.host), each checked in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

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
