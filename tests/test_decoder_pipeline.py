"""The decoder-only family through the pipeline: prefix-LM features, the train binary (stage
chaining, exact resume, seqio metrics on greedy decodes), sharded training equal to one
device, infer with the family's prompt convention."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest
import seqio

from t5x_xfer import checkpoints, infer, optimizers, partitioning, train, train_state, vocabularies
from t5x_xfer import trainer as trainer_lib
from t5x_xfer.decoding import DecodeSettings
from t5x_xfer.models import DecoderOnlyModel
from t5x_xfer.testing import task_sources
from t5x_xfer.testing.fakes import tiny_decoder_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("decoder")
    data = task_sources.fake_data_dir(root / "data", n=40)
    texts = (data / "mbpp" / "mbpp.jsonl").read_text().splitlines() * 3
    texts += [json.dumps(r) for r in task_sources.CSQA_RECORDS] * 3
    tok = vocabularies.train_byte_level_bpe(texts, root / "tokenizer.json", vocab_size=400)
    return {"root": root, "data": data, "tok": tok}


def test_prefix_lm_features_start_with_bos_and_weigh_only_the_targets():
    model = DecoderOnlyModel(tiny_decoder_config("llama"))  # BOS 1, EOS 2
    ds = seqio.test_utils.create_default_dataset(
        [{"inputs": [7, 8, 9, 2], "targets": [5, 6, 2]}], feature_names=("inputs", "targets")
    )
    converted = model.feature_converter(pack=False)(ds, {"inputs": 6, "targets": 4})
    ex = {k: v.tolist() for k, v in next(iter(converted.as_numpy_iterator())).items()}
    assert ex["decoder_target_tokens"] == [7, 8, 9, 5, 6, 2, 0, 0, 0, 0]  # the inputs' EOS gone
    assert ex["decoder_input_tokens"] == [1, 7, 8, 9, 5, 6, 2, 0, 0, 0]  # starts with BOS
    assert ex["decoder_loss_weights"] == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    qwen = DecoderOnlyModel(tiny_decoder_config("qwen2"))  # no BOS: sequences start with EOS
    converted = qwen.feature_converter(pack=False)(ds, {"inputs": 6, "targets": 4})
    assert next(iter(converted.as_numpy_iterator()))["decoder_input_tokens"][0] == qwen.eos_id


def _argv(setup: dict, model_dir: Path, *extra: str) -> list[str]:
    return [
        "--gin_file=runs/debug_cpu.gin",
        "--gin_file=models/tiny_decoder.gin",
        f'--gin.TOKENIZER="{setup["tok"]}"',
        f'--gin.DATA_DIR="{setup["data"]}"',
        f'--gin.MODEL_DIR="{model_dir}"',
        '--gin.MIXTURE_OR_TASK_NAME="xfer_mix_target_mbpp_completion"',
        "--gin.BATCH_SIZE=8",
        "--gin.VOCAB_SIZE=400",
        '--gin.OPTIMIZER="adamw"',
        "--gin.train.log_every=1",
        "--no_progress",
        *extra,
    ]


def _losses(model_dir: Path) -> dict[int, float]:
    rows = (model_dir / "train_metrics.jsonl").read_text().splitlines()
    return {json.loads(r)["step"]: json.loads(r)["loss"] for r in rows}


def test_train_binary_chains_stages_resumes_exactly_and_decodes(setup, capsys):
    root = setup["root"]
    inter = root / "inter"
    argv = _argv(setup, inter, '--gin.MIXTURE_OR_TASK_NAME="xfer_mix_commonsense_qa"')
    assert train.main([*argv, "--gin.TRAIN_STEPS=4", "--gin.train.eval_every=4"]) == 0
    summary = json.loads((inter / "summary.json").read_text())
    assert 0 <= summary["eval"]["xfer_commonsense_qa/accuracy"] <= 100  # greedy decodes
    assert checkpoints.load_model(inter).family == "llama"
    assert (inter / "hf_assets" / "tokenizer.json").is_file()

    whole, cut = root / "whole", root / "cut"
    chained = [
        f'--gin.INIT_CHECKPOINT="{inter}"',
        "--gin.TRAIN_STEPS=6",
        "--gin.train.eval_every=0",
        "--gin.train.save_every=3",
    ]
    assert train.main([*_argv(setup, whole), *chained]) == 0
    assert train.main([*_argv(setup, cut), *chained, "--gin.train.stop_after=3"]) == 0
    assert train.main([*_argv(setup, cut), *chained]) == 0  # resumes at step 3
    assert json.loads((cut / "summary.json").read_text())["restored_from"] == "resume"
    assert _losses(cut) == _losses(whole)
    jax.tree.map(
        np.testing.assert_array_equal, checkpoints.load_params(cut), checkpoints.load_params(whole)
    )

    src = root / "prompts.jsonl"
    src.write_text(
        json.dumps({"id": "p", "prompt": "def add(a, b):\n", "language": "python"}) + "\n"
    )
    out = root / "out.jsonl"
    settings = DecodeSettings(method="sample", num_samples=2, max_length=12)
    result = infer.infer(input=src, output=out, checkpoint=str(whole), decode=settings)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert result.samples_written == 2 and {r["sample_index"] for r in rows} == {0, 1}
    vocab = vocabularies.load_vocabulary(whole / "hf_assets")
    prompt = infer.read_prompts(
        src,
        vocab,
        model=checkpoints.load_model(whole),
        language=None,
        add_eos=True,
        max_input_length=None,
    )[0]
    assert prompt.ids[0] == 1 and prompt.ids[-1] != 2  # BOS first, no EOS: a continuation


def _batches(n: int, vocab: int = 64) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        tokens = rng.integers(3, vocab, (8, 12)).astype(np.int32)
        weights = np.ones_like(tokens, np.float32)
        weights[:, :4] = 0  # a prefix without loss, as prefix-LM inputs
        out.append(
            {
                "decoder_input_tokens": np.concatenate(
                    [np.ones((8, 1), np.int32), tokens[:, :-1]], 1
                ),
                "decoder_target_tokens": tokens,
                "decoder_loss_weights": weights,
            }
        )
    return out


def _train(mesh_shape, devices, batches):
    model = DecoderOnlyModel(tiny_decoder_config("llama", vocab_size=64, num_key_value_heads=2))
    schedule = optimizers.make_schedule("constant", 1e-3)
    opt = optimizers.make_optimizer(schedule, "adamw")
    mesh = partitioning.make_mesh(*mesh_shape, devices=devices)
    with partitioning.activate(mesh):
        init = train_state.TrainStateInitializer(model, opt, mesh)
        state = init.from_params(None, seed=0)
        step = jax.jit(
            trainer_lib.make_train_step(model, opt, schedule),
            in_shardings=(init.state_shardings, partitioning.batch_sharding(mesh)),
            out_shardings=(init.state_shardings, init.replicated),
        )
        losses = []
        for b in batches:
            state, m = step(state, partitioning.global_batch(b, mesh))
            losses.append(float(m["loss_sum"]) / float(m["target_tokens"]))
    return losses, jax.tree.map(np.asarray, state.params), state


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 devices (tests/conftest.py)")
def test_sharded_training_equals_one_device_and_fsdp_shards():
    batches = _batches(3)
    one, p1, _ = _train((1, 1, 1), jax.devices()[:1], batches)
    many, p8, state = _train((2, 2, 2), jax.devices()[:8], batches)
    np.testing.assert_allclose(many, one, atol=1e-5)
    diff = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), p1, p8))
    assert max(diff) < 1e-5
    _, _, fsdp = _train((1, 8, 1), jax.devices()[:8], batches[:1])
    shard = fsdp.params["layers_0"]["mlp"]["gate"]
    assert shard.addressable_shards[0].data.shape[0] == shard.shape[0] // 8
