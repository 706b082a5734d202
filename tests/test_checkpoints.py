"""Checkpoints written before the model-family seam (tests/fixtures/legacy_t5_run, made by the
previous code path: a bare T5Config, no family tag) still load, decode, export and resume."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from t5x_xfer import checkpoints, hf, infer, optimizers, partitioning, train, train_state
from t5x_xfer.decoding import DecodeSettings
from t5x_xfer.models import EncoderDecoderModel, T5Config, registry
from t5x_xfer.testing import task_sources

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LEGACY = FIXTURES / "legacy_t5_run"
EXPECTED = json.loads((FIXTURES / "legacy_t5_run.expected.json").read_text())


def test_legacy_checkpoint_loads_as_the_t5_family_with_the_same_logits():
    model = checkpoints.load_model(LEGACY)
    assert type(model) is EncoderDecoderModel and model.family == "t5"
    assert model.config == T5Config(**EXPECTED["config"])
    params = checkpoints.load_params(LEGACY)
    batch = {k: np.asarray(v, np.int32) for k, v in EXPECTED["batch"].items()}
    np.testing.assert_allclose(
        np.asarray(model.logits(params, batch)), np.asarray(EXPECTED["logits"]), atol=1e-5
    )


def test_new_checkpoints_carry_the_family_tag(tmp_path):
    model = EncoderDecoderModel(T5Config(**EXPECTED["config"]))
    checkpoints.save(tmp_path, checkpoints.load_params(LEGACY), model, step=3)
    stored = json.loads((tmp_path / "3" / "model_config" / "metadata").read_text())
    assert stored == {"family": "t5", "config": EXPECTED["config"]}
    assert registry.from_json(stored, "x").config == model.config


def test_legacy_train_state_restores_and_decodes_and_exports(tmp_path):
    model = checkpoints.load_model(LEGACY)
    optimizer = optimizers.make_optimizer(optimizers.make_schedule("constant", 1e-3))
    mesh = partitioning.make_mesh()
    with partitioning.activate(mesh):
        init = train_state.TrainStateInitializer(model, optimizer, mesh)
        manager = checkpoints.train_manager(LEGACY, async_save=False)
        state, meta = init.from_checkpoint(manager, 2)
        manager.close()
    assert int(state.step) == 2 and meta["mixture_or_task_name"] == "xfer_mix_target_mbpp"
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": 0, "prompt": "def add(a, b):\n", "language": "python"}) + "\n")
    result = infer.infer(
        input=src,
        output=tmp_path / "out.jsonl",
        checkpoint=str(LEGACY),
        decode=DecodeSettings(max_length=8),
        progress=False,
    )
    assert result.samples_written == 1
    hf.export_hf(checkpoint=str(LEGACY), out=str(tmp_path / "hf"))
    exported = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert exported["model_type"] == "t5" and exported["d_model"] == 16
    assert (tmp_path / "hf" / "tokenizer.json").is_file()


def test_a_legacy_run_directory_resumes_under_the_train_binary(tmp_path):
    """MODEL_DIR written by the old trainer at step 2: the binary resumes it to step 4."""
    steps = 4
    run = tmp_path / "run"
    shutil.copytree(LEGACY, run)
    data = task_sources.fake_data_dir(tmp_path / "data", n=16)
    c = EXPECTED["config"]
    argv = [
        "--gin_file=runs/debug_cpu.gin",
        "--gin_file=models/tiny.gin",
        f'--gin.TOKENIZER="{run / "hf_assets" / "tokenizer.json"}"',
        f'--gin.DATA_DIR="{data}"',
        f'--gin.MODEL_DIR="{run}"',
        '--gin.MIXTURE_OR_TASK_NAME="xfer_mix_target_mbpp"',
        "--gin.BATCH_SIZE=8",
        f"--gin.TRAIN_STEPS={steps}",
        "--gin.train.eval_every=0",
        "--gin.train.log_every=1",
        "--gin.LEARNING_RATE=1e-3",
        f"--gin.VOCAB_SIZE={c['vocab_size']}",
        f"--gin.NUM_LAYERS={c['num_layers']}",
        *(
            f"--gin.T5Config.{k}={c[k]}"
            for k in ("d_model", "d_kv", "d_ff", "num_heads", "relative_attention_num_buckets")
        ),
        f"--gin.T5Config.relative_attention_max_distance={c['relative_attention_max_distance']}",
        "--no_progress",
    ]
    assert train.main(argv) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["restored_from"] == "resume" and summary["step"] == steps
    assert checkpoints.load_model(run).family == "t5"  # re-saved with the tag
    rows = (run / "train_metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [3, 4]


# --------------------------------------------------------------------------------------------
# Topology: a checkpoint written on a (2, 2, 2) mesh of 8 devices is read on 1 device by every
# reader (resume, INIT_CHECKPOINT, export_hf, infer, evaluate_code), and the reverse. The test
# process has 8 simulated devices (conftest); the other side runs in a 1-device subprocess.

REPO = Path(__file__).resolve().parents[1]


def _write_run(directory: Path, mesh_shape: tuple[int, int, int]) -> None:
    """A training step (params + optimizer state sharded over ``mesh_shape``) at step 2, as
    the trainer writes it, with the tokenizer in hf_assets; its params as ``params.npz``."""
    import jax

    from t5x_xfer.testing.fakes import make_tiny_checkpoint

    make_tiny_checkpoint(directory)  # step 0 (unsharded) and hf_assets
    model = checkpoints.load_model(directory)
    optimizer = optimizers.make_optimizer(optimizers.make_schedule("constant", 1e-3))
    mesh = partitioning.make_mesh(*mesh_shape)
    with partitioning.activate(mesh):
        init = train_state.TrainStateInitializer(model, optimizer, mesh)
        state = init.from_params(None, seed=1)
        ckpt = checkpoints.TrainCheckpointer(
            checkpoints.train_manager(directory, async_save=False), model, {}
        )
        ckpt.save(2, state)
        ckpt.wait()
        ckpt.close()
    flat = jax.tree_util.tree_flatten_with_path(jax.device_get(state.params))[0]
    np.savez(directory / "params.npz", **{jax.tree_util.keystr(p): v for p, v in flat})


def _read_run(directory: Path, mesh_shape: tuple[int, int, int], out: Path) -> None:
    """Every reader of ``directory`` on this process's devices; the params each one got go to
    ``out/<reader>.npz``; the binaries' exit statuses to ``out/rc.json``."""
    import jax

    from t5x_xfer import convert, evaluate_code
    from t5x_xfer import infer as infer_lib

    out.mkdir(parents=True, exist_ok=True)
    model = checkpoints.load_model(directory)
    optimizer = optimizers.make_optimizer(optimizers.make_schedule("constant", 1e-3))
    mesh = partitioning.make_mesh(*mesh_shape)
    with partitioning.activate(mesh):
        init = train_state.TrainStateInitializer(model, optimizer, mesh)
        manager = checkpoints.train_manager(directory, async_save=False)
        state, _ = init.from_checkpoint(manager, manager.latest_step())
        manager.close()
        init_params = init.load_init_params("init", str(directory))
    for name, tree in (("resume", state.params), ("init", init_params)):
        assert all(x.sharding.mesh.shape == mesh.shape for x in jax.tree.leaves(tree))
        flat = jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]
        np.savez(out / f"{name}.npz", **{jax.tree_util.keystr(p): v for p, v in flat})
    prompts = out / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": 0, "prompt": "def add(a, b):\n"}) + "\n")
    rc = {
        "export_hf": convert.main(
            ["export_hf", "--checkpoint", str(directory), "--out", str(out / "hf")]
        ),
        "infer": infer_lib.main(
            [
                "--checkpoint",
                str(directory),
                "--input",
                str(prompts),
                "--output",
                str(out / "generations.jsonl"),
                "--max_length",
                "4",
                "--no_progress",
            ]
        ),  # fmt: skip
        "evaluate_code": evaluate_code.main(
            [
                "--checkpoint",
                str(directory),
                "--out",
                str(out / "eval"),
                "--languages",
                "python",
                "--data_dir",
                "minibench",
                "--max_problems",
                "1",
                "--max_length",
                "4",
                "--workers",
                "1",
                "--no_progress",
                "--unsafe",
            ]
        ),  # fmt: skip
    }
    (out / "rc.json").write_text(json.dumps(rc))


def _in_subprocess(call: str, devices: int) -> None:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    imports = "from pathlib import Path\nfrom tests.test_checkpoints import _read_run, _write_run"
    code = f"{imports}\n{call}"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _check_read(written: Path, out: Path) -> None:
    from safetensors.numpy import load_file

    want = dict(np.load(written / "params.npz"))
    for reader in ("resume", "init"):
        got = dict(np.load(out / f"{reader}.npz"))
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{reader} {key}")
    assert json.loads((out / "rc.json").read_text()) == {
        "export_hf": 0,
        "infer": 0,
        "evaluate_code": 0,
    }
    model = checkpoints.load_model(written)
    exported = hf.params_to_hf(checkpoints.load_params(written), model)
    assert load_file(str(out / "hf" / "model.safetensors")).keys() == exported.keys()
    assert (out / "generations.jsonl").read_text().count("\n") == 1
    assert json.loads((out / "eval" / "summary.json").read_text())


def test_a_pod_checkpoint_is_read_on_one_device(tmp_path):
    pod = tmp_path / "pod"
    _write_run(pod, (2, 2, 2))  # this process: 8 devices
    _in_subprocess(f"_read_run(Path({str(pod)!r}), (1, 1, 1), Path({str(tmp_path / 'r')!r}))", 1)
    _check_read(pod, tmp_path / "r")


def test_a_one_device_checkpoint_is_read_on_a_pod_mesh(tmp_path):
    single = tmp_path / "single"
    _in_subprocess(f"_write_run(Path({str(single)!r}), (1, 1, 1))", 1)
    _read_run(single, (2, 2, 2), tmp_path / "r")  # this process: 8 devices
    _check_read(single, tmp_path / "r")
