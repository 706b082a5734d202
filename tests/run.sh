#!/usr/bin/env bash
# The test command: set up .venv with the test extras, then ruff and pytest.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -k hf -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/env.sh test
ruff check t5x_xfer tests benchmarks
ruff format --check t5x_xfer tests benchmarks
python -m pytest -q "$@"
