"""Decoding the decoder-only family: greedy and beam equal transformers' generate on left-padded
prompts of different lengths; sampling is reproducible and independent of the batch; stop
strings; prompts from seqio's prefix-LM features."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from t5x_xfer import decoding, hf
from t5x_xfer.decoding import DecodeSettings
from t5x_xfer.testing.fakes import make_hf_decoder

torch = pytest.importorskip("torch", reason="parity tests need torch (the test extra)")
MAX_LEN = 16
WIDTH = 12
PROMPT_LENGTHS = [9, 3, 6, 1]


@pytest.fixture(scope="module", params=["llama", "qwen2", "qwen3"])
def tiny(request, tmp_path_factory):
    """A tiny model of each architecture and prompts of different lengths; as in
    test_decoding, EOS is the token whose first greedy occurrence varies most across rows,
    so rows end at different steps."""
    out = tmp_path_factory.mktemp(request.param)
    reference = make_hf_decoder(request.param, out)
    model, params, _ = hf.load_hf(str(out))
    rng = np.random.default_rng(0)
    prompts = [
        [model.start_id, *rng.integers(4, model.vocab_size, n - 1).tolist()] for n in PROMPT_LENGTHS
    ]
    batch = model.prompt_batch(prompts, WIDTH)
    free = model.replace(eos_token_id=-1)
    tokens = np.asarray(free.predict_batch(params, batch, DecodeSettings(max_length=MAX_LEN))[0])
    tokens = tokens[:, 0]

    def spread(t: int) -> int:
        return len({list(r).index(t) if t in r else -1 for r in tokens})

    eos = max(sorted(set(tokens[:, 1:].ravel().tolist())), key=spread)
    return reference, model.replace(eos_token_id=eos), params, batch


def _generate(reference, batch, eos: int, **kwargs):
    with torch.no_grad():
        return reference.generate(
            input_ids=torch.tensor(batch["decoder_input_tokens"], dtype=torch.long),
            attention_mask=torch.tensor(batch["decoder_prompt_mask"], dtype=torch.long),
            max_new_tokens=MAX_LEN,
            eos_token_id=eos,
            pad_token_id=0,
            **kwargs,
        )


def _until_eos(row, eos: int) -> list[int]:
    row = list(np.asarray(row))
    return row[: row.index(eos) + 1] if eos in row else row


def test_greedy_equals_transformers(tiny):
    reference, model, params, batch = tiny
    tokens, scores = model.predict_batch(params, batch, DecodeSettings(max_length=MAX_LEN))
    ours = np.asarray(tokens)[:, 0]
    ref = _generate(reference, batch, model.eos_id, do_sample=False).numpy()[:, WIDTH:]
    assert len({len(_until_eos(r, model.eos_id)) for r in ours}) >= 2
    np.testing.assert_array_equal(ours[:, : ref.shape[1]], np.where(ref == -1, 0, ref))
    assert np.all(np.asarray(scores) < 0)


@pytest.mark.parametrize("length_penalty", [1.0, 2.0])
def test_beam_search_equals_transformers(tiny, length_penalty):
    reference, model, params, batch = tiny
    settings = DecodeSettings(
        method="beam", beam_size=3, num_samples=3, max_length=MAX_LEN, length_penalty=length_penalty
    )
    tokens, scores = model.predict_batch(params, batch, settings)
    out = _generate(
        reference,
        batch,
        model.eos_id,
        do_sample=False,
        num_beams=3,
        num_return_sequences=3,
        length_penalty=length_penalty,
        output_scores=True,
        return_dict_in_generate=True,
    )
    ref = out.sequences.numpy()[:, WIDTH:].reshape(len(PROMPT_LENGTHS), 3, -1)
    for b in range(len(PROMPT_LENGTHS)):
        for j in range(3):
            assert _until_eos(tokens[b, j], model.eos_id) == _until_eos(ref[b, j], model.eos_id)
    np.testing.assert_allclose(
        scores, out.sequences_scores.numpy().reshape(len(PROMPT_LENGTHS), 3), atol=1e-5
    )


def test_sampling_is_reproducible_and_independent_of_the_batch(tiny):
    _, model, params, batch = tiny
    settings = DecodeSettings(method="sample", num_samples=3, max_length=MAX_LEN, top_p=0.9)
    keys = jax.random.split(jax.random.PRNGKey(4), len(PROMPT_LENGTHS))
    a = np.asarray(model.predict_batch(params, batch, settings, rng=keys)[0])
    b = np.asarray(model.predict_batch(params, batch, settings, rng=keys)[0])
    np.testing.assert_array_equal(a, b)
    one = {k: v[2:3] for k, v in batch.items()}
    alone = np.asarray(model.predict_batch(params, one, settings, rng=keys[2:3])[0])
    np.testing.assert_array_equal(alone[0], a[2])
    cold = DecodeSettings(method="sample", num_samples=2, max_length=MAX_LEN, temperature=1e-4)
    greedy = np.asarray(model.predict_batch(params, batch, DecodeSettings(max_length=MAX_LEN))[0])
    np.testing.assert_array_equal(
        np.asarray(model.predict_batch(params, batch, cold)[0]), np.repeat(greedy, 2, axis=1)
    )


def test_prompts_from_seqio_prefix_lm_features_decode_the_same(tiny):
    """The trainer's seqio metrics decode from the converter's features: the prompt is the
    part marked by decoder_causal_attention, right-padded there."""
    _, model, params, batch = tiny
    settings = DecodeSettings(max_length=MAX_LEN)
    expected = np.asarray(model.predict_batch(params, batch, settings)[0])
    width = WIDTH + 5
    tokens = np.zeros((len(PROMPT_LENGTHS), width), np.int32)
    causal = np.zeros_like(tokens)
    for i, n in enumerate(PROMPT_LENGTHS):
        tokens[i, :n] = batch["decoder_input_tokens"][i, WIDTH - n :]
        tokens[i, n : n + 3] = 7  # target tokens, which the prompt must not include
        causal[i, :n] = 1
    seqio_batch = {"decoder_input_tokens": tokens, "decoder_causal_attention": causal}
    got = np.asarray(model.predict_batch(params, seqio_batch, settings)[0])
    np.testing.assert_array_equal(got, expected)


def test_stop_strings_cut_where_an_uninterrupted_decode_would(tiny):
    _, model, params, batch = tiny

    class Digits:  # a stand-in detokeniser: one character per token id
        @staticmethod
        def decode(ids):
            return "".join(chr(65 + int(i) % 26) for i in ids)

    settings = DecodeSettings(method="sample", num_samples=2, max_length=MAX_LEN)
    full = np.asarray(model.predict_batch(params, batch, settings)[0])
    text = Digits.decode(decoding.generated_ids(full[0, 0], model.eos_id))
    stop = text[3:5]
    cut = model.predict_batch(
        params, batch, settings.replace(stop_sequences=(stop,)), vocabulary=Digits
    )[0]
    flat = full.reshape(-1, MAX_LEN)
    expected = decoding.cut_at_stops(flat, [[stop]] * len(flat), Digits.decode, model.eos_id)
    assert (expected != flat).any()
    np.testing.assert_array_equal(np.asarray(cut).reshape(-1, MAX_LEN), expected)
