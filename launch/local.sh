#!/usr/bin/env bash
# The main job on a laptop or CI CPU: sets up .venv, then runs the local CPU run into runs/.
# Until the end-to-end debug experiment lands this is the model smoke run
# (python -m t5x_xfer.smoke); extra arguments go to it, e.g. --steps 100 --force.
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/env.sh
python -m t5x_xfer.smoke --out runs/smoke "$@"
