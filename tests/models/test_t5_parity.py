"""Our Flax T5 against transformers' PyTorch T5 on the same weights (imported through hf.py)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from t5x_xfer import hf
from t5x_xfer.testing.fakes import TINY_HF_CONFIGS, make_hf_model, padded_batch

torch = pytest.importorskip("torch", reason="parity tests need torch (the test extra)")


@pytest.mark.parametrize("kind", sorted(TINY_HF_CONFIGS))
def test_logits_match_transformers_with_padding(kind, tmp_path):
    hf_model = make_hf_model(kind, tmp_path / kind)
    model, params, _ = hf.load_hf(str(tmp_path / kind))
    cfg = model.config
    batch = padded_batch(cfg.vocab_size, enc_lengths=[30, 17, 5], dec_lengths=[12, 26, 3])
    with torch.no_grad():
        expected = hf_model(
            input_ids=torch.tensor(batch["encoder_input_tokens"], dtype=torch.long),
            attention_mask=torch.tensor(batch["encoder_mask"], dtype=torch.long),
            decoder_input_ids=torch.tensor(batch["decoder_input_tokens"], dtype=torch.long),
            decoder_attention_mask=torch.tensor(batch["decoder_mask"], dtype=torch.long),
        ).logits.numpy()
    ours = np.asarray(jax.jit(model.logits)(params, batch))
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)


def test_packed_segments_equal_separate_examples(tmp_path):
    """Two examples packed in one row give the logits they give alone (segment masks)."""
    make_hf_model("codet5p", tmp_path / "m")
    model, params, _ = hf.load_hf(str(tmp_path / "m"))
    cfg = model.config
    a = padded_batch(cfg.vocab_size, [7], [5], seed=1)
    b = padded_batch(cfg.vocab_size, [9], [4], seed=2)
    cat = lambda k: np.concatenate([a[k], b[k]], axis=1)  # noqa: E731
    packed = {
        "encoder_input_tokens": cat("encoder_input_tokens"),
        "decoder_input_tokens": cat("decoder_input_tokens"),
        "encoder_segment_ids": np.array([[1] * 7 + [2] * 9]),
        "decoder_segment_ids": np.array([[1] * 5 + [2] * 4]),
    }
    joint = np.asarray(model.logits(params, packed))
    alone_a = np.asarray(model.logits(params, a))
    alone_b = np.asarray(model.logits(params, b))
    np.testing.assert_allclose(joint[:, :5], alone_a, atol=1e-5)
    np.testing.assert_allclose(joint[:, 5:], alone_b, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(TINY_HF_CONFIGS))
def test_gradients_match_transformers(kind, tmp_path):
    """Every parameter's loss gradient equals transformers' (the relative position bias's one
    goes through ``masked_bias``'s and ``dot_product_attention``'s own backward rules)."""
    hf_model = make_hf_model(kind, tmp_path / kind)
    model, params, _ = hf.load_hf(str(tmp_path / kind))
    cfg = model.config
    batch = padded_batch(cfg.vocab_size, enc_lengths=[30, 17, 5], dec_lengths=[12, 26, 3])
    targets = np.where(batch["decoder_mask"], batch["decoder_input_tokens"], 0)
    targets[:, 0] = np.random.default_rng(3).integers(3, cfg.vocab_size, size=len(targets))
    ours_batch = {
        "encoder_input_tokens": batch["encoder_input_tokens"],
        "decoder_input_tokens": np.concatenate([np.zeros_like(targets[:, :1]), targets[:, :-1]], 1),
        "decoder_target_tokens": targets,
        "decoder_loss_weights": batch["decoder_mask"].astype(np.float32),
    }
    grads = jax.jit(jax.grad(lambda p: model.loss_fn(p, ours_batch)[0]))(params)
    hf_model.zero_grad()
    hf_model(
        input_ids=torch.tensor(batch["encoder_input_tokens"], dtype=torch.long),
        attention_mask=torch.tensor(batch["encoder_mask"], dtype=torch.long),
        decoder_input_ids=torch.tensor(ours_batch["decoder_input_tokens"], dtype=torch.long),
        labels=torch.tensor(np.where(batch["decoder_mask"], targets, -100), dtype=torch.long),
    ).loss.backward()
    expected = {name: p.grad for name, p in hf_model.named_parameters() if p.grad is not None}
    ours = hf.params_to_hf(grads, model)
    assert any("relative_attention_bias" in name for name in ours)
    for name, value in ours.items():
        if name in expected:
            np.testing.assert_allclose(
                value, expected[name].numpy(), atol=2e-5, rtol=1e-3, err_msg=name
            )
    tied = {"shared.weight", "lm_head.weight"}
    assert set(expected) <= set(ours) | tied, set(expected) - set(ours)
