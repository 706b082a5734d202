"""Smoke data: every task and mixture reads it through its real source, writes are
deterministic and idempotent, and the MBPP-format code passes its own asserts.

The seqio checks run in one subprocess: tests/tasks/conftest.py serves TFDS through a
session-scoped ``tfds.testing.mock_data``, which stays active for the rest of a pytest session
and would otherwise answer our reads with its mock records instead of the files we wrote (and
registration is global, so the subprocess also leaves the session's registry alone).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from t5x_xfer.tasks import registry
from t5x_xfer.testing import smoke_data
from t5x_xfer.testing.smoke_data import text_tasks, words, writers

REPO = Path(__file__).resolve().parents[1]
LENGTHS = {"inputs": 256, "targets": 128}
N_TRAIN, N_VALIDATION = 64, 16
# Tasks whose first unshuffled example is recorded, for the content checks.
FIRST_EXAMPLES = (
    "xfer_mnli",
    "xfer_qqp",
    "xfer_cnn_dailymail",
    "xfer_squad_v1",
    "xfer_ccg",
    "xfer_humanevalx_python",
)
CASES = [
    (name, split)
    for name in registry.TASKS + registry.MIXTURES
    for split in (("test",) if "humanevalx" in name else ("train", "validation"))
]


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def probe(data_dir: str, tokenizer: str, out_json: str, shard: int, num_shards: int) -> None:
    """Run in a subprocess: register every task on the smoke data (HumanEval-X from the mini
    benchmark) and record a packed batch of this shard's (task or mixture, split) cases, plus
    the first unshuffled example of the tasks in ``FIRST_EXAMPLES``."""
    import numpy as np
    import seqio

    from t5x_xfer import tasks
    from t5x_xfer.codeeval.minibench import MINIBENCH_DIR
    from t5x_xfer.vocabularies import HuggingFaceVocabulary

    vocabulary = HuggingFaceVocabulary(tokenizer)
    tasks.register_all(vocabulary, data_dir, humaneval_x_dir=MINIBENCH_DIR)
    results: dict[str, dict] = {}
    for name, split in CASES[shard::num_shards]:
        ds = seqio.get_dataset(
            name,
            LENGTHS,
            seqio.EncDecFeatureConverter(pack=True),
            dataset_split=split,
            batch_size=2,
            shuffle=False,
        )
        batch = next(ds.as_numpy_iterator())
        targets, segments = batch["decoder_target_tokens"][0], batch["decoder_segment_ids"][0]
        ends_ok = all(
            targets[segments == s][-1] == vocabulary.eos_id
            or (segments == s).sum() == LENGTHS["targets"]
            for s in range(1, segments.max() + 1)
        )
        entry = {
            "encoder_shape": list(batch["encoder_input_tokens"].shape),
            "decoder_shape": list(batch["decoder_target_tokens"].shape),
            "segments": int(batch["encoder_segment_ids"].max()),
            "ends_ok": bool(ends_ok),
            "padding_ok": bool(np.all((targets == 0) == (segments == 0))),
        }
        if name in FIRST_EXAMPLES:
            task = tasks.get(name)
            first = next(task.get_dataset(LENGTHS, split=split, shuffle=False).as_numpy_iterator())
            entry["inputs"] = first["inputs_pretokenized"].decode()
            entry["targets"] = first["targets_pretokenized"].decode()
            entry["num_input_examples"] = task.num_input_examples(split)
        results[f"{name}:{split}"] = entry
    Path(out_json).write_text(json.dumps(results, indent=1))


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("smoke") / "data"
    return smoke_data.write_smoke_data(root, n_train=N_TRAIN, n_validation=N_VALIDATION, seed=0)


@pytest.fixture(scope="module")
def probed(smoke_dir: Path) -> dict[str, dict]:
    """The probe in parallel subprocesses (building ~180 tf.data pipelines is CPU-bound)."""
    from t5x_xfer.io_utils import iter_jsonl
    from t5x_xfer.vocabularies import train_byte_level_bpe

    mbpp = iter_jsonl(smoke_dir / "mbpp" / "mbpp.jsonl")
    texts = [r["text"] + "\n" + r["code"] for _, r in mbpp]
    texts.append((smoke_dir / "README.txt").read_text())
    tokenizer = train_byte_level_bpe(texts * 4, smoke_dir.parent / "tokenizer.json", 512)
    num_shards = max(1, min(2, len(os.sched_getaffinity(0))))
    runs = []
    for shard in range(num_shards):
        out = smoke_dir.parent / f"probe{shard}.json"
        log = smoke_dir.parent / f"probe{shard}.log"  # a file: a full pipe would block the child
        args = f"{str(smoke_dir)!r}, {str(tokenizer)!r}, {str(out)!r}, {shard}, {num_shards}"
        code = f"from tests.test_smoke_data import probe; probe({args})"
        with log.open("w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-c", code], cwd=REPO, stdout=stderr, stderr=stderr
            )
        runs.append((proc, out, log))
    results: dict[str, dict] = {}
    try:
        for proc, out, log in runs:
            proc.wait(timeout=600)
            assert proc.returncode == 0, log.read_text()[-4000:]
            results.update(json.loads(out.read_text()))
    finally:
        for proc, _, _ in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


@pytest.mark.parametrize(("name", "split"), CASES, ids=[f"{n}:{s}" for n, s in CASES])
def test_packed_batch_from_smoke_data(probed, name, split):
    entry = probed[f"{name}:{split}"]
    assert entry["encoder_shape"] == [2, LENGTHS["inputs"]]
    assert entry["decoder_shape"] == [2, LENGTHS["targets"]]
    assert entry["segments"] >= 1 and entry["ends_ok"] and entry["padding_ok"], entry


def test_tasks_read_the_generated_records(probed):
    """The examples are ours (not a mock's): first records match the generator, sizes match."""
    rng = words._rng(0, "mnli", "validation_matched")
    first = text_tasks._mnli(rng, "validation_matched", 0)
    mnli = probed["xfer_mnli:validation"]
    assert mnli["inputs"] == f"mnli premise: {first['premise']} hypothesis: {first['hypothesis']}"
    assert mnli["targets"] == text_tasks.NLI_LABELS[first["label"]]
    assert mnli["num_input_examples"] == N_VALIDATION
    cnn = probed["xfer_cnn_dailymail:train"]
    assert cnn["inputs"].startswith("summarize: " + cnn["targets"] + " ")
    assert probed["xfer_qqp:train"]["num_input_examples"] == N_TRAIN
    squad = probed["xfer_squad_v1:validation"]
    assert squad["targets"] in squad["inputs"].split(" context: ")[1]
    assert probed["xfer_humanevalx_python:test"]["inputs"].lstrip().startswith("def add(")
    assert probed["xfer_ccg:train"]["inputs"].startswith("ccg: ")


def test_same_seed_same_bytes_other_seed_other_data(smoke_dir, tmp_path):
    """Byte-identical across processes (the CLI in a subprocess vs the fixture's write)."""
    out = tmp_path / "cli"
    args = ["--out", str(out), "--n_train", str(N_TRAIN), "--n_validation", str(N_VALIDATION)]
    run = subprocess.run(
        [sys.executable, "-m", "t5x_xfer.testing.smoke_data", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "wrote smoke data" in run.stdout
    assert _hashes(out) == _hashes(smoke_dir)
    other = smoke_data.write_smoke_data(
        tmp_path / "seed1", n_train=N_TRAIN, n_validation=N_VALIDATION, seed=1
    )
    a, b = _hashes(smoke_dir), _hashes(other)
    assert a.keys() == b.keys()
    assert a["mbpp/mbpp.jsonl"] != b["mbpp/mbpp.jsonl"]
    assert (
        a["tfds/glue/mnli/2.0.0/glue-train.tfrecord-00000-of-00001"]
        != (b["tfds/glue/mnli/2.0.0/glue-train.tfrecord-00000-of-00001"])
    )


def test_marked_as_smoke_data(smoke_dir):
    assert smoke_data.NOTE in (smoke_dir / "README.txt").read_text()
    stamp = json.loads((smoke_dir / smoke_data.STAMP).read_text())
    assert stamp["note"] == smoke_data.NOTE and stamp["n_train"] == N_TRAIN
    for info in smoke_dir.glob("tfds/**/dataset_info.json"):
        assert json.loads(info.read_text())["description"].startswith(smoke_data.NOTE), info
    csqa = json.loads((smoke_dir / "commonsense_qa" / "train" / "dataset_info.json").read_text())
    assert csqa["description"].startswith(smoke_data.NOTE)
    assert "PARSER=SMOKE" in next(smoke_dir.glob("ccgbank/**/*.auto")).read_text()


def test_idempotent_and_atomic(tmp_path, monkeypatch):
    root = tmp_path / "data"
    smoke_data.write_smoke_data(root, n_train=4, n_validation=2)
    before = _hashes(root)
    calls = []
    monkeypatch.setattr(writers, "_write_tfds", lambda *a: calls.append(a))
    smoke_data.write_smoke_data(root, n_train=4, n_validation=2)  # complete: nothing rewritten
    assert calls == [] and _hashes(root) == before

    def fail(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writers, "_write_ccgbank", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        smoke_data.write_smoke_data(root, n_train=5, n_validation=2)
    assert _hashes(root) == before  # a failed rewrite leaves the old data whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary left
    monkeypatch.undo()
    smoke_data.write_smoke_data(root, n_train=5, n_validation=2)  # new arguments: rewritten
    assert json.loads((root / smoke_data.STAMP).read_text())["n_train"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_refuses_to_replace_other_data(tmp_path):
    (tmp_path / "mine.txt").write_text("not smoke data")
    with pytest.raises(FileExistsError, match="not smoke data"):
        smoke_data.write_smoke_data(tmp_path, n_train=2, n_validation=1)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_code_records_pass_their_own_asserts(smoke_dir, tmp_path):
    """Every MBPP-format record's code, run with its asserts in a fresh namespace, passes; the
    same asserts against a function returning None fail (so they test something)."""
    from t5x_xfer.io_utils import iter_jsonl

    files = [smoke_dir / "mbpp" / "mbpp.jsonl", *sorted((smoke_dir / "code_jsonl").glob("*"))]
    records = [r for f in files for _, r in iter_jsonl(f)]
    assert len(records) >= N_TRAIN and len({r["text"] for r in records}) >= 15
    for r in records:
        assert len(r["test_list"]) == 3 and r["test_setup_code"] == ""
        assert r["code"].startswith("def ") and "\n" not in r["code"].replace("\r\n", "")
    script = tmp_path / "check.py"
    script.write_text(
        "import json, re, sys\n"
        "records = json.load(open(sys.argv[1]))\n"
        "for r in records:\n"
        "    ns = {}\n"
        "    exec(r['code'] + '\\n' + '\\n'.join(r['test_list']), ns)\n"
        "    name = re.match(r'def (\\w+)', r['code']).group(1)\n"
        "    wrong = {}\n"
        "    exec(f'def {name}(*args):\\n    return None', wrong)\n"
        "    failed = 0\n"
        "    for t in r['test_list']:\n"
        "        try:\n"
        "            exec(t, dict(wrong))\n"
        "        except AssertionError:\n"
        "            failed += 1\n"
        "    assert failed == 3, (name, r['test_list'])\n"
        "print('checked', len(records))\n"
    )
    data = tmp_path / "records.json"
    data.write_text(json.dumps(records))
    run = subprocess.run(
        [sys.executable, "-I", str(script), str(data)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == f"checked {len(records)}"
