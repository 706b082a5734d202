"""The infer binary: decoding JSONL prompts from a checkpoint, resuming, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from t5x_xfer import checkpoints, cli, infer
from t5x_xfer.codeeval.languages import truncate_completion
from t5x_xfer.decoding import DecodeSettings
from t5x_xfer.testing.fakes import SNIPPETS, make_hf_model, make_tiny_checkpoint
from t5x_xfer.vocabularies import load_vocabulary, train_byte_level_bpe


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model")


def _write_input(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


PROMPTS = [
    {"id": "a", "prompt": "def add(a, b):\n", "language": "python"},
    {"id": 7, "token_ids": [45, 46, 47, 2]},
    {"id": "c", "prompt": "int main() {\n"},
    {"id": "d", "prompt": "const inc = (x) =>", "language": "js"},
]
SAMPLING = dict(
    decode=DecodeSettings(
        method="sample", num_samples=3, temperature=1.0, top_p=0.95, max_length=24
    )
)


def _rows(path: Path) -> dict[tuple[str, int], dict]:
    rows = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        key = (json.dumps(r["id"]), r["sample_index"])
        assert key not in rows, f"duplicate {key}"
        rows[key] = r
    return rows


def test_samples_for_every_prompt_independent_of_batching(ckpt, tmp_path):
    src = _write_input(tmp_path / "in.jsonl", PROMPTS)
    a = infer.infer(
        input=src, output=tmp_path / "a.jsonl", checkpoint=str(ckpt), batch_size=4, **SAMPLING
    )
    assert (a.prompts, a.skipped, a.samples_written) == (4, 0, 12)
    rows = _rows(tmp_path / "a.jsonl")
    assert set(rows) == {(json.dumps(p["id"]), j) for p in PROMPTS for j in range(3)}
    vocab = load_vocabulary(ckpt / checkpoints.ASSETS_DIR)
    for (key, _), r in rows.items():
        assert set(r) == {"id", "sample_index", "text", "token_ids", "score"}
        assert all(isinstance(t, int) for t in r["token_ids"]) and 2 not in r["token_ids"]
        full = vocab.decode(r["token_ids"])
        lang = {'"a"': "python", '"d"': "js"}.get(key)
        assert r["text"] == (truncate_completion(lang, full) if lang else full)
    assert len({tuple(rows[('"a"', j)]["token_ids"]) for j in range(3)}) > 1
    # Batched one by one: the same samples (sample j depends on seed, id and j only).
    infer.infer(
        input=src, output=tmp_path / "b.jsonl", checkpoint=str(ckpt), batch_size=1, **SAMPLING
    )
    b = _rows(tmp_path / "b.jsonl")
    assert {k: r["token_ids"] for k, r in b.items()} == {k: r["token_ids"] for k, r in rows.items()}
    reseeded = SAMPLING["decode"].replace(seed=1)
    other = infer.infer(
        input=src, output=tmp_path / "c.jsonl", checkpoint=str(ckpt), decode=reseeded
    )
    assert other.samples_written == 12
    c = _rows(tmp_path / "c.jsonl")
    assert any(c[k]["token_ids"] != rows[k]["token_ids"] for k in rows)


def test_resume_after_a_torn_write_redoes_only_what_is_missing(ckpt, tmp_path):
    src = _write_input(tmp_path / "in.jsonl", PROMPTS)
    out = tmp_path / "out.jsonl"
    infer.infer(input=src, output=out, checkpoint=str(ckpt), **SAMPLING)
    complete = _rows(out)
    lines = out.read_text().splitlines(keepends=True)
    # A crash: the last prompt's lines half written (one whole line, then a torn one).
    last_id = json.loads(lines[-1])["id"]
    kept = [ln for ln in lines if json.loads(ln)["id"] != last_id]
    torn = [ln for ln in lines if json.loads(ln)["id"] == last_id]
    out.write_text("".join(kept) + torn[0] + torn[1][:15])
    resumed = infer.infer(input=src, output=out, checkpoint=str(ckpt), **SAMPLING)
    assert (resumed.skipped, resumed.samples_written) == (3, 3)
    again = _rows(out)
    assert {k: r["token_ids"] for k, r in again.items()} == {
        k: r["token_ids"] for k, r in complete.items()
    }
    assert out.read_text().endswith("\n")
    nothing = infer.infer(input=src, output=out, checkpoint=str(ckpt), **SAMPLING)
    assert (nothing.skipped, nothing.samples_written) == (4, 0)


def test_resume_with_other_settings_is_refused(ckpt, tmp_path):
    src = _write_input(tmp_path / "in.jsonl", PROMPTS[:1])
    out = tmp_path / "out.jsonl"
    infer.infer(input=src, output=out, checkpoint=str(ckpt), decode=DecodeSettings(max_length=8))
    with pytest.raises(ValueError, match="max_length: 8 -> 9"):
        infer.infer(
            input=src, output=out, checkpoint=str(ckpt), decode=DecodeSettings(max_length=9)
        )


def test_greedy_and_beam_and_stop_sequences(ckpt, tmp_path):
    src = _write_input(tmp_path / "in.jsonl", PROMPTS)
    greedy = tmp_path / "g.jsonl"
    two = DecodeSettings(num_samples=2, max_length=20)
    infer.infer(input=src, output=greedy, checkpoint=str(ckpt), decode=two)
    g = _rows(greedy)
    assert all(g[(k, 0)]["token_ids"] == g[(k, 1)]["token_ids"] for k, _ in g)
    # An explicit stop string the model produces ends decoding there and trims the text.
    text = g[('"c"', 0)]["text"]
    stop = text[4:6]
    assert stop
    cut = tmp_path / "s.jsonl"
    stops = DecodeSettings(max_length=20, stop_sequences=(stop,))
    infer.infer(input=src, output=cut, checkpoint=str(ckpt), decode=stops)
    s = _rows(cut)
    assert s[('"c"', 0)]["text"] == text[: text.find(stop)]
    assert len(s[('"c"', 0)]["token_ids"]) < len(g[('"c"', 0)]["token_ids"])
    beam = tmp_path / "b.jsonl"
    infer.infer(
        input=src,
        output=beam,
        checkpoint=str(ckpt),
        decode=DecodeSettings(method="beam", beam_size=3, num_samples=3, max_length=12),
    )
    b = _rows(beam)
    for p in PROMPTS:
        scores = [b[(json.dumps(p["id"]), j)]["score"] for j in range(3)]
        assert scores == sorted(scores, reverse=True)


def test_hf_dir_source_matches_transformers_greedy(tmp_path):
    torch = pytest.importorskip("torch")
    hf_model = make_hf_model("codet5p", tmp_path / "hf")
    train_byte_level_bpe(SNIPPETS, tmp_path / "tok.json", vocab_size=300)
    prompts = [{"id": i, "token_ids": [5 + i, 17, 33, 40 + i, 2]} for i in range(3)]
    src = _write_input(tmp_path / "in.jsonl", prompts)
    out = tmp_path / "out.jsonl"
    infer.infer(
        input=src,
        output=out,
        hf_dir=str(tmp_path / "hf"),
        tokenizer=str(tmp_path / "tok.json"),
        decode=DecodeSettings(max_length=10),
    )
    rows = _rows(out)
    with torch.no_grad():
        ref = hf_model.generate(
            input_ids=torch.tensor([p["token_ids"] for p in prompts]),
            do_sample=False,
            max_new_tokens=10,
            use_cache=False,
        ).numpy()[:, 1:]
    for i in range(3):
        want = [int(t) for t in ref[i]]
        want = want[: want.index(2)] if 2 in want else want
        assert rows[(str(i), 0)]["token_ids"] == want


def test_sentencepiece_tokenizer_is_used_when_present(tmp_path):
    import sentencepiece as spm

    text = tmp_path / "text.txt"
    text.write_text("\n".join(s.replace("\n", " ") for s in SNIPPETS * 20))
    spm.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(tmp_path / "spiece"),
        vocab_size=40,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        minloglevel=2,
    )
    train_byte_level_bpe(SNIPPETS, tmp_path / "tokenizer.json", vocab_size=300)
    vocab = load_vocabulary(tmp_path)
    assert type(vocab).__name__ == "SentencePieceVocabulary" and vocab.eos_id == 1
    assert vocab.decode(vocab.encode("return a + b")) == "return a + b"
    (tmp_path / "spiece.model").unlink()
    assert type(load_vocabulary(tmp_path)).__name__ == "HuggingFaceVocabulary"


def test_cli_with_gin_binding_and_registration(ckpt, tmp_path, capsys):
    src = _write_input(tmp_path / "in.jsonl", PROMPTS[:2])
    out = tmp_path / "out.jsonl"
    argv = ["infer", "--checkpoint", str(ckpt), "--input", str(src), "--output", str(out)]
    argv += ["--max_length", "6", "--no_progress", "--gin.DecodeSettings.num_samples=2"]
    assert cli.main(argv) == 0
    assert len(_rows(out)) == 4
    assert "4 samples written" in capsys.readouterr().out


@pytest.mark.parametrize(
    "case,expected",
    [
        ("malformed", "in.jsonl:2: malformed JSON"),
        ("no_prompt", 'in.jsonl:1: expected a string "prompt"'),
        ("duplicate", "repeats"),
        ("missing_checkpoint", "does not exist"),
        ("num_samples", "--num_samples must be an integer >= 1, got 0"),
        ("temperature", "--temperature must be > 0 for method 'sample', got -1.0"),
        ("method", "allowed: ['greedy', 'sample', 'beam']"),
        ("top_p", "--top_p must be in (0, 1], got 1.5"),
        ("language", "allowed: ['cpp', 'go', 'java', 'js', 'python', 'rust']"),
    ],
)
def test_bad_input_fails_before_work_naming_it(ckpt, tmp_path, capsys, case, expected):
    good = json.dumps({"id": "x", "prompt": "def f():"})
    lines = {
        "malformed": [good, '{"id": "y", "prompt": '],
        "no_prompt": [json.dumps({"id": "x", "text": "def f():"})],
        "duplicate": [good, good],
    }.get(case, [good])
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    argv = ["--checkpoint", str(ckpt), "--input", str(src), "--output", str(out)]
    extra = {
        "missing_checkpoint": ["--checkpoint", str(tmp_path / "nope")],
        "num_samples": ["--num_samples", "0"],
        "method": ["--method", "nucleus"],
        "top_p": ["--top_p", "1.5"],
        "temperature": ["--method", "sample", "--temperature", "-1"],
    }.get(case, [])
    if case == "language":
        src.write_text(json.dumps({"id": "x", "prompt": "f", "language": "cobol"}) + "\n")
    assert infer.main(argv + extra + ["--no_progress"]) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_checkpoint_without_tokenizer_names_the_flag(ckpt, tmp_path, capsys):
    bare = tmp_path / "bare"
    shutil.copytree(ckpt, bare, ignore=shutil.ignore_patterns(checkpoints.ASSETS_DIR))
    src = _write_input(tmp_path / "in.jsonl", PROMPTS[:1])
    argv = ["--checkpoint", str(bare), "--input", str(src), "--output", str(tmp_path / "o")]
    assert infer.main(argv) == 2
    assert "--tokenizer" in capsys.readouterr().err
    np.testing.assert_equal(infer._pad_length(17), 32)
