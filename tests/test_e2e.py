"""The README's main job at reduced size: the debug grid end to end (smoke data, pretrained,
three arms through both stages, decoding, sandboxed execution beside the next stages, report),
killed with SIGKILL in the middle of a stage and rerun: finished stages are skipped, the killed
ones resume."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GRID = "gin/experiments/grid_debug_cpu.gin"


def _driver(root: Path) -> list[str]:
    train = ['DATA_DIR="{root}/data"', 'TOKENIZER="{root}/tokenizer.json"', "train.save_every=5"]
    train.append('TASK_CACHE_DIR="{root}/cache"')
    target = ['MIXTURE_OR_TASK_NAME="xfer_mix_target_mbpp_completion"', "TRAIN_STEPS=10"]
    return [
        sys.executable,
        "-m",
        "t5x_xfer.experiments",
        "run",
        "--grid",
        GRID,
        "--root",
        str(root),
        f"--gin.Grid.train_bindings={train!r}",
        "--gin.Grid.intermediate_bindings=['TRAIN_STEPS=15']",
        f"--gin.Grid.target_bindings={target!r}",
        "--gin.Grid.arms=['baseline', 'cnn_dailymail']",
        "--gin.DecodeSettings.num_samples=2",
        "--gin.DecodeSettings.max_length=24",
        "--gin.Grid.eval_languages=['python', 'js', 'cpp']",
        "--gin.Grid.report_ks=[1]",
        "--gin.Grid.eval_data_dir='minibench'",
    ]


def _checkpoints(model_dir: Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    return [int(p.name) for p in model_dir.iterdir() if p.name.isdigit()]


def test_debug_experiment_resumes_after_sigkill(tmp_path):
    """Two arms (the grid's enumeration of all of them is tested in test_experiments), the
    rerun by two worker drivers. About 2 minutes on 2 cores."""
    from tests.codeeval import fakes

    fakes.require_sandbox()
    fakes.require_languages("python", "js", "cpp")
    root = tmp_path / "debug"
    env = {k: v for k, v in os.environ.items() if k != "T5X_HUMANEVAL_X_DIR"}
    proc = subprocess.Popen(
        _driver(root),
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    inter = root / "cnn_dailymail" / "seed0" / "intermediate"
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        if _checkpoints(inter) and not (inter / "summary.json").exists():
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the driver ended before the intermediate stage was caught"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (inter / "summary.json").exists()
    # The baseline's samples were decoded; their execution ran beside this stage (killed
    # with the driver if it had not finished).
    assert (root / "baseline" / "seed0" / "eval" / "samples.jsonl").exists()

    # The rerun with two worker drivers sharing the stages (run --jobs 2).
    done = subprocess.run(
        [*_driver(root), "--jobs", "2"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    out = done.stdout
    assert "== worker 2: started" in out and "== grid debug_cpu: finished in" in out
    assert "prepare/0: done, skipped" in out
    assert "baseline/seed0/eval: done, skipped" in out or "baseline/seed0/eval (resuming)" in out
    assert (root / "baseline" / "seed0" / "eval" / "summary.json").exists()
    assert "cnn_dailymail/seed0/intermediate (resuming)" in out
    summary = json.loads((inter / "summary.json").read_text())
    assert summary["restored_from"] == "resume" and summary["step"] == 15
    assert summary["data_position"] == "restored"  # the cached tasks' iterator, not a replay
    report = root / "report"
    data = json.loads((report / "report.json").read_text())
    assert data["arms"] == ["baseline", "cnn_dailymail"]
    for lang in ("python", "js", "cpp"):
        assert (report / f"pass_at_1_{lang}.png").stat().st_size > 0
    assert "cnn_dailymail" in (report / "report.md").read_text()
    assert any((root / ".jax_cache").iterdir())  # stages share compiled programs
    assert re.fullmatch(
        r"run: .+ wall, .+ CPU \(user .+, system .+\)", out.strip().splitlines()[-1]
    )


@pytest.mark.slow
def test_decoder_only_debug_grid_end_to_end(tmp_path):
    """The decoder-only family through the same grid at a smaller size, each stage its own
    process (``run --isolate``): both arms, both stages, decoding as continuations,
    execution, report. About 90 s on 2 cores; slow because
    the main job runs this grid in full and the default run covers its pieces
    (test_decoder_pipeline, test_experiments, the evaluator's tests)."""
    from tests.codeeval import fakes

    fakes.require_sandbox()
    fakes.require_languages("python")
    root = tmp_path / "decoder"
    train = ['DATA_DIR="{root}/data"', 'TOKENIZER="{root}/tokenizer.json"', 'OPTIMIZER="adamw"']
    target = ['MIXTURE_OR_TASK_NAME="xfer_mix_target_mbpp_completion"', "TRAIN_STEPS=8"]
    argv = [
        sys.executable,
        "-m",
        "t5x_xfer.experiments",
        "run",
        "--grid",
        "gin/experiments/grid_debug_cpu_decoder.gin",
        "--root",
        str(root),
        f"--gin.Grid.train_bindings={train!r}",
        "--gin.Grid.intermediate_bindings=['TRAIN_STEPS=6']",
        f"--gin.Grid.target_bindings={target!r}",
        "--gin.Grid.arms=['baseline', 'cnn_dailymail']",
        "--gin.DecodeSettings.num_samples=2",
        "--gin.DecodeSettings.max_length=16",
        "--gin.Grid.eval_languages=['python']",
        "--gin.Grid.report_ks=[1]",
        "--isolate",  # every stage its own process, as `plan` prints them
    ]
    env = {k: v for k, v in os.environ.items() if k != "T5X_HUMANEVAL_X_DIR"}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    # The run ends with its wall and CPU time, the stages' own processes counted (the driver
    # alone, which here only starts them, takes a few seconds).
    last = done.stdout.strip().splitlines()[-1]
    used = re.fullmatch(r"run: .+ wall, (?:(\d+) min )?(\d+) s CPU \(user .+, system .+\)", last)
    assert used and int(used[1] or 0) * 60 + int(used[2]) >= 10, last
    from t5x_xfer import checkpoints

    assert checkpoints.load_model(root / "cnn_dailymail" / "seed0" / "target").family == "llama"
    samples = (root / "baseline" / "seed0" / "eval" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 6 * 2  # the mini benchmark's six Python problems, two samples each
    data = json.loads((root / "report" / "report.json").read_text())
    assert data["arms"] == ["baseline", "cnn_dailymail"] and data["languages"] == ["python"]
