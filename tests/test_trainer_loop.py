"""The pieces train() is built from, each alone: restore precedence, the state initializer
(including the family check), the step loop with its checkpointer, and the metrics writer."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from t5x_xfer import checkpoints, optimizers, partitioning, train_state
from t5x_xfer import trainer as trainer_lib
from t5x_xfer.models import EncoderDecoderModel, T5Config, registry

CFG = T5Config(
    vocab_size=32,
    d_model=32,
    d_kv=8,
    d_ff=64,
    num_layers=1,
    num_heads=4,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=16,
    dropout_rate=0.0,
    eos_token_id=1,
)
BATCH, LENGTH = 8, 6


def _copy_batches(mesh, seed: int = 0):
    """Endless batches whose target is the first input token repeated, then EOS: learnable
    in a few dozen steps by a one-layer model, so a working loop shows a falling loss."""
    rng = np.random.default_rng(seed)
    while True:
        ids = rng.integers(3, CFG.vocab_size, size=(BATCH, LENGTH)).astype(np.int32)
        first = np.repeat(ids[:, :1], LENGTH, axis=1)
        targets = np.concatenate([first, np.ones((BATCH, 1), np.int32)], axis=1)
        batch = {
            "encoder_input_tokens": ids,
            "decoder_input_tokens": np.concatenate(
                [np.zeros((BATCH, 1), np.int32), targets[:, :-1]], axis=1
            ),
            "decoder_target_tokens": targets,
            "decoder_loss_weights": np.ones_like(targets, np.float32),
        }
        yield partitioning.global_batch(batch, mesh)


class _Manager:
    def __init__(self, latest):
        self._latest = latest

    def latest_step(self):
        return self._latest


def test_restore_precedence():
    rs = train_state.restore_source
    assert rs(_Manager(5), "init", "hf") == ("resume", 5)
    assert rs(_Manager(None), "init", "hf") == ("init", "init")
    assert rs(_Manager(None), None, "hf") == ("hf", "hf")
    assert rs(_Manager(None), None, None) == ("random", None)


@pytest.fixture()
def setup():
    mesh = partitioning.make_mesh()
    model = EncoderDecoderModel(CFG)
    schedule = optimizers.make_schedule("constant", 1e-2)
    optimizer = optimizers.make_optimizer(schedule)
    return mesh, model, schedule, optimizer


def test_the_loop_alone_learns_logs_evaluates_and_saves(setup, tmp_path):
    """The loop on a copy task: loss falls below half of its first value, metrics every
    log_every steps, eval and checkpoints at their steps, and the saved state restores."""
    mesh, model, schedule, optimizer = setup
    with partitioning.activate(mesh):
        init = train_state.TrainStateInitializer(model, optimizer, mesh)
        state = init.from_params(None, seed=0)
        step = jax.jit(
            trainer_lib.make_train_step(model, optimizer, schedule),
            in_shardings=(init.state_shardings, partitioning.batch_sharding(mesh)),
            out_shardings=(init.state_shardings, init.replicated),
            donate_argnums=(0,),
        )
        evaluated = []
        manager = checkpoints.train_manager(tmp_path, keep=5, async_save=False)
        loop = trainer_lib.Trainer(
            step,
            checkpoints.TrainCheckpointer(manager, model, {"seed": 0}),
            trainer_lib.LoopOptions(
                train_steps=60, log_every=10, save_every=30, eval_every=20, progress=False
            ),
            throughput=trainer_lib.Throughput(tokens_per_step=BATCH * 13, flops_per_step=1.0),
            train_writer=trainer_lib.MetricsWriter(str(tmp_path), "train", None),
            evaluate=lambda params: evaluated.append(1) or {"loss": float(len(evaluated))},
        )
        out = loop.run(state, 0, _copy_batches(mesh))
    assert out["step"] == 60 and out["eval"] == {"loss": 3.0} and len(evaluated) == 3
    rows = [json.loads(x) for x in (tmp_path / "train_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    assert all(r["tokens_per_second"] > 0 and "mfu" not in r for r in rows[1:])
    assert sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()) == [30, 60]
    with partitioning.activate(mesh):
        manager = checkpoints.train_manager(tmp_path, async_save=False)
        restored, meta = init.from_checkpoint(manager, 60)
        manager.close()
    assert meta == {"step": 60, "batches_drawn": 60, "seed": 0}
    assert int(restored.step) == 60


def test_stop_after_and_a_run_with_no_steps(setup, tmp_path):
    mesh, model, schedule, optimizer = setup
    with partitioning.activate(mesh):
        init = train_state.TrainStateInitializer(model, optimizer, mesh)
        step = jax.jit(trainer_lib.make_train_step(model, optimizer, schedule))
        for steps, stop_after, expected, saved in ((10, 4, 4, []), (0, None, 0, [0])):
            out_dir = tmp_path / f"run{steps}"
            manager = checkpoints.train_manager(out_dir, async_save=False)
            loop = trainer_lib.Trainer(
                step,
                checkpoints.TrainCheckpointer(manager, model, {}),
                trainer_lib.LoopOptions(
                    train_steps=steps, save_every=100, stop_after=stop_after, progress=False
                ),
                throughput=trainer_lib.Throughput(tokens_per_step=1.0, flops_per_step=1.0),
            )
            out = loop.run(init.from_params(None, seed=0), 0, _copy_batches(mesh))
            assert out["step"] == expected
            assert sorted(int(p.name) for p in out_dir.iterdir() if p.name.isdigit()) == saved


def test_metrics_writer_drops_records_past_the_restored_step(tmp_path):
    writer = trainer_lib.MetricsWriter(str(tmp_path), "train", None)
    for step in (1, 2, 3, 4):
        writer.write(step, {"loss": float(step)})
    writer.close()
    assert list((tmp_path / "train").glob("events.out.tfevents.*"))
    trainer_lib.MetricsWriter(str(tmp_path), "train", resume_step=2).close()
    rows = [json.loads(x) for x in (tmp_path / "train_metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 2.0}]


class _OtherFamily(EncoderDecoderModel):
    """A second family for the seam's checks (same weights, another tag)."""

    family = "other_t5"


def test_init_checkpoint_of_another_family_fails_naming_both(setup, tmp_path):
    mesh, model, _, optimizer = setup
    registry.register(_OtherFamily)
    try:
        other = _OtherFamily(CFG)
        checkpoints.save(tmp_path / "other", other.init_params(jax.random.PRNGKey(0)), other)
        assert type(checkpoints.load_model(tmp_path / "other")) is _OtherFamily
        init = train_state.TrainStateInitializer(model, optimizer, mesh)
        with pytest.raises(ValueError, match="'other_t5'-family .* builds a 't5'-family"):
            init.load_init_params("init", str(tmp_path / "other"))
        checkpoints.save(tmp_path / "same", model.init_params(jax.random.PRNGKey(1)), model)
        params = init.load_init_params("init", str(tmp_path / "same"))
        assert jax.tree.structure(params) == jax.tree.structure(init.abstract_params)
    finally:
        registry._FAMILIES.pop("other_t5")


def test_registry_errors_list_the_known_families(tmp_path):
    known = r"known families: \['llama', 't5'\]"
    with pytest.raises(ValueError, match=rf"unknown model family 'gpt2'; {known}"):
        registry.get("gpt2")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(type("Dup", (EncoderDecoderModel,), {"family": "t5"}))
    with pytest.raises(ValueError, match=r"ckpt: unknown model family 'gpt'"):
        registry.from_json({"family": "gpt", "config": {}}, "ckpt")
    with pytest.raises(TypeError, match="needs a T5Config"):
        EncoderDecoderModel({"d_model": 4})
    model = registry.from_json(registry.to_json(EncoderDecoderModel(CFG)), "x")
    assert model.config == CFG  # round trip through the stored form


def test_a_restart_between_logs_logs_the_same_windows(setup, tmp_path):
    """Stopped at step 6 with log_every 4, the resumed run's record at step 8 averages steps
    5-8, as the uninterrupted run's does (the open window is saved with the checkpoint)."""
    mesh, model, schedule, optimizer = setup

    def run(out_dir, start_from=None, stop_after=None):
        with partitioning.activate(mesh):
            init = train_state.TrainStateInitializer(model, optimizer, mesh)
            step = jax.jit(trainer_lib.make_train_step(model, optimizer, schedule))
            manager = checkpoints.train_manager(out_dir, async_save=False)
            state, start, window = init.from_params(None, seed=0), 0, None
            if start_from is not None:
                state, meta = init.from_checkpoint(manager, start_from)
                start, window = start_from, meta[trainer_lib.LOG_WINDOW]
            batches = _copy_batches(mesh)
            for _ in range(start):
                next(batches)
            loop = trainer_lib.Trainer(
                step,
                checkpoints.TrainCheckpointer(manager, model, {}),
                trainer_lib.LoopOptions(
                    train_steps=12, log_every=4, save_every=3, stop_after=stop_after, progress=False
                ),
                throughput=trainer_lib.Throughput(tokens_per_step=1.0, flops_per_step=1.0),
                train_writer=trainer_lib.MetricsWriter(str(out_dir), "train", start_from),
            )
            loop.run(state, start, batches, window)
        rows = (out_dir / "train_metrics.jsonl").read_text().splitlines()
        return {r["step"]: (r["loss"], r["grad_norm"]) for r in map(json.loads, rows)}

    whole = run(tmp_path / "whole")
    run(tmp_path / "cut", stop_after=6)
    assert run(tmp_path / "cut", start_from=6) == whole
    assert sorted(whole) == [4, 8, 12]
