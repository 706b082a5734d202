"""The debug model's tokenizer: a byte-level BPE trained on the smoke data's task texts."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path


def task_texts(data_dir: str | Path, split: str = "train") -> Iterator[str]:
    """Every task's input and target text of ``split``, read through the real task pipelines,
    plus the mini benchmark's prompts and solutions (so code in all six languages is seen)."""
    import seqio

    from t5x_xfer import tasks
    from t5x_xfer.codeeval import minibench

    tasks.register_all(seqio.ByteVocabulary(), data_dir, humaneval_x_dir=minibench.MINIBENCH_DIR)
    for name in tasks.TASKS:
        task = seqio.get_mixture_or_task(name)
        if split not in task.splits:
            continue
        # The source and the text preprocessors, no further: the texts the tokenizer will see
        # (the tokenizing, caching and EOS steps after them would only be undone here).
        ds = task.source.get_dataset(split=split, shuffle=False)
        for step in task.preprocessors:
            if step is seqio.preprocessors.tokenize:
                break
            ds = step(ds)
        for ex in ds.as_numpy_iterator():
            for key in ("inputs", "targets"):
                yield ex[key].decode("utf-8")
    for path in sorted(Path(minibench.MINIBENCH_DIR).rglob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                yield record["prompt"] + record["canonical_solution"]


def train_tokenizer(data_dir: str | Path, out: str | Path, vocab_size: int = 512) -> Path:
    """A byte-level BPE tokenizer.json for the debug model, trained on the smoke data's text
    (kept if ``out`` exists: reruns are free and the model's vocabulary stays fixed)."""
    from t5x_xfer import vocabularies

    out = Path(out)
    if out.is_file():
        return out
    texts = list(task_texts(data_dir))
    tmp = out.with_name(out.name + ".tmp")
    vocabularies.train_byte_level_bpe(texts, tmp, vocab_size=vocab_size)
    os.replace(tmp, out)
    return out
