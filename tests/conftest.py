"""Test-session set-up: eight simulated CPU devices, so sharding is tested on a laptop.

Must run before JAX initialises its backend (conftest files are imported before any test).
"""

import os

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}".strip()
