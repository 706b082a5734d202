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
