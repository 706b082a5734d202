"""Small hand-written data in each source's own record format, for tests and benchmarks.

``fake_data_dir(root)`` lays out every non-TFDS source under ``root`` as ``register_all``
expects; ``mock_tfds()`` serves ``TFDS_RECORDS`` through ``tfds.testing.mock_data`` (TFDS's own
offline mocking, which takes features from the builder code), so the real TFDS source runs
without prepared data. The prepared-data check still runs: ``fake_data_dir`` writes each
builder's ``dataset_info.json`` marker, so mocking cannot hide a wrong path.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tensorflow as tf

from t5x_xfer.tasks import registry

NLI = [
    {"premise": "A man plays a guitar.", "hypothesis": "A person makes music.", "label": 0},
    {"premise": "A dog sleeps.", "hypothesis": "The dog is running.", "label": 2},
]
TFDS_RECORDS: dict[str, list[dict[str, Any]]] = {
    "glue/mnli": [{**r, "idx": i} for i, r in enumerate(NLI)],
    "glue/qqp": [
        {
            "question1": "How do I learn Go?",
            "question2": "How can I learn Go?",
            "label": 1,
            "idx": 0,
        },
        {"question1": "Why is the sky blue?", "question2": "What is rust?", "label": 0, "idx": 1},
    ],
    "glue/sst2": [{"sentence": "a gripping, funny film", "label": 1, "idx": 0}],
    **{
        f"anli/r{k}": [
            {"uid": f"r{k}-{i}", "context": r["premise"], "hypothesis": r["hypothesis"], "label": 1}
            for i, r in enumerate(NLI)
        ]
        for k in (1, 2, 3)
    },
    "snli": [*NLI, {"premise": "Unclear.", "hypothesis": "No gold label.", "label": -1}],
    "squad/v1.1": [
        {
            "id": "q1",
            "title": "Paris",
            "context": "Paris is the capital of France.",
            "question": "What is the capital of France?",
            "answers": {"text": ["Paris", "Paris"], "answer_start": [0, 0]},
        }
    ],
    "squad/v2.0": [
        {
            "id": "q2",
            "title": "Paris",
            "context": "Paris is the capital of France.",
            "question": "What is the capital of Peru?",
            "answers": {"text": [], "answer_start": []},
            "is_impossible": True,
            "plausible_answers": {"text": ["Paris"], "answer_start": [0]},
        }
    ],
    "hellaswag": [
        {
            "activity_label": "Cooking",
            "context": "A woman cracks an egg into a bowl. She",
            "endings": ["whisks it.", "sings.", "flies away.", "paints the bowl."],
            "label": 0,
            "source_id": "x",
            "split_type": "indomain",
        }
    ],
    "cosmos_qa": [
        {
            "id": "c1",
            "context": "I missed the bus, so I walked to work.",
            "question": "Why did I walk?",
            "answer0": "I like walking.",
            "answer1": "I missed the bus.",
            "answer2": "My car broke.",
            "answer3": "None of the above.",
            "label": 1,
        }
    ],
    "cnn_dailymail": [
        {
            "article": "The city council voted on Monday to build a new library downtown.",
            "highlights": "Council approves new library.\nIt will be downtown.",
            "id": "a1",
            "publisher": "cnn",
        }
    ],
}

CSQA_RECORDS = [
    {
        "id": "s1",
        "question": "Where do you keep milk cold?",
        "question_concept": "milk",
        "choices": {
            "label": ["A", "B", "C", "D", "E"],
            "text": ["fridge", "oven", "shelf", "car", "desk"],
        },
        "answerKey": "A",
    }
]
CCG_AUTO = """ID=wsj_{section:02d}01.1 PARSER=GOLD NUMPARSE=1
(<T S[dcl] 0 2> (<L NP NNP NNP Pierre NP>) (<T S[dcl]\\NP 0 2> (<L (S[dcl]\\NP)/NP VBZ VBZ likes (S[dcl]\\NP_1)/NP_2>) (<L N NNS NNS cats N>) ) )
ID=wsj_{section:02d}01.2 PARSER=GOLD NUMPARSE=1
(<T S[dcl] 0 2> (<L N NN NN Rain N>) (<L S[dcl]\\NP VBZ VBZ falls S[dcl]\\NP_1>) )
"""  # noqa: E501
MBPP_RECORD = {
    "text": "Write a function to add two numbers.",
    "code": "def add(a, b):\r\n    return a + b",
    "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"],
    "test_setup_code": "",
    "challenge_test_list": [],
}
HUMANEVAL_RECORD = {
    "prompt": "/* Add two numbers. */\n",
    "declaration": "fn add(a: i32, b: i32) -> i32 {\n",
    "canonical_solution": "    a + b\n}\n",
    "test": "fn main() {}",
    "example_test": None,
}


def _cycle(records: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    return list(itertools.islice(itertools.cycle(records), max(n, len(records))))


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")


def fake_data_dir(root: Path, n: int = 0) -> Path:
    """Write every non-TFDS source (``n`` records each, at least the hand-written ones) and the
    TFDS prepared-data markers under ``root``; return ``root``."""
    import datasets

    csqa = datasets.Dataset.from_list(_cycle(CSQA_RECORDS, n))
    datasets.DatasetDict({"train": csqa, "validation": csqa}).save_to_disk(
        str(root / "commonsense_qa")
    )
    reps = max(1, n // 2)
    for section in (0, 2, 21, 23):
        auto = root / "ccgbank" / "data" / "AUTO" / f"{section:02d}" / f"wsj_{section:02d}01.auto"
        auto.parent.mkdir(parents=True, exist_ok=True)
        auto.write_text(CCG_AUTO.format(section=section) * reps, encoding="utf-8")
    ids = [5, 11, 520, 601, 700] + list(range(602, 602 + n))
    _write_jsonl(root / "mbpp" / "mbpp.jsonl", [{**MBPP_RECORD, "task_id": i} for i in ids])
    for split in ("train", "validation"):
        _write_jsonl(root / "code_jsonl" / f"{split}.jsonl", _cycle([MBPP_RECORD], n))
    for lang in registry.HUMANEVAL_X_LANGUAGES:
        records = [
            {**HUMANEVAL_RECORD, "task_id": f"{lang}/{i}"} for i in range(max(2, n))
        ]  # task_id prefixes differ upstream; only its presence matters here
        _write_jsonl(root / "humaneval-x" / lang / f"humaneval_{lang}.jsonl.gz", records)
    for dataset in registry.TFDS.values():
        marker = root / "tfds" / dataset.path / "dataset_info.json"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("{}", encoding="utf-8")
    return root


@contextlib.contextmanager
def mock_tfds(n: int = 0) -> Iterator[None]:
    """Serve ``TFDS_RECORDS`` (cycled to ``n``) for every split of the builders we use."""
    import tensorflow_datasets as tfds

    def as_dataset(builder: Any, split: str, **kwargs: Any) -> tf.data.Dataset:
        name = builder.name
        if builder.builder_config is not None:
            name += "/" + builder.builder_config.name
        records = _cycle(TFDS_RECORDS[name], n)
        features = builder.info.features
        spec = features.get_tensor_spec()
        return tf.data.Dataset.from_generator(lambda: iter(records), output_signature=spec)

    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, as_dataset_fn=as_dataset):
        yield
