#!/usr/bin/env bash
# The test command: set up .venv with the test extras and the evaluator's toolchains
# (compilers, runtimes and libraries for HumanEval-X: installed with apt/npm when root, else
# listed as missing), then ruff and pytest.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -k hf -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/env.sh test
bash launch/install_toolchains.sh
ruff check t5x_xfer tests benchmarks
ruff format --check t5x_xfer tests benchmarks
python -m pytest -q "$@"
