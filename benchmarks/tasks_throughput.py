"""Examples per second through each task's full input pipeline on this CPU.

Preprocess + tokenize + pack (seqio.EncDecFeatureConverter, pack=True) on generated data in
each source's own format (``t5x_xfer.testing.task_sources``), TFDS served through its offline
mock. Time is wall clock for ``--examples`` source records after one warm-up batch, so it
measures the steady pipeline, not TF tracing.

    python benchmarks/tasks_throughput.py --examples 2000 --out runs/bench_tasks
    python benchmarks/tasks_throughput.py --tokenizer DIR_WITH_tokenizer.json  # real BPE
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import seqio

from t5x_xfer import tasks
from t5x_xfer.testing import task_sources
from t5x_xfer.vocabularies import HuggingFaceVocabulary, train_byte_level_bpe

LENGTHS = {"inputs": 512, "targets": 128}
BATCH = 8


def measure(name: str, split: str) -> dict[str, float]:
    """Time the whole split through the packed pipeline, after building it and one warm-up
    batch (TF tracing and tokenizer loading are start-up costs, not throughput)."""
    n_examples = sum(1 for _ in tasks.get(name).get_dataset(None, split=split, shuffle=False))
    ds = seqio.get_dataset(
        name, LENGTHS, seqio.EncDecFeatureConverter(pack=True), dataset_split=split, shuffle=False
    ).batch(BATCH)
    next(ds.as_numpy_iterator())
    start = time.perf_counter()
    rows = sum(len(b["encoder_input_tokens"]) for b in ds.as_numpy_iterator())
    seconds = time.perf_counter() - start
    return {
        "examples": n_examples,
        "packed_rows": rows,
        "seconds": round(seconds, 3),
        "examples_per_s": round(n_examples / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="records per source")
    parser.add_argument("--tokenizer", default=None, help="tokenizer.json dir; default: trained")
    parser.add_argument("--out", default="runs/bench_tasks")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = task_sources.fake_data_dir(Path(tmp) / "data", n=args.examples)
        tok = args.tokenizer
        if tok is None:
            corpus = [str(r) for rs in task_sources.TFDS_RECORDS.values() for r in rs]
            tok = str(train_byte_level_bpe(corpus * 20, Path(tmp) / "tokenizer.json"))
        tasks.register_all(HuggingFaceVocabulary(tok), root)
        results = {}
        with task_sources.mock_tfds(n=args.examples):
            for name in tasks.TASKS:
                if name.startswith("xfer_humanevalx_") and name != "xfer_humanevalx_python":
                    continue  # same pipeline for every language
                split = "test" if "humanevalx" in name else "train"
                results[name] = measure(name, split)
                print(f"{name:28s} {results[name]['examples_per_s']:>10.1f} ex/s", flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "examples_per_source": args.examples,
        "lengths": LENGTHS,
        "vocabulary": "HuggingFaceVocabulary (byte-level BPE)",
        "machine": platform.platform(),
    }
    (out / "tasks_throughput.json").write_text(
        json.dumps({"meta": meta, "tasks": results}, indent=2)
    )
    lines = [
        "| task | examples | packed rows | seconds | examples/s |",
        "|---|---|---|---|---|",
        *("| " + " | ".join(map(str, [k, *v.values()])) + " |" for k, v in results.items()),
    ]
    (out / "tasks_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
