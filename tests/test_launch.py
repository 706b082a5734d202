"""Launch scripts: syntax and shellcheck, the commands the TPU pod and SLURM launchers issue
(dry runs, and real runs against fake gcloud / srun / scontrol / sbatch), and their errors."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
SCRIPTS = sorted(LAUNCH.glob("*.sh"))
# Findings in scripts owned elsewhere, reported to their owner rather than edited here; the test
# below checks they stay the only ones.
KNOWN_FINDINGS = {"install_toolchains.sh": {"SC2012"}}
SHELLCHECK = shutil.which("shellcheck")
needs_shellcheck = pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck not installed")

TRAIN_ARGS = [
    "--gin_file=gin/runs/intermediate.gin",
    "--gin_file=gin/models/codet5p_220m.gin",
    '--gin.MODEL_DIR="gs://bucket/runs/mnli/seed 0"',
    "--gin.NOTE='it''s'",
    '--gin.MIXTURE_OR_TASK_NAME="xfer_mix_mnli"',
    "--no_progress",
]


def run(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(LAUNCH / script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def shellcheck_codes(path: Path) -> set[str]:
    assert SHELLCHECK is not None
    out = subprocess.run(
        [SHELLCHECK, "-x", "-f", "json", str(path.relative_to(ROOT))],
        cwd=ROOT,  # -x follows `source launch/env.sh` relative to the repository root
        capture_output=True,
        text=True,
    )
    return {f"SC{f['code']}" for f in json.loads(out.stdout or "[]")}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)


@needs_shellcheck
@pytest.mark.parametrize(
    "script", [s for s in SCRIPTS if s.name not in KNOWN_FINDINGS], ids=lambda p: p.name
)
def test_shellcheck_clean(script: Path) -> None:
    assert shellcheck_codes(script) == set()


@needs_shellcheck
@pytest.mark.parametrize("name", sorted(KNOWN_FINDINGS))
def test_shellcheck_no_new_findings(name: str) -> None:
    assert shellcheck_codes(LAUNCH / name) <= KNOWN_FINDINGS[name]


# --------------------------------------------------------------------------------------------
# Cloud TPU pod


def tpu_dry_run(*extra: str) -> list[list[str]]:
    res = run(
        "tpu_pod.sh",
        *("--tpu", "xfer-pod", "--zone", "us-central2-b", "--project", "proj", "--dry-run"),
        *extra,
    )
    assert res.returncode == 0, res.stderr
    return [shlex.split(line) for line in res.stdout.splitlines()]


def remote_train_argv(command: str) -> list[str]:
    words = shlex.split(command)
    i = words.index("t5x_xfer.train")
    assert words[i - 1] == "-m" and words[i + 1] == "--multihost"
    return words[i + 2 :]


def test_tpu_dry_run_prints_every_step() -> None:
    cmds = tpu_dry_run("--create", "--accelerator-type", "v4-32", "--delete", "--", *TRAIN_ARGS)
    gc = ["gcloud", "compute", "tpus", "tpu-vm"]
    where = ["--zone=us-central2-b", "--project=proj"]
    create, archive, scp, install, train, delete = cmds
    assert create == [*gc, "create", "xfer-pod", *where, "--accelerator-type=v4-32"] + [
        "--version=tpu-ubuntu2204-base"
    ]
    assert archive[:3] == ["git", "-C", str(ROOT)] and "archive" in archive
    tarball = archive[archive.index("-o") + 1]
    assert scp == [*gc, "scp", tarball, "xfer-pod:t5x_xfer.tar.gz", "--worker=all", *where]
    assert install[:6] == [*gc, "ssh", "xfer-pod"] and "--worker=all" in install
    assert 'pip install -q -e "./t5x_xfer[tpu]"' in install[install.index("--command") + 1]
    assert train[: train.index("--command")] == [*gc, "ssh", "xfer-pod", "--worker=all", *where]
    # The remote shell gets back exactly the train arguments, quotes included.
    assert remote_train_argv(train[train.index("--command") + 1]) == TRAIN_ARGS
    assert delete == [*gc, "delete", "xfer-pod", *where, "--quiet"]


def test_tpu_model_dir_from_bucket_and_runtime_version() -> None:
    cmds = tpu_dry_run(
        "--create",
        "--accelerator-type=v5litepod-16",
        "--runtime-version=v2-alpha-tpuv5-lite",
        "--bucket=gs://my-bucket/",
        "--",
        "--gin_file=gin/runs/target.gin",
    )
    assert cmds[0][-2:] == ["--accelerator-type=v5litepod-16", "--version=v2-alpha-tpuv5-lite"]
    argv = remote_train_argv(cmds[-1][-1])
    assert argv[0] == "--gin_file=gin/runs/target.gin"
    assert re.fullmatch(r'--gin\.MODEL_DIR="gs://my-bucket/t5x_xfer/xfer-pod-\d{8}-\d{6}"', argv[1])
    assert not any(c[4] in ("create", "delete") for c in tpu_dry_run("--", *TRAIN_ARGS))


FAKE_GCLOUD = r"""#!/usr/bin/env bash
# Records each call (one JSON array per line); scp copies into the fake worker's home; ssh runs
# the --command there with bash, as the worker's login shell would.
python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >>"$FAKE_LOG"
case "$4" in
  scp) cp "$5" "$FAKE_HOME/${6#*:}" ;;
  ssh)
    while [ "$1" != --command ]; do shift; done
    case "$2" in *t5x_xfer.train*) HOME="$FAKE_HOME" exec bash -c "$2" ;; esac ;;
esac
"""

FAKE_PYTHON = r"""#!/usr/bin/env bash
python3 -c 'import json, os, sys; print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(),
  "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}))' "$@" >>"$FAKE_OUT"
exit "${FAKE_RC:-0}"
"""


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_tpu_real_run_against_fake_gcloud(tmp_path: Path) -> None:
    executable(tmp_path / "bin" / "gcloud", FAKE_GCLOUD)
    home = tmp_path / "home"
    (home / "t5x_xfer").mkdir(parents=True)
    executable(home / "t5x_xfer-venv" / "bin" / "python", FAKE_PYTHON)
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "gcloud.log"),
        "FAKE_HOME": str(home),
        "FAKE_OUT": str(tmp_path / "python.jsonl"),
        "TMPDIR": str(tmp_path),
    }
    args = ("--tpu", "pod", "--zone", "z", "--delete", "--", *TRAIN_ARGS)
    res = run("tpu_pod.sh", *args, env=env)
    assert res.returncode == 0, res.stderr
    calls = [json.loads(line) for line in (tmp_path / "gcloud.log").read_text().splitlines()]
    assert [c[3] for c in calls] == ["scp", "ssh", "ssh", "delete"]
    assert all("--worker=all" in c for c in calls[:3])
    # Every worker runs the train binary, from the copied repository, with the exact arguments.
    (ran,) = [json.loads(line) for line in (tmp_path / "python.jsonl").read_text().splitlines()]
    assert ran["argv"] == ["-m", "t5x_xfer.train", "--multihost", *TRAIN_ARGS]
    assert Path(ran["cwd"]) == home / "t5x_xfer"
    with tarfile.open(home / "t5x_xfer.tar.gz") as tar:  # git archive of HEAD, under t5x_xfer/
        assert "t5x_xfer/pyproject.toml" in tar.getnames()
    assert not list(tmp_path.glob("t5x_xfer-pod-*.tar.gz"))  # local tarball removed
    # A failed training still deletes the VM (--delete) and passes the exit status on.
    res = run("tpu_pod.sh", *args, env={**env, "FAKE_RC": "3"})
    assert res.returncode == 3
    assert json.loads((tmp_path / "gcloud.log").read_text().splitlines()[-1])[3] == "delete"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--zone", "z", "--", "x"], "missing required option --tpu NAME"),
        (["--tpu", "t", "--", "x"], "missing required option --zone ZONE"),
        (["--tpu", "t", "--zone", "z", "--frobnicate"], "unknown option '--frobnicate'; allowed:"),
        (["--tpu"], "--tpu needs a value"),
        (["--tpu", "t", "--zone", "z", "--create", "--", "x"], "missing --accelerator-type"),
        (["--tpu", "t", "--zone", "z", "--accelerator-type", "big"], "not a TPU type"),
        (["--tpu", "t", "--zone", "z", "--bucket", "s3://b", "--", "x"], "gs://BUCKET"),
        (["--tpu", "t", "--zone", "z"], "no train command"),
        (["--tpu", "t", "--zone", "z", "--", "--gin_file=a.gin"], "no MODEL_DIR"),
        (
            ["--tpu", "t", "--zone", "z", "--", '--gin.MODEL_DIR="/local/run"'],
            "MODEL_DIR must be on GCS",
        ),
        (["--tpu", "t", "--zone", "z", "--dry-run=yes"], "--dry-run takes no value"),
    ],
)
def test_tpu_bad_options(args: list[str], message: str) -> None:
    res = run("tpu_pod.sh", *args)
    assert res.returncode == 2 and message in res.stderr and not res.stdout


# --------------------------------------------------------------------------------------------
# SLURM


def slurm_dry_run(*extra: str) -> tuple[str, str]:
    """(batch script, submit command) printed by a dry run."""
    res = run("gpu_slurm.sh", *extra)
    assert res.returncode == 0, res.stderr
    head, rest = res.stdout.split("\n", 1)
    assert head.startswith("# batch script")
    script, submit = rest.split("# submit command:\n")
    return script, submit.strip()


def test_slurm_dry_run_script() -> None:
    script, submit = slurm_dry_run(
        *("--nodes", "2", "--gpus-per-node", "4", "--partition", "gpu", "--time", "2:00:00"),
        *("--account=acct", "--job-name", "mnli0", "--sbatch-arg=--qos=high", "--dry-run"),
        *("--", *TRAIN_ARGS),
    )
    sbatch = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    for want in (
        "--job-name=mnli0",
        "--nodes=2",
        "--ntasks-per-node=4",
        "--gpus-per-task=1",
        "--partition=gpu",
        "--time=2:00:00",
        "--account=acct",
        "--qos=high",
    ):
        assert f"#SBATCH {want}" in sbatch
    assert "source launch/env.sh gpu" in script  # pip install -e .[gpu] into .venv
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p):12355' in script
    assert "srun --ntasks-per-node=4 --gpus-per-task=1" in script
    assert '--process_index="$SLURM_PROCID"' in script
    assert '--process_count="$SLURM_NTASKS"' in script
    assert re.fullmatch(r"sbatch \S+/runs/slurm/mnli0-\d{8}-\d{6}\.sbatch", submit)


@pytest.mark.parametrize("bind", ["task", "localid"])
def test_slurm_script_runs_one_process_per_gpu(tmp_path: Path, bind: str) -> None:
    script, _ = slurm_dry_run(
        "--nodes=2", "--gpus-per-node=3", "--gpu-bind", bind, "--port=23456", "--dry-run", "--",
        *TRAIN_ARGS,
    )  # fmt: skip
    if SHELLCHECK:
        (tmp_path / "job.sh").write_text(script)
        subprocess.run([SHELLCHECK, str(tmp_path / "job.sh")], check=True)
    fake_python = executable(tmp_path / "python", FAKE_PYTHON)
    # Stand-ins for the cluster: the venv set-up is skipped, the interpreter is the fake one.
    script = script.replace("source launch/env.sh gpu\n", "")
    script = script.replace('T5X_PYTHON="$PWD/.venv/bin/python"', f"T5X_PYTHON={fake_python}")
    assert str(fake_python) in script
    executable(tmp_path / "bin" / "scontrol", "#!/usr/bin/env bash\nprintf 'gpu-a\\ngpu-b\\n'\n")
    executable(
        tmp_path / "bin" / "srun",
        "#!/usr/bin/env bash\n"
        'echo "$*" >"$FAKE_SRUN"\n'
        'while [[ "$1" == --* ]]; do shift; done\n'
        "for ((i = 0; i < SLURM_NTASKS; i++)); do\n"
        '  SLURM_PROCID=$i SLURM_LOCALID=$((i % 3)) "$@"\n'
        "done\n",
    )
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "SLURM_NTASKS": "6",
        "SLURM_JOB_NODELIST": "gpu-[a-b]",
        "FAKE_OUT": str(tmp_path / "procs.jsonl"),
        "FAKE_SRUN": str(tmp_path / "srun.txt"),
    }
    res = subprocess.run(
        ["bash", "-c", script], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert "6 processes, coordinator gpu-a:23456" in res.stdout
    procs = [json.loads(line) for line in (tmp_path / "procs.jsonl").read_text().splitlines()]
    assert [p["argv"][:6] for p in procs] == [
        [
            "-m",
            "t5x_xfer.train",
            "--multihost",
            "--coordinator_address=gpu-a:23456",
            "--process_count=6",
            f"--process_index={i}",
        ]
        for i in range(6)
    ]
    assert all(p["argv"][6:] == TRAIN_ARGS for p in procs)
    srun_opts = (tmp_path / "srun.txt").read_text()
    if bind == "task":
        assert "--gpus-per-task=1" in srun_opts and all(p["cuda"] is None for p in procs)
    else:
        assert "--gpus-per-node=3" in srun_opts
        assert [p["cuda"] for p in procs] == ["0", "1", "2", "0", "1", "2"]


def test_slurm_submits_with_sbatch(tmp_path: Path) -> None:
    executable(
        tmp_path / "bin" / "sbatch", '#!/usr/bin/env bash\necho "$@" >"$FAKE_SBATCH"\necho 42\n'
    )
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "FAKE_SBATCH": str(tmp_path / "s")}
    out = tmp_path / "scripts"
    res = run(
        "gpu_slurm.sh", "--nodes", "1", "--gpus-per-node", "2", "--script-dir", str(out), "--",
        *TRAIN_ARGS, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    (batch,) = out.glob("t5x_xfer-*.sbatch")
    assert (tmp_path / "s").read_text().split() == [str(batch)]
    assert f"#SBATCH --output={out}/%x-%j.out" in batch.read_text()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--gpus-per-node", "8", "--", "x"], "missing required option --nodes N"),
        (["--nodes", "2", "--", "x"], "missing required option --gpus-per-node G"),
        (["--nodes", "0", "--gpus-per-node", "8", "--", "x"], "--nodes must be a positive"),
        (["--nodes", "1", "--gpus-per-node", "8", "--bogus", "1"], "unknown option '--bogus'"),
        (["--nodes", "1", "--gpus-per-node", "8", "--gpu-bind", "x", "--", "y"], "allowed: task"),
        (["--nodes", "1", "--gpus-per-node", "8", "--port", "80", "--", "y"], "1024-65535"),
        (["--nodes", "1", "--gpus-per-node", "8"], "no train command"),
        (["--nodes"], "--nodes needs a value"),
    ],
)
def test_slurm_bad_options(args: list[str], message: str) -> None:
    res = run("gpu_slurm.sh", *args)
    assert res.returncode == 2 and message in res.stderr and not res.stdout


@pytest.mark.parametrize("script", ["tpu_pod.sh", "gpu_slurm.sh"])
def test_help(script: str) -> None:
    res = run(script, "--help")
    assert res.returncode == 0 and res.stdout.startswith(f"usage: bash launch/{script}")
    assert "-- TRAIN_ARGS" in res.stdout
