"""The train binary end to end on a tiny model: outputs, stage chaining, exact resume after
SIGKILL, and bad input failing before training starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from t5x_xfer import checkpoints, train, vocabularies
from t5x_xfer.testing import task_sources as testing

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train")
    data = testing.fake_data_dir(root / "data", n=40)
    texts = (data / "mbpp" / "mbpp.jsonl").read_text().splitlines() * 3
    texts += [json.dumps(r) for r in testing.CSQA_RECORDS] * 3
    tok = vocabularies.train_byte_level_bpe(texts, root / "tokenizer.json", vocab_size=400)
    return {"root": root, "data": data, "tok": tok}


def _argv(setup: dict, model_dir: Path, *extra: str) -> list[str]:
    return [
        "--gin_file=runs/debug_cpu.gin",
        "--gin_file=models/tiny.gin",
        f'--gin.TOKENIZER="{setup["tok"]}"',
        f'--gin.DATA_DIR="{setup["data"]}"',
        f'--gin.MODEL_DIR="{model_dir}"',
        '--gin.MIXTURE_OR_TASK_NAME="xfer_mix_target_mbpp"',
        "--gin.BATCH_SIZE=8",
        "--no_progress",
        *extra,
    ]


def _steps(model_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())


def _metrics(model_dir: Path) -> dict[int, float]:
    out = {}
    for line in (model_dir / "train_metrics.jsonl").read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line being written while we poll
            continue
        out[row["step"]] = row["loss"]
    return out


def test_stage_chaining_and_run_outputs(setup):
    inter = setup["root"] / "inter"
    rc = train.main(
        _argv(
            setup,
            inter,
            '--gin.MIXTURE_OR_TASK_NAME="xfer_mix_commonsense_qa"',
            "--gin.TRAIN_STEPS=4",
            "--gin.train.save_every=2",
            "--gin.train.log_every=1",
            "--gin.train.eval_every=4",
            "--gin.train.infer_eval_examples=4",
        )
    )
    assert rc == 0
    assert _steps(inter) == [2, 4]  # keep_checkpoints = 2
    assert sorted(_metrics(inter)) == [1, 2, 3, 4]
    assert "xfer_mix_commonsense_qa" in (inter / "config.gin").read_text()
    assert (inter / "hf_assets" / "tokenizer.json").is_file()
    assert list((inter / "train").glob("events.out.tfevents.*"))
    evaluated = json.loads((inter / "summary.json").read_text())["eval"]
    assert evaluated["loss"] > 0
    assert 0 <= evaluated["xfer_commonsense_qa/accuracy"] <= 100  # seqio metric, greedy decodes
    # Run again when finished: it resumes at its last step and draws no batch.
    assert (
        train.main(
            _argv(
                setup,
                inter,
                '--gin.MIXTURE_OR_TASK_NAME="xfer_mix_commonsense_qa"',
                "--gin.TRAIN_STEPS=4",
            )
        )
        == 0
    )
    again = json.loads((inter / "summary.json").read_text())
    assert (again["restored_from"], again["step"], again["data_position"]) == (
        "resume",
        4,
        "unused",
    )
    assert _steps(inter) == [2, 4]

    target = setup["root"] / "target"
    rc = train.main(_argv(setup, target, f'--gin.INIT_CHECKPOINT="{inter}"', "--gin.TRAIN_STEPS=0"))
    assert rc == 0 and _steps(target) == [0]
    first = checkpoints.load_params(target)
    last = checkpoints.load_params(inter)
    jax.tree.map(np.testing.assert_array_equal, first, last)
    # The optimizer starts fresh: the saved step-0 state equals a new optimizer's init.
    import orbax.checkpoint as ocp

    from t5x_xfer import optimizers

    fresh = optimizers.make_optimizer(optimizers.make_schedule("constant", 1e-3)).init(first)
    with ocp.CheckpointManager(target) as m:
        saved = m.restore(0, args=ocp.args.Composite(opt_state=ocp.args.StandardRestore(fresh)))
    jax.tree.map(
        lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
        saved["opt_state"],
        fresh,
    )
    # The target run resumes from its own checkpoint, not INIT_CHECKPOINT, when rerun.
    rc = train.main(_argv(setup, target, f'--gin.INIT_CHECKPOINT="{inter}"', "--gin.TRAIN_STEPS=2"))
    assert (
        rc == 0 and json.loads((target / "summary.json").read_text())["restored_from"] == "resume"
    )


def test_evaluations_read_the_validation_split_once(setup, monkeypatch):
    """The first evaluation keeps its batches; later ones reuse them (same token counts)
    instead of building the seqio pipeline again."""
    from t5x_xfer import validation

    splits = []
    real = validation.get_dataset

    def counting(name, converter, lengths, split, *args, **kwargs):
        splits.append(split)
        return real(name, converter, lengths, split, *args, **kwargs)

    monkeypatch.setattr(validation, "get_dataset", counting)
    model_dir = setup["root"] / "evals"
    extra = ["--gin.TRAIN_STEPS=3", "--gin.train.eval_every=1", "--gin.train.save_every=3"]
    extra += ["--gin.train.infer_eval_examples=0", "--gin.train.eval_steps=2"]
    assert train.main(_argv(setup, model_dir, *extra)) == 0
    assert splits == ["validation"]
    rows = [json.loads(x) for x in (model_dir / "eval_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert len({r["target_tokens"] for r in rows}) == 1 and rows[0]["target_tokens"] > 0


def _launch(setup: dict, model_dir: Path, *extra: str) -> subprocess.Popen:
    argv = _argv(
        setup,
        model_dir,
        *extra,
        "--gin.TRAIN_STEPS=30",
        "--gin.train.save_every=10",
        "--gin.train.log_every=1",
        "--gin.train.eval_every=0",
        "--gin.train.async_checkpointing=True",
        "--gin.train.keep_checkpoints=5",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "t5x_xfer.train", *argv],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("cached", [False, True], ids=["on_the_fly", "cached_tasks"])
def test_exact_resume_after_sigkill(setup, cached):
    """Tokenized on the fly, the data pipeline is replayed to the restored step; with
    TASK_CACHE_DIR its saved position is restored. Both continue bit-identically."""
    tag = "cached" if cached else "fly"
    extra = [f'--gin.TASK_CACHE_DIR="{setup["root"] / "cache"}"'] if cached else []
    whole = setup["root"] / f"whole_{tag}"
    proc = _launch(setup, whole, *extra)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()[-3000:]
    stderr = proc.stderr.read()
    assert "oneDNN" not in stderr and "cuda drivers" not in stderr, stderr[-2000:]  # quiet

    killed = setup["root"] / f"killed_{tag}"
    proc = _launch(setup, killed, *extra)
    metrics = killed / "train_metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        saved = _steps(killed) if killed.exists() else []
        if saved and metrics.exists() and max(_metrics(killed)) > max(saved):
            break  # a finished checkpoint, and steps done after it
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGSTOP)  # freeze, then check we are between checkpoints
    logged = max(_metrics(killed))
    saved = _steps(killed)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert saved and logged > max(saved) and logged < 30, (saved, logged)
    print(f"killed at step {logged}, last checkpoint {max(saved)}")

    proc = _launch(setup, killed, *extra)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()[-3000:]
    resumed = json.loads((killed / "summary.json").read_text())
    assert resumed["data_position"] == ("restored" if cached else "replayed")
    assert (killed / "data_state").is_dir() == cached
    assert _metrics(killed) == _metrics(whole)  # the same loss at every step
    jax.tree.map(
        np.testing.assert_array_equal,
        checkpoints.load_params(killed),
        checkpoints.load_params(whole),
    )


def _fails_before_training(setup, capsys, model_dir: Path, *extra: str) -> str:
    rc = train.main(_argv(setup, model_dir, "--gin.TRAIN_STEPS=2", *extra))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert not model_dir.exists() or not _steps(model_dir)
    return err


def test_unknown_gin_binding(setup, capsys):
    err = _fails_before_training(setup, capsys, setup["root"] / "b1", "--gin.train.bogus=1")
    assert "bogus" in err


def test_unknown_gin_file(setup, capsys):
    err = _fails_before_training(setup, capsys, setup["root"] / "b2", "--gin_file=runs/nope.gin")
    assert "runs/nope.gin" in err


def test_unregistered_mixture(setup, capsys):
    err = _fails_before_training(
        setup, capsys, setup["root"] / "b3", '--gin.MIXTURE_OR_TASK_NAME="xfer_mix_nope"'
    )
    assert "xfer_mix_nope" in err and "xfer_mix_nlu9" in err


def test_init_checkpoint_with_wrong_shapes(setup, capsys):
    other = setup["root"] / "other"
    rc = train.main(_argv(setup, other, "--gin.NUM_LAYERS=1", "--gin.TRAIN_STEPS=0"))
    assert rc == 0
    err = _fails_before_training(
        setup, capsys, setup["root"] / "b4", f'--gin.INIT_CHECKPOINT="{other}"'
    )
    assert "do not match" in err and str(other) in err


def test_sigterm_saves_and_exits(setup):
    """Preemption: SIGTERM makes the run save the step it is at and exit with 143."""
    model_dir = setup["root"] / "preempted"
    proc = _launch(setup, model_dir)
    metrics = model_dir / "train_metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and max(_metrics(model_dir), default=0) >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 143, proc.stderr.read()[-3000:]
    last = max(_metrics(model_dir))
    assert last < 30 and max(_steps(model_dir)) == last


def _damage(step_dir: Path) -> None:
    """Truncate the largest array file of a step (a crash or a full disk mid-copy)."""
    biggest = max((p for p in (step_dir / "params").rglob("*") if p.is_file()), key=os.path.getsize)
    with open(biggest, "r+b") as f:
        f.truncate(100)


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_step(setup, capsys):
    model_dir = setup["root"] / "damaged"
    run = ("--gin.train.save_every=2", "--gin.train.log_every=1", "--gin.train.eval_every=0")
    assert train.main(_argv(setup, model_dir, "--gin.TRAIN_STEPS=4", *run)) == 0
    assert _steps(model_dir) == [2, 4]
    _damage(model_dir / "4")
    capsys.readouterr()
    assert train.main(_argv(setup, model_dir, "--gin.TRAIN_STEPS=6", *run)) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "cannot be read" in line]
    assert warned and "step 4" in warned[0] and "4.corrupt" in warned[0], warned
    assert (model_dir / "4.corrupt" / "params").is_dir()  # kept, not deleted
    summary = json.loads((model_dir / "summary.json").read_text())
    assert summary["restored_from"] == "resume" and summary["step"] == 6
    assert sorted(_metrics(model_dir)) == [1, 2, 3, 4, 5, 6]  # steps 3-4 redone, not repeated

    for step in _steps(model_dir):  # nothing readable: one line, nothing moved
        _damage(model_dir / str(step))
    capsys.readouterr()
    assert train.main(_argv(setup, model_dir, "--gin.TRAIN_STEPS=8", *run)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "checkpoint step 6 cannot be read" in err, err
    assert _steps(model_dir) == [4, 6]


def test_model_dir_of_another_model_config_fails_before_writing(setup, capsys):
    model_dir = setup["root"] / "other_config"
    assert train.main(_argv(setup, model_dir, "--gin.TRAIN_STEPS=0")) == 0
    config = (model_dir / "config.gin").read_bytes()
    capsys.readouterr()
    rc = train.main(_argv(setup, model_dir, "--gin.TRAIN_STEPS=2", "--gin.NUM_LAYERS=1"))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "another model config" in err and "num_layers 2 there but 1" in err, err
    assert (model_dir / "config.gin").read_bytes() == config  # not overwritten
    assert _steps(model_dir) == [0]
