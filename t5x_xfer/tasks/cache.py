"""Tokenized tasks cached on disk, in seqio's offline-cache format, written without Beam.

seqio tokenizes on the fly unless a task is cached (``seqio.add_global_cache_dirs`` +
``use_cached=True``), and T5X users cache big tasks with seqio's Beam job. Here the first
training stage that needs a task split writes the cache itself: everything before the task's
``CacheDatasetPlaceholder`` (the text preprocessor and the tokenizer) runs once, and every later
stage, rerun and resume reads token ids from TFRecords. That takes the tokenizer (a Python call
per example) off the training step, and leaves a pipeline of TensorFlow ops only, whose
iterator can be checkpointed, so a resumed run restores its data position instead of replaying
it (``t5x_xfer.train``).

Layout: ``<cache_dir>/<key>/<task>/{<split>.tfrecord-00000-of-00001, info.<split>.json,
stats.<split>.json, COMPLETED}``, seqio's own file names; ``<key>`` hashes the vocabulary's
files, the data paths and the task code, so two tokenizers never share a cache. The data
itself is not hashed: after changing a dataset in place, delete its cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

log = logging.getLogger("t5x_xfer.tasks")

CACHE_SEED = 0  # seeds the (normally deterministic) preprocessing before the cache point


def cache_key(vocabulary: seqio.Vocabulary, data_paths: Iterable[Any]) -> str:
    """A short hash of what the cached token ids depend on: the vocabulary's files, the data
    paths, and the code that defines the tasks (this package's ``tasks`` modules and seqio's
    version), so that an updated preprocessor never reads a stale cache."""
    h = hashlib.sha256(repr(sorted(map(str, data_paths))).encode())
    h.update(seqio.__version__.encode())
    for module in sorted(Path(__file__).parent.glob("*.py")):
        h.update(module.read_bytes())
    h.update(type(vocabulary).__name__.encode())
    for attr in ("_source", "sentencepiece_model_file"):
        source = getattr(vocabulary, attr, None)
        if source and Path(str(source)).expanduser().is_file():
            h.update(Path(str(source)).expanduser().read_bytes())
        elif source:
            h.update(str(source).encode())
    h.update(repr(getattr(vocabulary, "extra_ids", 0)).encode())
    return h.hexdigest()[:16]


def task_cache(root: str | Path, vocabulary: seqio.Vocabulary, paths: Any) -> Path:
    """``root/<key>``: the cache of this vocabulary and these data paths (a local folder)."""
    if "://" in str(root):
        raise ValueError(f"task_cache_dir must be a local directory, got {root}")
    return Path(root).expanduser() / cache_key(vocabulary, vars(paths).values())


def use_cache_dir(directory: str | Path) -> None:
    """Make seqio look for cached tasks in ``directory`` (first), for this process."""
    others = [d for d in seqio.utils.get_global_cache_dirs() if d != str(directory)]
    seqio.utils.set_global_cache_dirs([str(directory), *others])


def ensure_cached(name: str, split: str, directory: str | Path) -> None:
    """Write every missing task cache of ``name`` (a task or mixture) for ``split`` under
    ``directory`` and make seqio read them. Safe when several processes race: each writes
    to its own temporary folder, the first rename wins."""
    directory = Path(directory)
    use_cache_dir(directory)
    for task in seqio.get_subtasks(seqio.get_mixture_or_task(name)):
        done = directory / task.name / f"info.{split}.json"
        if done.is_file() and (directory / task.name / "COMPLETED").is_file():
            continue
        _write(task, split, directory)


def _write(task: seqio.Task, split: str, directory: Path) -> None:
    if not task.supports_caching:
        raise ValueError(f"task {task.name!r} has no CacheDatasetPlaceholder, so cannot be cached")
    final = directory / task.name
    tmp = directory / f".{task.name}.{split}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if final.is_dir():  # other splits already there: keep them
        for f in final.iterdir():
            if f.name != "COMPLETED":
                shutil.copy2(f, tmp / f.name)
    log.info("caching the tokenized %s:%s in %s", task.name, split, final)
    ds = task.source.get_dataset(split=split, shuffle=False, seed=CACHE_SEED)
    ds = task.preprocess_precache(ds, seed=CACHE_SEED)
    features: dict[str, dict[str, Any]] = {}
    stats: dict[str, int] = {"examples": 0}
    path = seqio.utils.get_cached_tfrecord_prefix(str(tmp), split) + "-00000-of-00001"
    with tf.io.TFRecordWriter(path) as writer:
        for ex in ds.as_numpy_iterator():
            ex = {k: v for k, v in ex.items() if not k.startswith("provenance/")}
            writer.write(seqio.utils.dict_to_tfexample(ex).SerializeToString())
            stats["examples"] += 1
            for k, v in ex.items():
                v = np.asarray(v)
                if k not in features:
                    dtype = "string" if v.dtype.kind in "SOU" else v.dtype.name
                    features[k] = {"shape": [None, *v.shape[1:]] if v.ndim else [], "dtype": dtype}
                if k in task.output_features and v.ndim:
                    stats[f"{k}_tokens"] = stats.get(f"{k}_tokens", 0) + int(v.size)
                    stats[f"{k}_max_tokens"] = max(stats.get(f"{k}_max_tokens", 0), int(v.size))
    if not stats["examples"]:
        shutil.rmtree(tmp)
        raise ValueError(f"task {task.name!r} split {split!r} has no examples to cache")
    info = {"num_shards": 1, "features": features, "seqio_version": seqio.__version__}
    (tmp / f"info.{split}.json").write_text(json.dumps(info, indent=2))
    (tmp / f"stats.{split}.json").write_text(json.dumps(stats, indent=2))
    (tmp / "COMPLETED").write_text("")
    old = directory / f".{task.name}.old-{os.getpid()}"
    if final.is_dir():
        final.rename(old)
    try:
        tmp.rename(final)
    except OSError:  # another process finished first: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
