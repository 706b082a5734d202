"""Data sources: where each dataset is read from, in the record format of its origin.

Every source fails before reading if its data is absent, with a ``MissingDataError`` that names
the dataset, the path it looked at and the command that fetches or builds it, because the
alternative (TFDS downloading mid-run, or an empty dataset) wastes a training job.

- TFDS builders (GLUE, ANLI, SNLI, SQuAD, HellaSwag, Cosmos QA, CNN/DailyMail) are read from a
  prepared TFDS data directory; nothing is downloaded implicitly.
- CommonsenseQA (not in TFDS) is a Hugging Face ``datasets`` DatasetDict saved with
  ``save_to_disk``.
- CCGbank (licensed by the LDC) is parsed from its AUTO files in a user-given directory.
- MBPP and users' own code data are JSON lines; HumanEval-X is the upstream ``jsonl.gz`` files.

The Python-side sources (all but TFDS) materialise records in memory, which is fine for their
sizes (at most ~40k records), and validate fields while reading so a bad record is reported
with its file, line and the missing field.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import seqio
import tensorflow as tf

from t5x_xfer.io_utils import iter_jsonl
from t5x_xfer.tasks.code_format import completion_records


class MissingDataError(FileNotFoundError):
    """A dataset's files are not where the task was told to look."""

    def __init__(self, dataset: str, looked_at: str | Path, how_to_get: str) -> None:
        super().__init__(f"{dataset}: no data at {looked_at}. To get it: {how_to_get}")
        self.dataset = dataset
        self.looked_at = str(looked_at)


def require_fields(record: Mapping[str, Any], fields: Iterable[str], where: str) -> None:
    """Raise KeyError naming the first of ``fields`` absent from ``record``."""
    for name in fields:
        if name not in record:
            raise KeyError(f"{where}: record has no field {name!r} (it has {sorted(record)})")


# ----------------------------------------------------------------------------------------------
# TFDS


@dataclasses.dataclass(frozen=True)
class TfdsDataset:
    """A TFDS builder at a pinned version, and our split names -> its split names."""

    name: str  # e.g. "glue/mnli:2.0.0"
    splits: Mapping[str, str]

    @property
    def path(self) -> str:
        """The builder's directory under a TFDS data dir, e.g. ``glue/mnli/2.0.0``."""
        return self.name.replace(":", "/")


class PreparedTfdsDataSource(seqio.TfdsDataSource):
    """seqio's TFDS source, refusing to download: the dataset must be prepared already.

    seqio's own source calls ``tfds.load(download=True)``, which would start a multi-gigabyte
    download inside a training job; here a missing dataset is an error that says how to build it.
    """

    def __init__(self, dataset: TfdsDataset, tfds_data_dir: str | Path) -> None:
        self._dataset = dataset
        self._tfds_data_dir = str(tfds_data_dir)
        super().__init__(
            tfds_name=dataset.name, tfds_data_dir=self._tfds_data_dir, splits=dict(dataset.splits)
        )

    def check_prepared(self) -> None:
        where = Path(self._tfds_data_dir) / self._dataset.path
        if not (where / "dataset_info.json").is_file():
            raise MissingDataError(
                f"TFDS dataset {self._dataset.name}",
                where,
                f"tfds build {self._dataset.name.split(':')[0]} --data_dir={self._tfds_data_dir}"
                " (or point tfds_data_dir at an existing TFDS data directory)",
            )

    def num_input_examples(self, split: str) -> int | None:
        """The split's size from the builder's metadata; None where the metadata has no split
        sizes (as under ``tfds.testing.mock_data``), which seqio treats as unknown."""
        try:
            return super().num_input_examples(split)
        except KeyError:
            return None

    def get_dataset(
        self,
        split: str | None = None,
        shuffle: bool = True,
        seed: int | None = None,
        shard_info: seqio.ShardInfo | None = None,
        *,
        sequence_length: Mapping[str, int] | None = None,
        use_cached: bool = False,
        num_epochs: int | None = 1,
    ) -> tf.data.Dataset:
        self.check_prepared()
        return super().get_dataset(
            split,
            shuffle=shuffle,
            seed=seed,
            shard_info=shard_info,
            sequence_length=sequence_length,
            use_cached=use_cached,
            num_epochs=num_epochs,
        )


# ----------------------------------------------------------------------------------------------
# Python-side sources: records loaded in Python, served through tf.data.

Records = list[dict[str, Any]]


def python_source(
    load: Callable[[str], Records],
    splits: Sequence[str],
    signature: Mapping[str, tf.TensorSpec],
) -> seqio.FunctionDataSource:
    """A seqio source over ``load(split)`` records; shuffling is a seeded in-memory shuffle."""

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        records = load(split)
        if shuffle_files:
            records = list(records)
            random.Random(seed).shuffle(records)
        keys = list(signature)
        return tf.data.Dataset.from_generator(
            lambda: ({k: r[k] for k in keys} for r in records),
            output_signature=dict(signature),
        )

    return seqio.FunctionDataSource(dataset_fn, splits=list(splits))


def _string_list(shape: Sequence[int | None] = (None,)) -> tf.TensorSpec:
    return tf.TensorSpec(shape, tf.string)


STRING = tf.TensorSpec((), tf.string)


def read_jsonl(path: Path, fields: Sequence[str], dataset: str) -> Records:
    """JSON lines (optionally gzip), each checked for ``fields``; errors name file and line."""
    records = []
    for where, record in iter_jsonl(path, dataset):
        require_fields(record, fields, where)
        records.append(record)
    return records


# CommonsenseQA (Hugging Face datasets) --------------------------------------------------------

CSQA_HUB_ID = "tau/commonsense_qa"
CSQA_SIGNATURE = {
    "id": STRING,
    "question": STRING,
    "choices": {"label": _string_list(), "text": _string_list()},
    "answerKey": STRING,
}


def commonsense_qa_source(path: str | Path) -> seqio.FunctionDataSource:
    """CommonsenseQA from a DatasetDict saved with ``save_to_disk`` (the hub's own records)."""
    path = Path(path)

    def load(split: str) -> Records:
        import datasets

        if not (path / "dataset_dict.json").is_file():
            raise MissingDataError(
                "CommonsenseQA",
                path,
                f"python -c \"import datasets; datasets.load_dataset('{CSQA_HUB_ID}')"
                f".save_to_disk('{path}')\"",
            )
        rows = datasets.load_from_disk(str(path))[split]
        records = []
        for i, row in enumerate(rows):
            where = f"CommonsenseQA {path} {split}[{i}]"
            require_fields(row, CSQA_SIGNATURE, where)
            require_fields(row["choices"], ("label", "text"), where + ".choices")
            records.append(row)
        return records

    return python_source(load, ("train", "validation"), CSQA_SIGNATURE)


# CCGbank AUTO format -------------------------------------------------------------------------

CCG_SPLITS = {"train": range(2, 22), "validation": range(0, 1), "test": range(23, 24)}
CCG_SIGNATURE = {"id": STRING, "tokens": _string_list(), "tags": _string_list()}
_CCG_LEAF = re.compile(r"\(<L (\S+) (\S+) (\S+) (\S+) (\S+)>\)")
_CCG_HEADER = re.compile(r"^ID=(\S+)")


def parse_ccg_auto(text: str, source: str = "<string>") -> Records:
    """Sentences of a CCGbank ``.auto`` file: ``{"id", "tokens", "tags"}`` per sentence.

    Each sentence is an ``ID=...`` header line followed by its derivation, whose leaves are
    ``(<L CATEGORY MODIFIED_POS ORIGINAL_POS WORD PRED_ARG_CATEGORY>)``; the supertag of a word
    is its CATEGORY.
    """
    records = []
    current_id = None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        header = _CCG_HEADER.match(line)
        if header:
            current_id = header.group(1)
            continue
        leaves = _CCG_LEAF.findall(line)
        if current_id is None or not leaves:
            raise ValueError(
                f"{source}:{number}: expected an 'ID=...' header followed by a derivation "
                "with (<L CAT POS POS WORD PRED_ARG>) leaves (CCGbank AUTO format)"
            )
        records.append(
            {
                "id": current_id,
                "tokens": [leaf[3] for leaf in leaves],
                "tags": [leaf[0] for leaf in leaves],
            }
        )
        current_id = None
    return records


def ccg_auto_files(root: Path) -> dict[int, list[Path]]:
    """AUTO files per WSJ section under ``root`` (the LDC layout ``data/AUTO/SS/wsj_SSNN.auto``,
    or any tree of ``wsj_SSNN.auto`` files)."""
    by_section: dict[int, list[Path]] = {}
    for path in sorted(root.rglob("wsj_*.auto")):
        by_section.setdefault(int(path.name[4:6]), []).append(path)
    return by_section


def ccg_source(root: str | Path) -> seqio.FunctionDataSource:
    """CCG supertagging from CCGbank: train = sections 02-21, validation = 00, test = 23."""
    root = Path(root)

    def load(split: str) -> Records:
        files = ccg_auto_files(root) if root.is_dir() else {}
        if not files:
            raise MissingDataError(
                "CCGbank (LDC2005T13)",
                f"{root} (wsj_*.auto files)",
                "obtain CCGbank from the LDC (https://catalog.ldc.upenn.edu/LDC2005T13) and "
                "point ccgbank_dir at its root (the one holding data/AUTO)",
            )
        records = []
        for section in CCG_SPLITS[split]:
            for path in files.get(section, []):
                records += parse_ccg_auto(path.read_text(encoding="utf-8"), str(path))
        return records

    return python_source(load, tuple(CCG_SPLITS), CCG_SIGNATURE)


# MBPP and MBPP-style JSONL --------------------------------------------------------------------

MBPP_URL = (
    "https://raw.githubusercontent.com/google-research/google-research/master/mbpp/mbpp.jsonl"
)
# The MBPP paper's split by task_id: 1-10 few-shot prompts, 11-510 test, 511-600 validation,
# 601-974 train.
MBPP_SPLITS = {"train": (601, 974), "validation": (511, 600), "test": (11, 510), "prompt": (1, 10)}
CODE_FIELDS = ("text", "code", "test_list")
CODE_SIGNATURE = {"task_id": STRING, "text": STRING, "code": STRING, "test_list": _string_list()}


def _code_record(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "task_id": str(record.get("task_id", "")),
        "text": record["text"],
        "code": record["code"],
        "test_list": list(record["test_list"]),
    }


COMPLETION_SIGNATURE = {
    "task_id": STRING,
    "prompt": STRING,
    "completion": STRING,
    "test_list": _string_list(),
}


def _mbpp_load(path: Path) -> Callable[[str], Records]:
    def load(split: str) -> Records:
        if not path.is_file():
            raise MissingDataError("MBPP", path, f"curl -L -o {path} {MBPP_URL}")
        lo, hi = MBPP_SPLITS[split]
        records = read_jsonl(path, ("task_id", *CODE_FIELDS), "MBPP")
        return [_code_record(r) for r in records if lo <= int(r["task_id"]) <= hi]

    return load


def _code_jsonl_load(directory: Path) -> Callable[[str], Records]:
    def load(split: str) -> Records:
        path = directory / f"{split}.jsonl"
        if not path.is_file():
            raise MissingDataError(
                "code JSONL",
                path,
                "write one JSON object per line with fields text, code, test_list "
                "(MBPP's format) to train.jsonl / validation.jsonl there",
            )
        return [_code_record(r) for r in read_jsonl(path, CODE_FIELDS, "code JSONL")]

    return load


def _code_source(
    load: Callable[[str], Records], splits: Sequence[str], name: str, completion: bool
) -> seqio.FunctionDataSource:
    """MBPP-format records as they are, or in HumanEval's completion format (``code_format``)."""
    if not completion:
        return python_source(load, splits, CODE_SIGNATURE)
    return python_source(
        lambda split: completion_records(load(split), f"{name} {split}"),
        splits,
        COMPLETION_SIGNATURE,
    )


def mbpp_source(path: str | Path, completion: bool = False) -> seqio.FunctionDataSource:
    """MBPP from the original ``mbpp.jsonl``, split by task_id as in the MBPP paper; with
    ``completion`` as HumanEval-style prompt/completion pairs."""
    return _code_source(_mbpp_load(Path(path)), tuple(MBPP_SPLITS), "MBPP", completion)


def code_jsonl_source(directory: str | Path, completion: bool = False) -> seqio.FunctionDataSource:
    """Users' own code data: ``<directory>/<split>.jsonl`` in MBPP's record format
    (``text``, ``code``, ``test_list``; ``task_id`` optional); ``completion`` as for MBPP."""
    load = _code_jsonl_load(Path(directory))
    return _code_source(load, ("train", "validation"), "code JSONL", completion)


# HumanEval-X ----------------------------------------------------------------------------------

HUMANEVAL_X_LANGUAGES = ("cpp", "go", "java", "js", "python", "rust")
HUMANEVAL_X_SIGNATURE = {
    "task_id": STRING,
    "language": STRING,
    "prompt": STRING,
    "declaration": STRING,
    "canonical_solution": STRING,
}
HUMANEVAL_X_FIELDS = ("task_id", "prompt", "declaration", "canonical_solution")


def humaneval_x_file(root: Path, language: str) -> Path:
    return root / language / f"humaneval_{language}.jsonl.gz"


def humaneval_x_source(root: str | Path, language: str) -> seqio.FunctionDataSource:
    """One language of HumanEval-X (CodeGeeX's ``<lang>/humaneval_<lang>.jsonl.gz``); split
    ``test`` only, as the benchmark has no training data."""
    root = Path(root)

    def load(split: str) -> Records:
        path = humaneval_x_file(root, language)
        if not path.is_file():
            raise MissingDataError(
                f"HumanEval-X ({language})",
                path,
                "copy codegeex/benchmark/humaneval-x/<lang>/data/humaneval_<lang>.jsonl.gz from "
                "https://github.com/THUDM/CodeGeeX into <humaneval_dir>/<lang>/",
            )
        records = read_jsonl(path, HUMANEVAL_X_FIELDS, f"HumanEval-X ({language})")
        return [{**r, "language": language} for r in records]

    return python_source(load, ("test",), HUMANEVAL_X_SIGNATURE)
