#!/usr/bin/env bash
# Cloud TPU pod launcher: optionally create the TPU VM, copy this repository (git HEAD) to every
# worker, install it with the TPU extra, and run the same training command on all hosts
# (python -m t5x_xfer.train --multihost: JAX finds the pod's coordinator itself).
# Every host must see the same checkpoints, so MODEL_DIR must be on GCS (gs://).
# Run it from a machine with gcloud, authenticated; --dry-run prints the commands instead.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bash launch/tpu_pod.sh --tpu NAME --zone ZONE [options] -- TRAIN_ARGS...

Runs `python -m t5x_xfer.train --multihost TRAIN_ARGS...` on every worker of a Cloud TPU VM.

required:
  --tpu NAME               TPU VM name
  --zone ZONE              e.g. us-central2-b
options:
  --project P              Google Cloud project (default: gcloud's configured project)
  --create                 create the TPU VM first (gcloud compute tpus tpu-vm create)
  --accelerator-type T     with --create, e.g. v4-32, v5litepod-16, v5p-32, v6e-16
  --runtime-version V      with --create; default tpu-ubuntu2204-base (v4); v5e:
                           v2-alpha-tpuv5-lite, v5p: v2-alpha-tpuv5, v6e: v2-alpha-tpuv6e
  --bucket gs://B          when TRAIN_ARGS set no MODEL_DIR: MODEL_DIR=gs://B/t5x_xfer/NAME-<UTC time>
  --delete                 delete the TPU VM afterwards (also when training fails)
  --dry-run                print every command instead of running it
  -h, --help               this text

Steps: [create] -> git archive HEAD -> scp to --worker=all -> install (pip install -e .[tpu] in
~/t5x_xfer-venv) on --worker=all -> train on --worker=all, from ~/t5x_xfer -> [delete].
Uncommitted changes are not copied (a warning says so).

example:
  bash launch/tpu_pod.sh --tpu xfer-v4 --zone us-central2-b --create --accelerator-type v4-32 -- \
    --gin_file=gin/runs/intermediate.gin --gin_file=gin/models/codet5p_220m.gin \
    '--gin.MODEL_DIR="gs://my-bucket/runs/mnli/seed0/intermediate"' \
    '--gin.MIXTURE_OR_TASK_NAME="xfer_mix_mnli"' --no_progress
EOF
}

die() {
  echo "error: $*" >&2
  echo "usage: bash launch/tpu_pod.sh --tpu NAME --zone ZONE [options] -- TRAIN_ARGS... (--help)" >&2
  exit 2
}

VALUE_OPTIONS="--tpu --zone --project --accelerator-type --runtime-version --bucket"
FLAG_OPTIONS="--create --delete --dry-run --help"

tpu="" zone="" project="" accel="" runtime="tpu-ubuntu2204-base" bucket=""
create=0 delete=0 dry=0
train_args=()
while [ $# -gt 0 ]; do
  opt="$1" val="" inline=0
  case "$opt" in
    --*=*) val="${opt#*=}" opt="${opt%%=*}" inline=1 ;;
  esac
  case "$opt" in
    --tpu | --zone | --project | --accelerator-type | --runtime-version | --bucket)
      if [ "$inline" = 0 ]; then
        [ $# -ge 2 ] || die "$opt needs a value"
        val="$2"
        shift
      fi
      [ -n "$val" ] && [ "${val#-}" = "$val" ] || die "$opt needs a value, got '${val}'"
      case "$opt" in
        --tpu) tpu="$val" ;;
        --zone) zone="$val" ;;
        --project) project="$val" ;;
        --accelerator-type) accel="$val" ;;
        --runtime-version) runtime="$val" ;;
        --bucket) bucket="$val" ;;
      esac
      ;;
    --create | --delete | --dry-run | -h | --help)
      [ "$inline" = 0 ] || die "$opt takes no value"
      case "$opt" in
        --create) create=1 ;;
        --delete) delete=1 ;;
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

[ -n "$tpu" ] || die "missing required option --tpu NAME (the TPU VM name)"
[ -n "$zone" ] || die "missing required option --zone ZONE (e.g. us-central2-b)"
if [ "$create" = 1 ] && [ -z "$accel" ]; then
  die "missing --accelerator-type (required with --create), e.g. v4-32, v5litepod-16, v5p-32"
fi
if [ -n "$accel" ] && ! [[ "$accel" =~ ^v[0-9][a-z0-9]*-[0-9]+$ ]]; then
  die "--accelerator-type '$accel' is not a TPU type such as v4-32, v5litepod-16, v5p-32, v6e-16"
fi
if [ -n "$bucket" ] && [[ "$bucket" != gs://?* ]]; then
  die "--bucket must be a GCS URL gs://BUCKET[/PATH], got '$bucket'"
fi
if [ ${#train_args[@]} -eq 0 ] && [ "$create" = 0 ] && [ "$delete" = 0 ]; then
  die "no train command: give the train binary's arguments after -- (or --create / --delete alone)"
fi

# MODEL_DIR: every host writes to and restores from it, so it must be shared storage (GCS).
if [ ${#train_args[@]} -gt 0 ]; then
  model_dir=""
  for a in "${train_args[@]}"; do
    case "$a" in
      --gin.MODEL_DIR=*) model_dir="${a#--gin.MODEL_DIR=}" ;;
      --gin_bindings=MODEL_DIR=*) model_dir="${a#--gin_bindings=MODEL_DIR=}" ;;
    esac
  done
  model_dir="${model_dir//[\"\'\\ ]/}"
  if [ -z "$model_dir" ]; then
    [ -n "$bucket" ] || die "no MODEL_DIR: pass '--gin.MODEL_DIR=\"gs://...\"' after -- or --bucket gs://B"
    model_dir="${bucket%/}/t5x_xfer/${tpu}-$(date -u +%Y%m%d-%H%M%S)"
    train_args+=("--gin.MODEL_DIR=\"$model_dir\"")
  fi
  [[ "$model_dir" == gs://?* ]] ||
    die "MODEL_DIR must be on GCS (gs://...) so every host shares the checkpoints, got '$model_dir'"
fi

# Print a command as a shell would need it typed (quoting only words that need it).
show() {
  local out="" w
  for w in "$@"; do
    if [[ "$w" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
      out+=" $w"
    else
      out+=" '${w//\'/\'\\\'\'}'"
    fi
  done
  printf '%s\n' "${out# }"
}

run() {
  if [ "$dry" = 1 ]; then
    show "$@"
  else
    echo "[tpu_pod] $(show "$@")" >&2
    "$@"
  fi
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
gc=(gcloud compute tpus tpu-vm)
where=(--zone="$zone")
[ -z "$project" ] || where+=(--project="$project")

tarball=""
finish() {
  local rc=$?
  [ -z "$tarball" ] || [ "$dry" = 1 ] || rm -f "$tarball"
  if [ "$delete" = 1 ]; then
    run "${gc[@]}" delete "$tpu" "${where[@]}" --quiet || rc=1
  fi
  exit "$rc"
}
if [ "$create" = 1 ]; then
  run "${gc[@]}" create "$tpu" "${where[@]}" --accelerator-type="$accel" --version="$runtime"
fi
# Armed only now: a failed create (e.g. the name is taken) must not delete someone's TPU VM.
trap finish EXIT

if [ ${#train_args[@]} -gt 0 ] || [ "$create" = 1 ]; then
  commit="$(git -C "$root" rev-parse HEAD)"
  if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
    echo "[tpu_pod] warning: uncommitted changes are not copied; the pod runs commit $commit" >&2
  fi
  tarball="${TMPDIR:-/tmp}/t5x_xfer-${tpu}-$$.tar.gz"
  run git -C "$root" archive --format=tar.gz --prefix=t5x_xfer/ -o "$tarball" "$commit"
  run "${gc[@]}" scp "$tarball" "$tpu:t5x_xfer.tar.gz" --worker=all "${where[@]}"
  # Fresh code in ~/t5x_xfer; the venv lives beside it so a relaunch reuses installed wheels.
  # shellcheck disable=SC2016  # $HOME is expanded on the workers
  install='set -e; cd "$HOME"; rm -rf t5x_xfer; tar -xzf t5x_xfer.tar.gz; '
  install+='[ -x t5x_xfer-venv/bin/python ] || python3 -m venv t5x_xfer-venv || '
  install+='{ sudo apt-get -qq update && sudo apt-get -qq install -y python3-venv && '
  install+='python3 -m venv t5x_xfer-venv; }; '
  install+='t5x_xfer-venv/bin/pip install -q --upgrade pip; '
  install+='t5x_xfer-venv/bin/pip install -q -e "./t5x_xfer[tpu]"'
  run "${gc[@]}" ssh "$tpu" --worker=all "${where[@]}" --command "$install"
  if [ ${#train_args[@]} -gt 0 ]; then
    # printf %q: the remote shell sees each train argument exactly as given here.
    train="cd \"\$HOME/t5x_xfer\" && exec \"\$HOME/t5x_xfer-venv/bin/python\" -m t5x_xfer.train"
    train+=" --multihost$(printf ' %q' "${train_args[@]}")"
    run "${gc[@]}" ssh "$tpu" --worker=all "${where[@]}" --command "$train"
  fi
fi
