"""The decoder-only Llama family (Llama, Qwen2, Qwen3) against transformers' PyTorch classes:
logits with padding, packing, Hugging Face round trips, scanned layers, FLOPs, bad configs."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from t5x_xfer import checkpoints, hf, optimizers, partitioning, train_state
from t5x_xfer.models import DecoderConfig, DecoderOnlyModel, EncoderDecoderModel
from t5x_xfer.testing.fakes import (
    TINY_DECODER_CONFIGS,
    decoder_model_type,
    make_hf_decoder,
    tiny_config,
    tiny_decoder_config,
)

torch = pytest.importorskip("torch", reason="parity tests need torch (the test extra)")
KINDS = sorted(TINY_DECODER_CONFIGS)


def _padded(vocab: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ids and a mask with a full row, a left-padded row and a right-padded row."""
    ids = np.random.default_rng(seed).integers(4, vocab, size=(3, 13)).astype(np.int32)
    mask = np.ones((3, 13), bool)
    mask[1, :5] = False
    mask[2, 8:] = False
    return ids, mask


@pytest.mark.parametrize("kind", KINDS)
def test_logits_match_transformers_with_left_and_right_padding(kind, tmp_path):
    reference = make_hf_decoder(kind, tmp_path / kind)
    model, params, _ = hf.load_hf(str(tmp_path / kind))
    assert type(model) is DecoderOnlyModel
    assert model.config.model_type == decoder_model_type(kind)
    ids, mask = _padded(model.vocab_size)
    positions = np.maximum(np.cumsum(mask, -1) - 1, 0)
    with torch.no_grad():
        expected = reference(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
            position_ids=torch.tensor(positions),
        ).logits.numpy()
    ours = jax.jit(model.logits)(params, {"decoder_input_tokens": ids, "decoder_mask": mask})
    np.testing.assert_allclose(np.asarray(ours)[mask], expected[mask], atol=1e-4, rtol=0)


def test_packed_segments_equal_separate_examples():
    model = DecoderOnlyModel(tiny_decoder_config("qwen3"))
    params = model.init_params(jax.random.PRNGKey(0))
    rng = np.random.default_rng(3)
    a, b = rng.integers(4, 80, size=(1, 6)), rng.integers(4, 80, size=(1, 5))
    packed = {
        "decoder_input_tokens": np.concatenate([a, b, np.zeros((1, 2), int)], axis=1),
        "decoder_segment_ids": np.array([[1] * 6 + [2] * 5 + [0, 0]]),
        "decoder_positions": np.array([list(range(6)) + list(range(5)) + [0, 0]]),
    }
    together = np.asarray(model.logits(params, packed))[0]
    alone_a = np.asarray(model.logits(params, {"decoder_input_tokens": a}))[0]
    alone_b = np.asarray(model.logits(params, {"decoder_input_tokens": b}))[0]
    np.testing.assert_allclose(together[:6], alone_a, atol=1e-5)
    np.testing.assert_allclose(together[6:11], alone_b, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_import_export_round_trip_loads_in_transformers(kind, tmp_path):
    from transformers import AutoModelForCausalLM

    reference = make_hf_decoder(kind, tmp_path / "hf")
    original = reference.state_dict()
    (tmp_path / "hf" / "tokenizer.json").write_text('{"fake": true}')
    ckpt = hf.import_hf(hf_dir=str(tmp_path / "hf"), out=str(tmp_path / "ck"))
    assert checkpoints.load_model(ckpt).family == "llama"
    hf.export_hf(checkpoint=str(tmp_path / "ck"), out=str(tmp_path / "out"))
    reloaded, info = AutoModelForCausalLM.from_pretrained(
        tmp_path / "out", output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    state = reloaded.state_dict()
    assert set(state) == set(original)
    for key in original:
        assert torch.equal(state[key], original[key]), key
    assert type(reloaded) is type(reference)
    ids = torch.tensor(_padded(reference.config.vocab_size)[0], dtype=torch.long)
    with torch.no_grad():  # the exported config.json means the same rope, norms and biases
        np.testing.assert_allclose(reloaded(ids).logits.numpy(), reference(ids).logits.numpy())
    assert (tmp_path / "out" / "tokenizer.json").read_text() == '{"fake": true}'


def test_sharded_safetensors_import(tmp_path):
    reference = make_hf_decoder("llama", tmp_path / "one")
    reference.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    _, one, _ = hf.load_hf(str(tmp_path / "one"))
    _, sharded, _ = hf.load_hf(str(tmp_path / "sharded"))
    jax.tree.map(np.testing.assert_array_equal, one, sharded)


def test_scanned_layers_compute_the_same_logits(tmp_path):
    make_hf_decoder("qwen2", tmp_path / "hf")
    plain, params, _ = hf.load_hf(str(tmp_path / "hf"))
    scanned = DecoderOnlyModel(plain.config.replace(scan_layers=True, remat_policy="full"))
    stacked = scanned.stack_layers(params)
    assert stacked["layers"]["layer"]["mlp"]["gate"].shape[0] == plain.config.num_hidden_layers
    checkpoints.check_shapes(stacked, scanned.abstract_params(), "stacked")
    ids, mask = _padded(plain.vocab_size, seed=1)
    batch = {"decoder_input_tokens": ids, "decoder_mask": mask}
    np.testing.assert_allclose(
        np.asarray(scanned.logits(stacked, batch)),
        np.asarray(plain.logits(params, batch)),
        atol=1e-5,
    )
    jax.tree.map(np.testing.assert_array_equal, scanned.unstack_layers(stacked), params)
    axes = scanned.logical_axes()["layers"]["layer"]["mlp"]["gate"]
    assert tuple(axes) == ("layers", "embed", "mlp")


def test_flops_match_xla_cost_analysis():
    """The analytic MFU numerator (3x forward matmul FLOPs) agrees with XLA's count."""
    model = DecoderOnlyModel(
        DecoderConfig(
            vocab_size=2048,
            hidden_size=256,
            intermediate_size=768,
            num_hidden_layers=2,
            num_attention_heads=8,
            num_key_value_heads=2,
        )
    )
    batch, inputs, targets = 4, 48, 32
    feats = {"decoder_input_tokens": np.ones((batch, inputs + targets), np.int32)}
    compiled = jax.jit(model.logits).lower(model.abstract_params(), feats).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    ours = batch * model.flops_per_example({"inputs": inputs, "targets": targets}) / 3
    assert ours == pytest.approx(cost["flops"], rel=0.03)


def test_attention_dropout_is_used_in_training_only():
    model = DecoderOnlyModel(tiny_decoder_config("llama", attention_dropout=0.5))
    params = model.init_params(jax.random.PRNGKey(0))
    batch = {"decoder_input_tokens": np.arange(4, 14, dtype=np.int32)[None]}
    clean = np.asarray(model.logits(params, batch))
    np.testing.assert_array_equal(clean, np.asarray(model.logits(params, batch)))
    dropped = np.asarray(model.logits(params, batch, dropout_rng=jax.random.PRNGKey(1)))
    assert model.uses_dropout and not np.allclose(clean, dropped)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"use_sliding_window": True, "sliding_window": 64}, "sliding-window attention"),
        ({"num_experts": 8}, "mixture-of-experts"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 2.0}}, "rope type 'yarn'"),
        ({"partial_rotary_factor": 0.5}, "partial_rotary_factor"),
        ({"hidden_act": "gelu"}, "hidden_act='gelu'; allowed: silu"),
        ({"model_type": "mistral", "architectures": ["MistralForCausalLM"]}, "model_type"),
    ],
)
def test_unsupported_configs_fail_naming_the_field(tmp_path, change, words):
    make_hf_decoder("qwen2", tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ValueError, match=words):
        hf.import_hf(hf_dir=str(tmp_path / "hf"), out=str(tmp_path / "ck"))
    assert not (tmp_path / "ck").exists()


def test_a_checkpoint_of_the_other_family_fails_before_training(tmp_path):
    t5 = EncoderDecoderModel(tiny_config("codet5p"))
    checkpoints.save(tmp_path / "t5", t5.init_params(jax.random.PRNGKey(0)), t5)
    model = DecoderOnlyModel(tiny_decoder_config("llama"))
    optimizer = optimizers.make_optimizer(optimizers.make_schedule("constant", 1e-3))
    init = train_state.TrainStateInitializer(model, optimizer, partitioning.make_mesh())
    with pytest.raises(ValueError, match="'t5'-family .* builds a 'llama'-family"):
        init.load_init_params("init", str(tmp_path / "t5"))
