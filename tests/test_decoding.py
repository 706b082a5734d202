"""Decoding: parity with transformers' generate, sampling statistics, stop strings, bad input."""

from __future__ import annotations

import doctest
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from t5x_xfer import decoding, hf
from t5x_xfer.codeeval.languages import STOP_SEQUENCES, truncate_completion
from t5x_xfer.decoding import DecodeSettings
from t5x_xfer.models import EncoderDecoderModel
from t5x_xfer.testing.fakes import TINY_HF_CONFIGS, make_hf_model, tiny_config
from t5x_xfer.vocabularies import HuggingFaceVocabulary, train_byte_level_bpe

torch = pytest.importorskip("torch", reason="parity tests need torch (the test extra)")

INPUT_LENGTHS = [12, 5, 9, 3, 7]
MAX_LEN = 20


def _inputs(vocab_size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    ids = np.zeros((len(INPUT_LENGTHS), max(INPUT_LENGTHS)), np.int32)
    for i, n in enumerate(INPUT_LENGTHS):
        ids[i, :n] = rng.integers(3, vocab_size, n)
    return ids


def _until_eos(row: np.ndarray, eos: int) -> list[int]:
    row = [int(t) for t in row]
    return row[: row.index(eos) + 1] if eos in row else row


@pytest.fixture(scope="module", params=sorted(TINY_HF_CONFIGS))
def tiny(request, tmp_path_factory):
    """(transformers model, our model, params, inputs) with an EOS that ends rows unevenly.

    Random tiny models rarely emit their EOS, so the test picks as EOS the token whose first
    greedy occurrence varies most across rows (same id for both implementations).
    """
    kind = request.param
    out = tmp_path_factory.mktemp(kind)
    hf_model = make_hf_model(kind, out)
    loaded, params, _ = hf.load_hf(str(out))
    cfg = loaded.config
    ids = _inputs(cfg.vocab_size)
    free = EncoderDecoderModel(cfg.replace(eos_token_id=-1, dropout_rate=0.0))
    tokens = np.asarray(
        free.predict_batch(
            params, {"encoder_input_tokens": ids}, DecodeSettings(max_length=MAX_LEN)
        )[0][:, 0]
    )

    def spread(t: int) -> int:
        return len({list(r).index(t) if t in r else -1 for r in tokens})

    eos = max(sorted(set(tokens[:, 1:].ravel().tolist())), key=spread)
    model = EncoderDecoderModel(cfg.replace(eos_token_id=eos, dropout_rate=0.0))
    return hf_model, model, params, ids


def _hf_generate(hf_model, ids: np.ndarray, eos: int, **kwargs) -> np.ndarray:
    # use_cache=False: transformers 5.24 sizes its decoder cache by num_layers, which breaks
    # configs with num_decoder_layers != num_layers (as the tiny codet5p and mt5 have).
    with torch.no_grad():
        out = hf_model.generate(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(ids != 0, dtype=torch.long),
            max_new_tokens=MAX_LEN,
            eos_token_id=eos,
            pad_token_id=0,
            decoder_start_token_id=0,
            use_cache=False,
            **kwargs,
        )
    return out


def test_greedy_equals_transformers(tiny):
    hf_model, model, params, ids = tiny
    eos = model.config.eos_token_id
    tokens, scores = model.predict_batch(
        params, {"encoder_input_tokens": ids}, DecodeSettings(max_length=MAX_LEN)
    )
    ours = np.asarray(tokens[:, 0])
    ref = _hf_generate(hf_model, ids, eos, do_sample=False).numpy()[:, 1:]
    ends = {len(_until_eos(r, eos)) for r in ours}
    assert len(ends) >= 2, "the test needs rows that end at different steps"
    np.testing.assert_array_equal(ours[:, : ref.shape[1]], ref)
    assert not ours[:, ref.shape[1] :].any()  # padded with 0 after EOS, as transformers pads
    assert scores.shape == (len(ids), 1) and np.all(np.asarray(scores) < 0)


@pytest.mark.parametrize("length_penalty", [1.0, 2.0, -0.5])
def test_beam_search_equals_transformers(tiny, length_penalty):
    hf_model, model, params, ids = tiny
    eos = model.config.eos_token_id
    tokens, scores = model.predict_batch(
        params,
        {"encoder_input_tokens": ids},
        DecodeSettings(
            method="beam",
            beam_size=4,
            num_samples=4,
            max_length=MAX_LEN,
            length_penalty=length_penalty,
        ),
    )
    out = _hf_generate(
        hf_model,
        ids,
        eos,
        do_sample=False,
        num_beams=4,
        num_return_sequences=4,
        length_penalty=length_penalty,
        output_scores=True,
        return_dict_in_generate=True,
    )
    ref = out.sequences.numpy()[:, 1:].reshape(len(ids), 4, -1)
    for b in range(len(ids)):
        for j in range(4):
            assert _until_eos(np.asarray(tokens)[b, j], eos) == _until_eos(ref[b, j], eos)
    np.testing.assert_allclose(
        scores, out.sequences_scores.numpy().reshape(len(ids), 4), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("early_stopping", [True, "never"])
def test_beam_early_stopping_modes_equal_transformers(tiny, early_stopping):
    hf_model, model, params, ids = tiny
    eos = model.config.eos_token_id
    mask = jnp.asarray(ids != 0)
    tokens, _ = decoding.beam_search(
        model.tokens_to_logits(params, MAX_LEN),
        model.init_cache(params, jnp.asarray(ids), mask, MAX_LEN),
        batch_size=len(ids),
        beam_size=3,
        max_decode_length=MAX_LEN,
        eos_id=eos,
        length_penalty=1.5,
        early_stopping=early_stopping,
    )
    ref = _hf_generate(
        hf_model,
        ids,
        eos,
        do_sample=False,
        num_beams=3,
        length_penalty=1.5,
        early_stopping=early_stopping,
    ).numpy()[:, 1:]
    for b in range(len(ids)):
        assert _until_eos(np.asarray(tokens)[b, 0], eos) == _until_eos(ref[b], eos)


def test_sampling_reproducible_per_seed_and_greedy_at_zero_temperature(tiny):
    _, model, params, ids = tiny
    batch = {"encoder_input_tokens": ids}

    def sample(seed: int, **kw):
        settings = decoding.legacy(method="sample", num_samples=3, max_length=MAX_LEN, **kw)
        tokens, scores = model.predict_batch(params, batch, settings, rng=jax.random.PRNGKey(seed))
        return np.asarray(tokens), np.asarray(scores)

    a, b, c = sample(1), sample(1), sample(2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0][:, 0], a[0][:, 1])  # samples of one input differ
    greedy = np.asarray(model.predict_batch(params, batch, DecodeSettings(max_length=MAX_LEN))[0])
    cold = sample(3, temperature=1e-4)[0]
    np.testing.assert_array_equal(cold, np.repeat(greedy, 3, axis=1))
    exact = sample(3, temperature=0.0)[0]  # the old spelling of greedy: method "greedy"
    np.testing.assert_array_equal(exact, cold)


def test_sample_j_of_an_example_does_not_depend_on_the_batch(tiny):
    _, model, params, ids = tiny
    keys = jax.random.split(jax.random.PRNGKey(7), len(ids))
    settings = DecodeSettings(method="sample", num_samples=2, max_length=MAX_LEN)
    full = model.predict_batch(params, {"encoder_input_tokens": ids}, settings, rng=keys)[0]
    one = model.predict_batch(params, {"encoder_input_tokens": ids[2:3]}, settings, rng=keys[2:3])[
        0
    ]
    np.testing.assert_array_equal(full[2], one[0])


def _bigram(vocab: int, seed: int = 0):
    table = jnp.asarray(np.random.default_rng(seed).normal(size=(vocab, vocab)) * 2, jnp.float32)
    return lambda ids, cache: (table[ids], cache)


def test_chunked_decoding_equals_one_loop():
    fn = _bigram(30)
    keys = decoding.row_keys_for(jax.random.PRNGKey(0), 4, 2)
    state = decoding.sample_init({}, keys, max_decode_length=25)
    kw = dict(eos_id=5, temperature=0.9, top_k=10, top_p=0.9)
    once = decoding.sample_steps(state, fn, until=25, **kw)
    chunked = state
    for until in (3, 4, 11, 25):
        chunked = decoding.sample_steps(chunked, fn, until=until, **kw)
    np.testing.assert_array_equal(once.tokens, chunked.tokens)
    np.testing.assert_allclose(once.token_scores, chunked.token_scores)


@pytest.mark.parametrize(
    "temperature,top_k,top_p",
    [(1.0, 4, 1.0), (1.0, 0, 0.8), (0.7, 6, 0.9), (1.5, 0, 1.0)],
)
def test_sampling_matches_truncated_renormalised_distribution(temperature, top_k, top_p):
    logits = np.log(np.array([0.3, 0.2, 0.15, 0.1, 0.08, 0.06, 0.05, 0.03, 0.02, 0.01]))
    # Expected: temperature, keep the top_k, keep the smallest prefix reaching top_p, renormalise.
    p = np.exp(logits / temperature)
    p /= p.sum()
    order = np.argsort(-p)
    keep = np.zeros_like(p, bool)
    keep[order[: top_k or len(p)]] = True
    q = np.where(keep, p, 0) / p[keep].sum()
    mass_before = np.cumsum(q[order]) - q[order]
    keep[order[mass_before >= top_p]] = False
    expected = np.where(keep, p, 0) / p[keep].sum()

    n = 40000
    keys = jax.random.split(jax.random.PRNGKey(123), n)
    draws = np.asarray(
        decoding.sample_logits(
            keys, jnp.tile(jnp.asarray(logits, jnp.float32), (n, 1)), temperature, top_k, top_p
        )
    )
    counts = np.bincount(draws, minlength=len(logits))
    assert counts[~keep].sum() == 0  # truncated tokens are never drawn
    observed, exp = counts[keep], expected[keep] * n
    chi2 = float(((observed - exp) ** 2 / exp).sum())
    # 99.9% quantile of chi-square with dof = kept - 1 (at most 9): 27.9; fixed seed.
    assert chi2 < 27.9, (chi2, counts, exp)


# --- stop strings ---


CODE = [
    "    return x + 1\n\ndef g():\n    return 2\n",
    "    y = [i for i in range(3)]\n    return y\nprint(f(1))\n",
    "    return None\n",
]


@pytest.fixture(scope="module")
def vocab(tmp_path_factory) -> HuggingFaceVocabulary:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train_byte_level_bpe(CODE * 3 + ["def main():\n\tpass\n"], path, vocab_size=300)
    return HuggingFaceVocabulary(str(path))


def _scripted(scripts: np.ndarray):
    """tokens_to_logits that emits scripts[row, step] (the cache counts the steps)."""
    table = jnp.asarray(scripts)

    def fn(ids, cache):
        step = cache["step"]
        logits = jax.nn.one_hot(table[:, step], 300) * 50.0
        return logits, {"step": step + 1}

    return fn


def test_stop_strings_cut_text_where_the_language_stop_set_says(vocab):
    eos, length = vocab.eos_id, 40
    scripts = np.zeros((len(CODE), length + 1), np.int32)
    for r, text in enumerate(CODE):
        ids = vocab.encode(text) + [eos]
        scripts[r, : len(ids)] = ids
    fn = _scripted(scripts)
    cache = {"step": jnp.zeros((), jnp.int32)}
    state = decoding.sample_init(
        cache, decoding.row_keys_for(jax.random.PRNGKey(0), 3, 1), max_decode_length=length
    )
    steps = []

    def run(s, until):
        out = decoding.sample_steps(s, fn, until=until, eos_id=eos, temperature=0.0)
        steps.append(int(out.step))
        return out

    stops = [STOP_SEQUENCES["python"]] * 3
    tokens, _ = decoding.decode_until_stop(
        run, state, stops=stops, detokenize=vocab.decode, eos_id=eos, interval=4
    )
    assert steps[-1] < length  # every row ended: no decoding to the maximum length
    for r, text in enumerate(CODE):
        got = vocab.decode(decoding.generated_ids(tokens[r], eos))
        assert truncate_completion("python", got) == truncate_completion("python", text)
        stop_hit = any(s in text for s in STOP_SEQUENCES["python"])
        assert any(s in got for s in STOP_SEQUENCES["python"]) == stop_hit
        if stop_hit:  # cut right after the token completing the stop string
            ids = decoding.generated_ids(tokens[r], eos)
            assert not any(s in vocab.decode(ids[:-1]) for s in STOP_SEQUENCES["python"])
        else:
            assert got == text  # ended by EOS, untouched


def test_predict_batch_stop_strings_equal_cutting_an_uninterrupted_decode(vocab):
    model = EncoderDecoderModel(
        tiny_config("codet5p", vocab_size=300, eos_token_id=vocab.eos_id, dropout_rate=0.0)
    )
    params = model.init_params(jax.random.PRNGKey(1))
    ids = np.asarray([(vocab.encode(t) + [0] * 10)[:10] for t in CODE], np.int32)
    settings = DecodeSettings(method="sample", num_samples=2, max_length=30)
    kw = dict(rng=jax.random.PRNGKey(0))
    full, full_scores = model.predict_batch(params, {"encoder_input_tokens": ids}, settings, **kw)
    text = vocab.decode(decoding.generated_ids(np.asarray(full)[0, 0], vocab.eos_id))
    stop = text[8:11]  # a string the model does produce
    assert stop
    cut, cut_scores = model.predict_batch(
        params,
        {"encoder_input_tokens": ids},
        settings.replace(stop_sequences=(stop,)),
        vocabulary=vocab,
        **kw,
    )
    flat = np.asarray(full).reshape(6, -1)
    expected = decoding.cut_at_stops(flat, [[stop]] * 6, vocab.decode, vocab.eos_id)
    np.testing.assert_array_equal(np.asarray(cut).reshape(6, -1), expected)
    assert np.asarray(cut)[0, 0].tolist() != np.asarray(full)[0, 0].tolist()
    changed = (expected != flat).any(-1).reshape(3, 2)
    np.testing.assert_allclose(
        np.asarray(cut_scores)[~changed], np.asarray(full_scores)[~changed], rtol=1e-6
    )
    assert np.all(np.asarray(cut_scores)[changed] > np.asarray(full_scores)[changed])


# --- bad input and docs ---


def test_bad_arguments_fail_naming_the_value():
    model = EncoderDecoderModel(tiny_config("codet5p"))
    params = model.abstract_params()
    batch = {"encoder_input_tokens": np.ones((1, 4), np.int32)}
    cases = [
        (dict(method="nucleus"), "method='nucleus' unknown; allowed"),
        (dict(num_samples=0), "num_samples must be an integer >= 1, got 0"),
        (dict(method="beam", num_samples=5, beam_size=4), "num_samples=5 > beam_size=4"),
        (dict(method="sample", top_p=0.0), r"top_p must be in \(0, 1\], got 0.0"),
        (dict(method="sample", temperature=-1.0), "temperature must be > 0"),
        (dict(method="sample", temperature=0.0), "greedy decoding is method='greedy'"),
        (dict(max_length=0), "max_length must be an integer >= 1"),
        (dict(stop_sequences="\n"), "sequence of strings"),
        (dict(stop_sequences=("",)), "non-empty strings"),
    ]
    for kwargs, words in cases:
        with pytest.raises(ValueError, match=words):
            DecodeSettings(**kwargs)
    for settings, words in (
        (DecodeSettings(stop_sequences=("\n",), max_length=4), "vocabulary"),
        (DecodeSettings(max_length=None), "max_length"),
    ):
        with pytest.raises(ValueError, match=words):
            model.predict_batch(params, batch, settings)


def test_docstring_examples_hold():
    attempted = 0
    for name in ("settings", "sampling", "beam", "stops"):
        module = importlib.import_module(f"t5x_xfer.decoding.{name}")
        result = doctest.testmod(module, extraglobs={"jax": jax, "jnp": jnp})
        assert result.failed == 0, name
        attempted += result.attempted
    assert attempted >= 12


def test_one_while_loop_per_decode():
    """No Python loop per token: the whole decode traces to a single while."""
    fn = _bigram(12)
    jaxpr = jax.make_jaxpr(
        lambda key: decoding.temperature_sample(
            fn, {}, key, batch_size=2, max_decode_length=50, eos_id=1
        )
    )(jax.random.PRNGKey(0))
    assert str(jaxpr).count("while[") == 1


def test_predict_batch_traces_under_an_outer_jit():
    """The trainer calls predict_batch inside its own jitted eval step."""
    model = EncoderDecoderModel(tiny_config("codet5p", dropout_rate=0.0))
    params = model.init_params(jax.random.PRNGKey(0))
    batch = {
        "encoder_input_tokens": np.array([[5, 6, 7, 2, 0], [8, 9, 2, 0, 0]], np.int32),
        "decoder_input_tokens": np.zeros((2, 9), np.int32),  # sets max_decode_length, as T5X
    }
    for settings, kw in (
        (DecodeSettings(max_length=None), {}),
        (
            DecodeSettings(method="sample", num_samples=3, max_length=None),
            {"rng": jax.random.PRNGKey(1)},
        ),
        (DecodeSettings(method="beam", num_samples=2, beam_size=3, max_length=None), {}),
    ):
        eager = model.predict_batch(params, batch, settings, **kw)
        traced = jax.jit(lambda p, b, s=settings, kw=kw: model.predict_batch(p, b, s, **kw))(
            params, batch
        )
        assert eager[0].shape == (2, settings.num_samples, 9)
        np.testing.assert_array_equal(eager[0], traced[0])
        np.testing.assert_allclose(eager[1], traced[1], atol=1e-5)


def test_inverse_cdf_draws_follow_the_weights_across_blocks():
    """One uniform per row and block-wise cumulative sums: over a vocabulary of several blocks
    (with zero-weight tokens, which must never be drawn) the draws follow the weights."""
    vocab, n = 1300, 200_000
    weights = np.random.default_rng(0).gamma(0.3, size=vocab).astype(np.float32)
    weights[::7] = 0.0
    uniform = jax.random.uniform(jax.random.PRNGKey(5), (n,))
    rows = jnp.broadcast_to(jnp.asarray(weights), (n, vocab))
    draws = np.asarray(jax.jit(decoding.inverse_cdf)(rows, uniform))
    assert draws.min() >= 0 and draws.max() < vocab and not np.any(weights[draws] == 0)
    counts = np.bincount(draws, minlength=vocab)
    expected = n * weights / weights.sum()
    big = expected >= 20  # chi-square over tokens with enough expected draws, the rest pooled
    observed = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    chi2 = float(((observed - exp) ** 2 / exp).sum())
    dof = len(exp) - 1
    assert chi2 < dof + 4 * np.sqrt(2 * dof), (chi2, dof)  # about 4 sigma above the mean
