"""evaluate_code --checkpoint: decode HumanEval-X prompts with a tiny model, then execute them."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest

from t5x_xfer import evaluate_code as cli
from t5x_xfer.codeeval import languages as L
from t5x_xfer.decoding import DecodeSettings, add_flags, from_flags
from t5x_xfer.testing.fakes import make_tiny_checkpoint
from tests.codeeval import fakes

# Fast toolchains first: the programs of a random model mostly fail, but each still runs.
PREFERRED = ("python", "js", "cpp", "go", "java", "rust")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model")


def test_decode_then_execute_two_problems_of_two_languages_and_resume(ckpt, tmp_path):
    data = fakes.require_data()
    fakes.require_sandbox()
    languages = fakes.ready_languages(PREFERRED)[:2]
    if len(languages) < 2:
        pytest.skip(f"needs two ready toolchains, found {languages}")
    out = tmp_path / "eval"
    kwargs = dict(
        checkpoint=str(ckpt),
        out=out,
        samples=None,
        languages=languages,
        data_dir=data,
        max_problems=2,
        decode=DecodeSettings(
            method="sample", num_samples=2, temperature=0.8, top_p=0.95, max_length=32
        ),
        batch_size=3,
        workers=2,
        progress=False,
    )
    result = cli.evaluate_code(**kwargs)

    prompts = [json.loads(x) for x in (out / "prompts.jsonl").read_text().splitlines()]
    prefixes = [L.LANGUAGES[lang].task_prefix for lang in languages]
    want_ids = [f"{p}/{i}" for p in prefixes for i in range(2)]
    assert [p["id"] for p in prompts] == want_ids
    assert {p["language"] for p in prompts} == set(languages)
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["task_id"] for s in samples] == [t for t in want_ids for _ in range(2)]
    for s in samples:  # already trimmed by the language's completion rule
        lang = L.language_of(s["task_id"])
        assert L.truncate_completion(lang, s["generation"]) == s["generation"]
    assert len(result.rows) == 8
    assert {r["status"] for r in result.rows} <= set(L.STATUSES)
    assert (out / "summary.json").is_file() and (out / "report.md").is_file()

    generations = (out / "generations.jsonl").read_bytes()
    again = cli.evaluate_code(**kwargs)  # resumes: nothing decoded or executed twice
    assert (out / "generations.jsonl").read_bytes() == generations
    assert again.summary["programs"]["executed"] == 0
    assert [r["status"] for r in again.rows] == [r["status"] for r in result.rows]


def test_bad_checkpoint_arguments_fail_before_any_work(ckpt, tmp_path, capsys):
    out = tmp_path / "eval"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cli.evaluate_code(samples=None, checkpoint=str(tmp_path / "missing"), out=out)
    with pytest.raises(ValueError, match="exactly one of --samples"):
        cli.evaluate_code(samples=str(tmp_path / "s.jsonl"), checkpoint=str(ckpt), out=out)
    assert cli.main(["--checkpoint", str(ckpt), "--out", str(out), "--num_samples", "0"]) == 2
    assert "--num_samples must be an integer >= 1, got 0" in capsys.readouterr().err
    assert cli.main(["--checkpoint", str(ckpt), "--out", str(out), "--method", "top_k"]) == 2
    assert "--method='top_k' unknown; allowed: ['greedy', 'sample', 'beam']" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_decode_flags_one_meaning_of_greedy(caplog):
    """--method names the decoding; --temperature 0 is the old spelling of greedy, and a
    temperature alone still means sampling, as the old flags did."""
    parser = argparse.ArgumentParser()
    add_flags(parser, cli.DECODE_DEFAULTS)
    read = lambda *argv: from_flags(parser.parse_args(argv), cli.DECODE_DEFAULTS)  # noqa: E731
    assert read() == cli.DECODE_DEFAULTS and read().method == "greedy"
    assert read("--temperature", "0.8").method == "sample"
    with caplog.at_level(logging.WARNING):
        old = read("--method", "sample", "--temperature", "0")
    assert old == read("--method", "greedy") and "old spelling of greedy" in caplog.text
    flags = read("--method", "beam", "--num_samples", "2", "--stop_sequences", "\n\n").flags()
    assert read(*flags) == read(
        "--method", "beam", "--num_samples", "2", "--stop_sequences", "\n\n"
    )
