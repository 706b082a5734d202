"""Vocabularies: exact round trips of code through byte-level BPE, in Python and in tf.data."""

from __future__ import annotations

import io

import pytest
import sentencepiece as spm
import seqio
import tensorflow as tf

from t5x_xfer.vocabularies import HuggingFaceVocabulary, train_byte_level_bpe

SNIPPETS = {
    "python": 'def add(a, b):\n    """Sum."""\n\n    return a + b\n\n\nif x:\n\tpass  # tab\n',
    "cpp": (
        "#include <vector>\nint f(std::vector<int> v) {\n\tint s = 0;\n\n"
        "\tfor (int x : v) s += x;\n    return s;   \n}\n"
    ),
    "go": 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("héllo ✓")\n}\n',
    "java": (
        "class Main {\n  public static void main(String[] a) {\n\n"
        "      System.out.println(1);\r\n  }\n}"
    ),
}


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train_byte_level_bpe(list(SNIPPETS.values()) * 20, path, vocab_size=400)
    return HuggingFaceVocabulary(str(path.parent))


@pytest.mark.parametrize("lang", sorted(SNIPPETS))
def test_python_round_trip_is_exact(vocab, lang):
    ids = vocab.encode(SNIPPETS[lang])
    assert vocab.eos_id not in ids and 0 not in ids
    assert vocab.decode(ids) == SNIPPETS[lang]
    assert vocab.decode([*ids, vocab.eos_id, 17, 18]) == SNIPPETS[lang]  # cut at EOS


def test_tf_data_round_trip_is_exact(vocab):
    texts = [SNIPPETS[k] for k in sorted(SNIPPETS)]
    ds = tf.data.Dataset.from_tensor_slices(texts).map(vocab.encode_tf)
    encoded = list(ds.as_numpy_iterator())
    assert [e.tolist() for e in encoded] == [vocab.encode(t) for t in texts]
    padded = tf.keras.utils.pad_sequences(encoded, padding="post", value=0)
    decoded = vocab.decode_tf(tf.constant(padded)).numpy()
    assert [d.decode("utf-8") for d in decoded] == texts
    assert vocab.decode_tf(tf.constant(encoded[0])).numpy().decode("utf-8") == texts[0]
    batched = vocab.encode_tf(tf.constant(texts))
    assert batched.to_list() == [vocab.encode(t) for t in texts]


def test_special_ids(vocab):
    assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 2, 3)
    base = vocab.tokenizer.get_vocab_size(with_added_tokens=True)
    assert vocab.vocab_size == base
    assert HuggingFaceVocabulary(vocab._source, extra_ids=5).vocab_size == base + 5


def test_bad_tokenizer_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer at"):
        _ = HuggingFaceVocabulary(str(tmp_path)).tokenizer
    with pytest.raises(ValueError, match="none of the EOS tokens"):
        train_byte_level_bpe(["a b c"], tmp_path / "tokenizer.json")
        _ = HuggingFaceVocabulary(str(tmp_path), eos_token="<|im_end|>").eos_id


def test_sentencepiece_vocabulary_for_t5(tmp_path):
    """T5/mT5 use seqio's SentencePieceVocabulary; check it on a model trained here."""
    model = io.BytesIO()
    text = ["The quick brown fox jumps over the lazy dog.", "Summarize: the cat sat on the mat."]
    corpus = text + [f"sentence number {i} about code and summaries" for i in range(200)]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=model,
        vocab_size=60,
        hard_vocab_limit=False,
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        model_type="unigram",
    )
    (tmp_path / "spm.model").write_bytes(model.getvalue())
    vocab = seqio.SentencePieceVocabulary(str(tmp_path / "spm.model"), extra_ids=10)
    assert vocab.vocab_size == 70 and vocab.eos_id == 1
    ids = vocab.encode(text[1])
    assert vocab.decode(ids) == text[1]
    assert vocab.decode_tf(vocab.encode_tf(tf.constant(text[0]))).numpy().decode() == text[0]
