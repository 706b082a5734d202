#!/usr/bin/env bash
# The main job: the local CPU debug experiment, end to end, on a fresh machine.
# Sets up .venv and the code evaluator's toolchains (apt/npm when root), then runs the debug
# grids of both model families (gin/experiments/grid_debug_cpu.gin into runs/debug_cpu: a tiny
# T5; grid_debug_cpu_decoder.gin into runs/debug_cpu_decoder: a tiny Llama-architecture LM),
# their stages shared by two worker drivers (--jobs 2: a stage runs on the next free worker
# once its inputs are finished; output in runs/run-worker<i>.log, stage lines on the console):
# smoke data and tokenizer, the baseline, CNN/DailyMail and MNLI arms, each followed by the
# target stage, decoding and sandboxed execution on HumanEval-X (or the mini benchmark), then
# each grid's report.
# Finished stages are skipped on rerun; an interrupted stage resumes.
# Usage: bash launch/local.sh [--dry-run] [--humaneval_x_dir DIR] [EXTRA DRIVER ARGS]
#   --dry-run            print every command (the plan) instead of running it
#   --humaneval_x_dir D  evaluate on a local HumanEval-X copy (default: $T5X_HUMANEVAL_X_DIR,
#                        else the project's mini benchmark)
#   extra args go to the grid driver, e.g. --gin.DecodeSettings.num_samples=4, --root R (each
#   grid in R/<name>) or --verbose (library start-up lines too; also T5X_XFER_VERBOSE=1)
set -euo pipefail
cd "$(dirname "$0")/.."
dry_run=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --humaneval_x_dir)
      [ $# -ge 2 ] || { echo "error: --humaneval_x_dir needs a directory" >&2; exit 2; }
      [ -d "$2" ] || { echo "error: --humaneval_x_dir $2 is not a directory" >&2; exit 2; }
      export T5X_HUMANEVAL_X_DIR="$2"
      shift
      ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) args+=("$1") ;;
  esac
  shift
done
grids=(gin/experiments/grid_debug_cpu.gin gin/experiments/grid_debug_cpu_decoder.gin)
if [ "$dry_run" = 1 ]; then
  echo "source launch/env.sh"
  echo "bash launch/install_toolchains.sh"
  echo "python -m t5x_xfer.experiments run --jobs 2 --grid ${grids[*]} ${args[*]:-}"
  source launch/env.sh
  python -m t5x_xfer.experiments plan --grid "${grids[@]}" "${args[@]}"
  exit 0
fi
source launch/env.sh
bash launch/install_toolchains.sh
python -m t5x_xfer.experiments run --jobs 2 --grid "${grids[@]}" "${args[@]}"
