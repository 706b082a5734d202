"""Hugging Face import/export: round trips, transformers loading, and bad input."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from t5x_xfer import checkpoints, convert, hf
from t5x_xfer.models import EncoderDecoderModel, T5Config
from t5x_xfer.testing.fakes import TINY_HF_CONFIGS, make_hf_model, tiny_config

torch = pytest.importorskip("torch", reason="round trips through transformers need torch")


@pytest.mark.parametrize("kind", sorted(TINY_HF_CONFIGS))
def test_hf_import_export_round_trip_is_exact(kind, tmp_path):
    make_hf_model(kind, tmp_path / "hf")
    (tmp_path / "hf" / "tokenizer.json").write_text('{"fake": true}')
    assert (
        convert.main(["import_hf", "--hf_dir", str(tmp_path / "hf"), "--out", str(tmp_path / "ck")])
        == 0
    )
    assert (
        convert.main(
            ["export_hf", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "out")]
        )
        == 0
    )

    from transformers import T5ForConditionalGeneration

    original = T5ForConditionalGeneration.from_pretrained(tmp_path / "hf").state_dict()
    reloaded, info = T5ForConditionalGeneration.from_pretrained(
        tmp_path / "out", output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    state = reloaded.state_dict()
    assert set(state) == set(original)
    for key in original:
        assert torch.equal(state[key], original[key]), key
    assert reloaded.config.scale_decoder_outputs == TINY_HF_CONFIGS[kind]["tie_word_embeddings"]
    assert (tmp_path / "out" / "tokenizer.json").read_text() == '{"fake": true}'


def test_export_then_import_gives_identical_params(tmp_path):
    model = EncoderDecoderModel(tiny_config("t5_v1_1"))
    params = model.init_params(jax.random.PRNGKey(3))
    hf.save_hf(tmp_path / "hf", params, model)
    model2, params2, _ = hf.load_hf(str(tmp_path / "hf"))
    assert type(model2) is EncoderDecoderModel and model2.config == model.config
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, params2)
    checkpoints.save(tmp_path / "ck", params2, model2, step=7)
    assert checkpoints.resolve(tmp_path / "ck") == ((tmp_path / "ck").resolve(), 7)
    restored = checkpoints.load_params(tmp_path / "ck" / "7")
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, restored)
    loaded = checkpoints.load_model(tmp_path / "ck")
    assert loaded.family == "t5" and loaded.config == model.config


def test_export_of_a_trained_checkpoint_keeps_logits_and_tokenizer(tmp_path):
    """A checkpoint of our own (not an import) -> export_hf with --tokenizer_dir -> the
    exported model computes the same logits, and carries the tokenizer given."""
    model = EncoderDecoderModel(tiny_config("codet5p", dropout_rate=0.0))
    params = model.init_params(jax.random.PRNGKey(5))
    checkpoints.save(tmp_path / "ck", params, model, step=12)
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer.json").write_text('{"given": true}')
    argv = ["export_hf", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "out")]
    assert convert.main([*argv, "--tokenizer_dir", str(tmp_path / "tok")]) == 0
    assert (tmp_path / "out" / "tokenizer.json").read_text() == '{"given": true}'
    batch = {
        "encoder_input_tokens": np.array([[5, 6, 7, 2, 0]], np.int32),
        "decoder_input_tokens": np.array([[0, 9, 10, 11]], np.int32),
    }
    reloaded, params2, _ = hf.load_hf(str(tmp_path / "out"))
    np.testing.assert_allclose(
        np.asarray(reloaded.logits(params2, batch)),
        np.asarray(model.logits(params, batch)),
        atol=1e-5,
    )


def test_directory_without_config_json(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert (
        convert.main(
            ["import_hf", "--hf_dir", str(tmp_path / "empty"), "--out", str(tmp_path / "c")]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "config.json" in err and str(tmp_path / "empty") in err
    assert not (tmp_path / "c").exists()


def test_unsupported_architecture(tmp_path):
    (tmp_path / "bert").mkdir()
    bert = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "hidden_size": 32}
    (tmp_path / "bert" / "config.json").write_text(json.dumps(bert))
    with pytest.raises(
        ValueError, match=r"config\.json: unsupported architecture.*bert.*supported"
    ):
        hf.import_hf(hf_dir=str(tmp_path / "bert"), out=str(tmp_path / "c"))
    assert not (tmp_path / "c").exists()


def test_weights_that_do_not_match_config(tmp_path):
    make_hf_model("codet5p", tmp_path / "hf")
    weights = load_file(tmp_path / "hf" / "model.safetensors")
    key = "encoder.block.1.layer.1.DenseReluDense.wi.weight"
    weights[key] = np.zeros((65, 32), np.float32)  # d_ff is 64
    save_file(weights, tmp_path / "hf" / "model.safetensors")
    with pytest.raises(
        ValueError, match=r"model\.safetensors: tensor .*DenseReluDense\.wi\.weight.* \(65, 32\)"
    ):
        hf.import_hf(hf_dir=str(tmp_path / "hf"), out=str(tmp_path / "c"))
    assert not (tmp_path / "c").exists()


def test_checkpoint_that_does_not_match_its_config(tmp_path, capsys):
    cfg = tiny_config("codet5p")
    params = EncoderDecoderModel(cfg).init_params(jax.random.PRNGKey(0))
    checkpoints.save(tmp_path / "ck", params, EncoderDecoderModel(cfg.replace(d_ff=128)))
    assert (
        convert.main(
            ["export_hf", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "o")]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "checkpoint" in err and "['mlp']['wi']" in err and "(32, 64)" in err and "(32, 128)" in err
    )
    assert not (tmp_path / "o").exists()


def test_missing_checkpoint_and_bad_config_values(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoints.resolve(tmp_path / "nope")
    with pytest.raises(ValueError, match="feed_forward_proj='swiglu'.*allowed: relu"):
        T5Config(feed_forward_proj="swiglu")
    with pytest.raises(ValueError, match="dtype='float16'.*allowed: float32, bfloat16"):
        T5Config(dtype="float16")


def test_import_from_pytorch_bin(tmp_path):
    model = make_hf_model("t5_v1_1", tmp_path / "st")
    (tmp_path / "bin").mkdir()  # the pre-safetensors layout: config.json + a torch pickle
    (tmp_path / "bin" / "config.json").write_text((tmp_path / "st" / "config.json").read_text())
    torch.save(model.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    _, from_bin, _ = hf.load_hf(str(tmp_path / "bin"))
    _, from_st, _ = hf.load_hf(str(tmp_path / "st"))
    jax.tree_util.tree_map(np.testing.assert_array_equal, from_bin, from_st)
