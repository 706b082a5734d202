"""Checkpoints written before the model-family seam (tests/fixtures/legacy_t5_run, made by the
previous code path: a bare T5Config, no family tag) still load, decode, export and resume."""

from __future__ import annotations

import json
import shutil
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
