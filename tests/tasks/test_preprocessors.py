"""Exact text-to-text output of each preprocessor on a hand-written record."""

from __future__ import annotations

from typing import Any

import pytest
import tensorflow as tf

from t5x_xfer.tasks import preprocessors as pp
from t5x_xfer.testing import task_sources as testing


def run(preprocessor, records: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
    ds = tf.data.Dataset.from_tensor_slices({k: [r[k] for r in records] for k in records[0]})
    out = []
    for ex in preprocessor(ds, **kwargs).as_numpy_iterator():
        out.append({k: v.decode() if isinstance(v, bytes) else v for k, v in ex.items()})
    return out


def test_mnli_pair():
    assert run(pp.nli, testing.NLI, prefix="mnli") == [
        {
            "inputs": "mnli premise: A man plays a guitar. hypothesis: A person makes music.",
            "targets": "entailment",
        },
        {
            "inputs": "mnli premise: A dog sleeps. hypothesis: The dog is running.",
            "targets": "contradiction",
        },
    ]


def test_nli_drops_records_without_gold_label_and_reads_anli_context():
    records = [
        {"context": "c", "hypothesis": "h", "label": 1},
        {"context": "x", "hypothesis": "y", "label": -1},
    ]
    assert run(pp.nli, records, prefix="nli", premise_key="context") == [
        {"inputs": "nli premise: c hypothesis: h", "targets": "neutral"}
    ]


def test_qqp_and_sst2():
    assert run(pp.sentence_pair, testing.TFDS_RECORDS["glue/qqp"][:1]) == [
        {
            "inputs": "qqp question1: How do I learn Go? question2: How can I learn Go?",
            "targets": "duplicate",
        }
    ]
    assert run(pp.single_sentence, testing.TFDS_RECORDS["glue/sst2"]) == [
        {"inputs": "sst2 sentence: a gripping, funny film", "targets": "positive"}
    ]


def _squad_ds(record: dict[str, Any]) -> tf.data.Dataset:
    answers = tf.constant(record["answers"]["text"], dtype=tf.string)
    return tf.data.Dataset.from_tensors(
        {"question": record["question"], "context": record["context"], "answers": {"text": answers}}
    )


def test_squad_v2_unanswerable_question():
    ds = pp.squad(_squad_ds(testing.TFDS_RECORDS["squad/v2.0"][0]), prefix="squad2")
    ex = next(ds.as_numpy_iterator())
    assert ex["inputs"].decode() == (
        "squad2 question: What is the capital of Peru? context: Paris is the capital of France."
    )
    assert ex["targets"].decode() == "unanswerable"
    assert ex["answers"].tolist() == []


def test_squad_v1_answer_keeps_all_golds():
    ds = pp.squad(_squad_ds(testing.TFDS_RECORDS["squad/v1.1"][0]), prefix="squad")
    ex = next(ds.as_numpy_iterator())
    assert ex["inputs"].decode().startswith("squad question: What is the capital of France?")
    assert ex["targets"].decode() == "Paris"
    assert ex["answers"].tolist() == [b"Paris", b"Paris"]


def test_hellaswag_item():
    assert run(pp.hellaswag, testing.TFDS_RECORDS["hellaswag"]) == [
        {
            "inputs": "hellaswag context: A woman cracks an egg into a bowl. She options: "
            "(A) whisks it. (B) sings. (C) flies away. (D) paints the bowl.",
            "targets": "A",
        }
    ]


def test_cosmos_qa_item():
    assert run(pp.cosmos_qa, testing.TFDS_RECORDS["cosmos_qa"]) == [
        {
            "inputs": "cosmos_qa context: I missed the bus, so I walked to work. question: Why did"
            " I walk? options: (A) I like walking. (B) I missed the bus. (C) My car broke. "
            "(D) None of the above.",
            "targets": "B",
        }
    ]


def test_commonsense_qa_item():
    record = testing.CSQA_RECORDS[0]
    ds = tf.data.Dataset.from_tensors({k: record[k] for k in ("question", "choices", "answerKey")})
    ex = next(pp.commonsense_qa(ds).as_numpy_iterator())
    assert ex["inputs"].decode() == (
        "commonsense_qa question: Where do you keep milk cold? options: (A) fridge (B) oven "
        "(C) shelf (D) car (E) desk"
    )
    assert ex["targets"].decode() == "A"


def test_ccg_sentence():
    ds = tf.data.Dataset.from_tensors(
        {"tokens": ["Pierre", "likes", "cats"], "tags": ["NP", "(S[dcl]\\NP)/NP", "N"]}
    )
    ex = next(pp.ccg(ds).as_numpy_iterator())
    assert ex["inputs"].decode() == "ccg: Pierre likes cats"
    assert ex["targets"].decode() == "NP (S[dcl]\\NP)/NP N"


def test_cnn_dailymail_article():
    assert run(pp.summarize, testing.TFDS_RECORDS["cnn_dailymail"]) == [
        {
            "inputs": "summarize: The city council voted on Monday to build a new library "
            "downtown.",
            "targets": "Council approves new library.\nIt will be downtown.",
        }
    ]


def test_mbpp_prompt_from_description_and_asserts():
    record = {**testing.MBPP_RECORD, "task_id": "601"}
    ds = tf.data.Dataset.from_tensors(
        {k: record[k] for k in ("task_id", "text", "code", "test_list")}
    )
    ex = next(pp.code_from_description(ds).as_numpy_iterator())
    assert ex["inputs"].decode() == (
        "Write a function to add two numbers.\nYour code should pass these tests:\n"
        "assert add(1, 2) == 3\nassert add(0, 0) == 0"
    )
    assert ex["targets"].decode() == "def add(a, b):\n    return a + b"


@pytest.mark.parametrize("language", ["rust", "python"])
def test_humaneval_x_prompt(language):
    record = {**testing.HUMANEVAL_RECORD, "task_id": "X/0", "language": language}
    ds = tf.data.Dataset.from_tensors(
        {
            k: record[k]
            for k in ("task_id", "language", "prompt", "declaration", "canonical_solution")
        }
    )
    ex = next(pp.humaneval_x(ds).as_numpy_iterator())
    expected = record["prompt"] + (record["declaration"] if language == "rust" else "")
    assert ex["inputs"].decode() == expected
    assert ex["targets"].decode() == record["canonical_solution"]
    assert (ex["task_id"], ex["language"]) == (b"X/0", language.encode())


def test_missing_field_is_named():
    ds = tf.data.Dataset.from_tensors({"premise": "p", "label": 0})
    with pytest.raises(KeyError, match="record has no field 'hypothesis'"):
        pp.nli(ds, prefix="mnli")
    ds = tf.data.Dataset.from_tensors({"question": "q", "context": "c", "answers": {"start": [1]}})
    with pytest.raises(KeyError, match="answers has no field 'text'"):
        pp.squad(ds)
