#!/usr/bin/env bash
# Multi-host GPU training under SLURM: writes a batch script to runs/slurm/ and submits it with
# sbatch. The job sets up .venv once (launch/env.sh gpu: pip install -e .[gpu]) on the first
# node, then srun starts one process per GPU, each running
#   python -m t5x_xfer.train --multihost --coordinator_address=FIRST_NODE:PORT \
#       --process_count=$SLURM_NTASKS --process_index=$SLURM_PROCID TRAIN_ARGS...
# The repository (and .venv) must be on a filesystem every node mounts; so must MODEL_DIR
# (or use gs://). --dry-run prints the batch script and the sbatch command instead.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bash launch/gpu_slurm.sh --nodes N --gpus-per-node G [options] -- TRAIN_ARGS...

Submits a SLURM job running `python -m t5x_xfer.train --multihost ... TRAIN_ARGS...` with one
process per GPU on N nodes.

required:
  --nodes N              number of nodes
  --gpus-per-node G      GPUs (= processes) per node
options:
  --partition P          SLURM partition
  --time T               time limit, e.g. 24:00:00
  --account A            account to charge
  --job-name NAME        default t5x_xfer
  --port PORT            coordinator port on the first node, default 12355
  --cpus-per-task C      CPUs per process (data pipeline threads)
  --gpu-bind MODE        task (default): --gpus-per-task=1, SLURM gives each process one GPU;
                         localid: --gpus-per-node=G, CUDA_VISIBLE_DEVICES=$SLURM_LOCALID (for
                         clusters where per-task GPU binding is unavailable or blocks NVLink)
  --setup CMD            shell line run in the job before the venv, e.g. 'module load python/3.11'
  --sbatch-arg ARG       extra #SBATCH line, repeatable, e.g. --sbatch-arg=--qos=high
  --script-dir DIR       where the batch script and the job log go, default runs/slurm
  --dry-run              print the batch script and the sbatch command, submit nothing
  -h, --help             this text

example:
  bash launch/gpu_slurm.sh --nodes 2 --gpus-per-node 8 --partition gpu --time 24:00:00 -- \
    --gin_file=gin/runs/intermediate.gin --gin_file=gin/models/codet5p_770m.gin \
    '--gin.MODEL_DIR="/shared/runs/mnli/seed0/intermediate"' \
    '--gin.MIXTURE_OR_TASK_NAME="xfer_mix_mnli"' --no_progress
EOF
}

die() {
  echo "error: $*" >&2
  echo "usage: bash launch/gpu_slurm.sh --nodes N --gpus-per-node G [options] -- TRAIN_ARGS... (--help)" >&2
  exit 2
}

VALUE_OPTIONS="--nodes --gpus-per-node --partition --time --account --job-name --port"
VALUE_OPTIONS+=" --cpus-per-task --gpu-bind --setup --sbatch-arg --script-dir"
FLAG_OPTIONS="--dry-run --help"

nodes="" gpus="" partition="" time_limit="" account="" job_name="t5x_xfer" port="12355"
cpus="" bind="task" setup="" script_dir="runs/slurm" dry=0
extra_sbatch=() train_args=()
while [ $# -gt 0 ]; do
  opt="$1" val="" inline=0
  case "$opt" in
    --*=*) val="${opt#*=}" opt="${opt%%=*}" inline=1 ;;
  esac
  case "$opt" in
    --nodes | --gpus-per-node | --partition | --time | --account | --job-name | --port | \
      --cpus-per-task | --gpu-bind | --setup | --sbatch-arg | --script-dir)
      if [ "$inline" = 0 ]; then
        [ $# -ge 2 ] || die "$opt needs a value"
        val="$2"
        shift
      fi
      [ -n "$val" ] || die "$opt needs a value"
      # Only --sbatch-arg takes values that look like options (--qos=high).
      [ "$opt" = --sbatch-arg ] || [ "${val#-}" = "$val" ] || die "$opt needs a value, got '$val'"
      case "$opt" in
        --nodes) nodes="$val" ;;
        --gpus-per-node) gpus="$val" ;;
        --partition) partition="$val" ;;
        --time) time_limit="$val" ;;
        --account) account="$val" ;;
        --job-name) job_name="$val" ;;
        --port) port="$val" ;;
        --cpus-per-task) cpus="$val" ;;
        --gpu-bind) bind="$val" ;;
        --setup) setup="$val" ;;
        --sbatch-arg) extra_sbatch+=("$val") ;;
        --script-dir) script_dir="$val" ;;
      esac
      ;;
    --dry-run | -h | --help)
      [ "$inline" = 0 ] || die "$opt takes no value"
      case "$opt" in
        --dry-run) dry=1 ;;
        *) usage && exit 0 ;;
      esac
      ;;
    --)
      shift
      train_args=("$@")
      break
      ;;
    *) die "unknown option '$1'; allowed: $VALUE_OPTIONS $FLAG_OPTIONS, then -- TRAIN_ARGS" ;;
  esac
  shift
done

positive() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"; }
[ -n "$nodes" ] || die "missing required option --nodes N (number of nodes)"
[ -n "$gpus" ] || die "missing required option --gpus-per-node G (GPUs per node, e.g. 8)"
positive --nodes "$nodes"
positive --gpus-per-node "$gpus"
[ -z "$cpus" ] || positive --cpus-per-task "$cpus"
positive --port "$port"
[ "$port" -ge 1024 ] && [ "$port" -le 65535 ] || die "--port must be in 1024-65535, got $port"
case "$bind" in
  task | localid) ;;
  *) die "--gpu-bind '$bind' unknown; allowed: task, localid" ;;
esac
[[ "$job_name" =~ ^[A-Za-z0-9_.-]+$ ]] || die "--job-name '$job_name': use letters, digits, _ . -"
for a in "${extra_sbatch[@]}"; do
  [[ "$a" == --?* && "$a" != *$'\n'* ]] || die "--sbatch-arg '$a' must be one sbatch option (--name=value)"
done
[ ${#train_args[@]} -gt 0 ] || die "no train command: give the train binary's arguments after --"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
commit="$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
case "$script_dir" in
  /*) ;;
  *) script_dir="$root/$script_dir" ;;
esac

# The batch script. Train arguments are quoted with printf %q and reach each process through
# bash -c's positional parameters, so nothing is re-parsed on the way.
script() {
  echo "#!/usr/bin/env bash"
  echo "#SBATCH --job-name=$job_name"
  echo "#SBATCH --nodes=$nodes"
  echo "#SBATCH --ntasks-per-node=$gpus"
  if [ "$bind" = task ]; then
    echo "#SBATCH --gpus-per-task=1"
  else
    echo "#SBATCH --gpus-per-node=$gpus"
  fi
  [ -z "$cpus" ] || echo "#SBATCH --cpus-per-task=$cpus"
  [ -z "$partition" ] || echo "#SBATCH --partition=$partition"
  [ -z "$time_limit" ] || echo "#SBATCH --time=$time_limit"
  [ -z "$account" ] || echo "#SBATCH --account=$account"
  for a in "${extra_sbatch[@]}"; do echo "#SBATCH $a"; done
  echo "#SBATCH --chdir=$root"
  echo "#SBATCH --output=$script_dir/%x-%j.out"
  echo "# Generated by launch/gpu_slurm.sh at commit $commit."
  echo "set -euo pipefail"
  echo "cd $(printf %q "$root")"
  [ -z "$setup" ] || echo "$setup"
  echo "# Once, on the first node: .venv with pip install -e .[gpu] (shared filesystem)."
  echo "# shellcheck disable=SC1091"
  echo "source launch/env.sh gpu"
  echo "T5X_PYTHON=\"\$PWD/.venv/bin/python\""
  echo "# The first host (sed, not head: head's early exit can SIGPIPE scontrol under pipefail)."
  echo "T5X_COORDINATOR=\"\$(scontrol show hostnames \"\$SLURM_JOB_NODELIST\" | sed -n 1p):$port\""
  echo "export T5X_PYTHON T5X_COORDINATOR"
  echo "echo \"[gpu_slurm] \$SLURM_NTASKS processes, coordinator \$T5X_COORDINATOR\""
  local gpu_opt="--gpus-per-task=1" pin=""
  if [ "$bind" = localid ]; then
    gpu_opt="--gpus-per-node=$gpus"
    pin="export CUDA_VISIBLE_DEVICES=\"\$SLURM_LOCALID\"; "
  fi
  echo "# shellcheck disable=SC2016  # expanded by each task's bash"
  echo "srun --ntasks-per-node=$gpus $gpu_opt --kill-on-bad-exit=1 bash -c '${pin}exec \"\$T5X_PYTHON\" \\"
  echo "  -m t5x_xfer.train --multihost --coordinator_address=\"\$T5X_COORDINATOR\" \\"
  echo "  --process_count=\"\$SLURM_NTASKS\" --process_index=\"\$SLURM_PROCID\" \"\$@\"' \\"
  echo "  t5x_xfer_train$(printf ' %q' "${train_args[@]}")"
}

stamp="$(date -u +%Y%m%d-%H%M%S)"
batch="$script_dir/${job_name}-${stamp}.sbatch"
if [ "$dry" = 1 ]; then
  echo "# batch script (not written: --dry-run; would be $batch):"
  script
  echo "# submit command:"
  echo "sbatch $batch"
  exit 0
fi
command -v sbatch >/dev/null || die "sbatch not found: run this on a SLURM login node"
mkdir -p "$script_dir"
script >"$batch"
echo "[gpu_slurm] wrote $batch; log: $script_dir/${job_name}-<jobid>.out" >&2
sbatch "$batch"
