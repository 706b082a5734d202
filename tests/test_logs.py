"""Quiet by default: a binary's stderr holds no TensorFlow/CUDA start-up lines unless asked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Lines TensorFlow, absl and CUDA print at start-up on a machine without a GPU.
NOISE = ("oneDNN custom operations", "cuda drivers", "absl::InitializeLog", "cuInit")


def _run(tmp_path: Path, name: str, verbose: bool) -> str:
    env = {
        k: v for k, v in os.environ.items() if k not in ("T5X_XFER_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")
    }
    if verbose:
        env["T5X_XFER_VERBOSE"] = "1"
    argv = [sys.executable, "-m", "t5x_xfer.testing.smoke_data", "--out", str(tmp_path / name)]
    argv += ["--n_train", "4", "--n_validation", "2"]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote smoke data" in proc.stdout  # the project's own result still shows
    return proc.stderr


def test_binaries_are_quiet_unless_verbose(tmp_path):
    quiet = _run(tmp_path, "quiet", verbose=False)
    assert not [n for n in NOISE if n in quiet], quiet[-2000:]
    verbose = _run(tmp_path, "verbose", verbose=True)
    if not any(n in verbose for n in NOISE):
        pytest.skip("TensorFlow printed no start-up lines here even when verbose: nothing to hide")
    assert any(n in verbose for n in NOISE)


def test_the_projects_own_info_lines_show_and_library_noise_stays_hidden(tmp_path):
    """orbax's import configures the root logger first; the binaries still show their own
    INFO lines (here export_hf's), while library start-up lines and warnings stay hidden."""
    from t5x_xfer.testing.fakes import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "ckpt")
    env = {k: v for k, v in os.environ.items() if k != "T5X_XFER_VERBOSE"}
    argv = [sys.executable, "-m", "t5x_xfer.convert", "export_hf", "--checkpoint", str(ckpt)]
    argv += ["--out", str(tmp_path / "hf")]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("INFO t5x_xfer.hf: exported")], lines
    assert all(line.startswith(("INFO t5x_xfer", "WARNING t5x_xfer")) for line in lines), lines


@pytest.mark.parametrize("verbose", [False, True])
def test_orphaned_orbax_read_errors_stay_out_of_the_one_line_error(verbose):
    """asyncio logs "Task exception was never retrieved" when the garbage collector meets a
    failed read beside the one the binary reported: hidden when quiet, other asyncio errors
    and verbose mode keep theirs."""
    code = (
        "import logging; from t5x_xfer import logs; logs.setup(False)\n"
        "log = logging.getLogger('asyncio')\n"
        "log.error('Task exception was never retrieved\\nfuture: <Task finished>')\n"
        "log.error('_GatheringFuture exception was never retrieved\\nfuture: <x>')\n"
        "log.error('another asyncio error')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "T5X_XFER_VERBOSE"}
    if verbose:
        env["T5X_XFER_VERBOSE"] = "1"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "another asyncio error" in proc.stderr
    assert ("never retrieved" in proc.stderr) == verbose, proc.stderr
