"""Sources: CCGbank AUTO parsing, MBPP splits, HumanEval-X records, and the errors users see."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import seqio

from t5x_xfer import tasks
from t5x_xfer.gin_utils import REPO_ROOT
from t5x_xfer.tasks import sources
from t5x_xfer.testing import task_sources as testing

SHIPPED_HUMANEVAL_X = REPO_ROOT.parent / "shared" / "data" / "humaneval-x"


def records(source: seqio.DataSource, split: str) -> list[dict]:
    return list(source.get_dataset(split, shuffle=False).as_numpy_iterator())


def test_parse_ccg_auto_snippet():
    parsed = sources.parse_ccg_auto(testing.CCG_AUTO.format(section=2))
    assert parsed == [
        {
            "id": "wsj_0201.1",
            "tokens": ["Pierre", "likes", "cats"],
            "tags": ["NP", "(S[dcl]\\NP)/NP", "N"],
        },
        {"id": "wsj_0201.2", "tokens": ["Rain", "falls"], "tags": ["N", "S[dcl]\\NP"]},
    ]
    with pytest.raises(ValueError, match="x.auto:1: expected an 'ID=...' header"):
        sources.parse_ccg_auto("(<T S 0 1> (<L N NN NN w N>) )", "x.auto")


def test_ccg_sections_make_the_splits(data_dir):
    source = sources.ccg_source(data_dir / "ccgbank")
    ids = {r["id"].decode()[:6] for r in records(source, "train")}
    assert ids == {"wsj_02", "wsj_21"}
    assert {r["id"].decode()[:6] for r in records(source, "validation")} == {"wsj_00"}


def test_mbpp_split_by_task_id(data_dir):
    source = sources.mbpp_source(data_dir / "mbpp" / "mbpp.jsonl")
    assert [r["task_id"] for r in records(source, "validation")] == [b"520"]
    assert [r["task_id"] for r in records(source, "prompt")] == [b"5"]
    assert len(records(source, "train")) == 2 + 6  # 601, 700 and the 6 generated


@pytest.mark.parametrize(
    "make, dataset, hint",
    [
        (lambda d: sources.mbpp_source(d / "mbpp.jsonl"), "MBPP", "curl -L -o"),
        (lambda d: sources.ccg_source(d / "ccgbank"), "CCGbank", "LDC2005T13"),
        (lambda d: sources.commonsense_qa_source(d / "csqa"), "CommonsenseQA", "save_to_disk"),
        (lambda d: sources.code_jsonl_source(d), "code JSONL", "train.jsonl"),
        (lambda d: sources.humaneval_x_source(d, "go"), "HumanEval-X", "CodeGeeX"),
        (
            lambda d: sources.PreparedTfdsDataSource(
                sources.TfdsDataset("glue/qqp:2.0.0", {"train": "train"}), d
            ),
            "TFDS dataset glue/qqp:2.0.0",
            "tfds build glue/qqp",
        ),
    ],
)
def test_missing_data_says_what_where_and_how(tmp_path, make, dataset, hint):
    split = "test" if dataset == "HumanEval-X" else "train"
    with pytest.raises(tasks.MissingDataError) as err:
        records(make(tmp_path), split)
    message = str(err.value)
    assert message.startswith(dataset) and str(tmp_path) in message and hint in message


def test_missing_data_through_a_registered_task(tmp_path, registered, data_dir):
    empty = tmp_path / "nothing_here"
    try:
        tasks.register_all(registered, empty, humaneval_x_dir=empty)
        with pytest.raises(tasks.MissingDataError, match="glue/mnli/2.0.0"):
            tasks.get("xfer_mnli").get_dataset(None, split="train")
    finally:
        tasks.register_all(registered, data_dir)


def test_jsonl_record_missing_field_names_it(tmp_path):
    (tmp_path / "train.jsonl").write_text(
        json.dumps(testing.MBPP_RECORD) + "\n" + json.dumps({"text": "t", "code": "c"}) + "\n"
    )
    with pytest.raises(KeyError, match=r"train.jsonl:2: record has no field 'test_list'"):
        records(sources.code_jsonl_source(tmp_path), "train")
    (tmp_path / "validation.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match=r"validation.jsonl:1: malformed JSON"):
        records(sources.code_jsonl_source(tmp_path), "validation")


def test_commonsense_qa_record_missing_field_names_it(tmp_path):
    import datasets

    rows = [{k: v for k, v in testing.CSQA_RECORDS[0].items() if k != "answerKey"}]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path))
    with pytest.raises(KeyError, match="train\\[0\\]: record has no field 'answerKey'"):
        records(sources.commonsense_qa_source(tmp_path), "train")


@pytest.fixture(scope="module")
def shipped() -> Path:
    if not SHIPPED_HUMANEVAL_X.is_dir():
        pytest.skip(f"the HumanEval-X copy is not beside the repository ({SHIPPED_HUMANEVAL_X})")
    return SHIPPED_HUMANEVAL_X


@pytest.mark.parametrize("language", sources.HUMANEVAL_X_LANGUAGES)
def test_real_humaneval_x_records(shipped, language):
    rows = records(sources.humaneval_x_source(shipped, language), "test")
    assert len(rows) == 164
    prefix = {"cpp": "CPP", "go": "Go", "java": "Java", "js": "JavaScript"}.get(
        language, language.capitalize()
    )
    assert rows[0]["task_id"].decode() == f"{prefix}/0"
    assert all(r["language"].decode() == language for r in rows)


def test_humaneval_x_inputs_match_the_evaluator(shipped, registered, data_dir):
    """The decoding input must be the evaluator's generation prompt, or programs won't join."""
    try:
        from t5x_xfer.codeeval import data as codeeval_data
        from t5x_xfer.codeeval import languages as codeeval_languages
    except ImportError as e:  # the evaluator lands separately
        pytest.skip(f"t5x_xfer.codeeval not importable: {e}")
    tasks.register_all(registered, data_dir, humaneval_x_dir=shipped)
    try:
        for language in ("rust", "python", "go"):
            problems = codeeval_data.load_problems([language], shipped)[language]
            task = tasks.get(f"xfer_humanevalx_{language}")
            ds = task.get_dataset(None, split="test", shuffle=False)
            for ex in ds.take(5).as_numpy_iterator():
                problem = problems[ex["task_id"].decode()]
                expected = codeeval_languages.generation_prompt(language, problem)
                assert ex["inputs_pretokenized"].decode() == expected
    finally:
        tasks.register_all(registered, data_dir)
