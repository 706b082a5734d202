"""The tokenized-task cache: seqio reads exactly what tokenizing on the fly gives, writes once,
keeps other splits, and never shares a cache between two vocabularies."""

from __future__ import annotations

import numpy as np
import pytest
import seqio

from t5x_xfer import vocabularies
from t5x_xfer.tasks import cache

LENGTHS = {"inputs": 64, "targets": 32}


def _examples(name: str, split: str, use_cached: bool) -> list[dict]:
    task = seqio.get_mixture_or_task(name)
    ds = task.get_dataset(LENGTHS, split, use_cached=use_cached, shuffle=False)
    return list(ds.as_numpy_iterator())


@pytest.mark.parametrize("name", ["xfer_mbpp_completion", "xfer_commonsense_qa"])
def test_cached_examples_equal_tokenizing_on_the_fly(name, registered, tmp_path):
    directory = tmp_path / "cache"
    for split in ("train", "validation"):
        cache.ensure_cached(name, split, directory)
        fly, cached = _examples(name, split, False), _examples(name, split, True)
        assert len(fly) == len(cached) > 0
        for a, b in zip(fly, cached, strict=True):
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert sorted(p.name for p in (directory / name).iterdir()) == [
        "COMPLETED",
        "info.train.json",
        "info.validation.json",
        "stats.train.json",
        "stats.validation.json",
        "train.tfrecord-00000-of-00001",
        "validation.tfrecord-00000-of-00001",
    ]


def test_a_cached_split_is_written_once(registered, tmp_path):
    directory = tmp_path / "cache"
    cache.ensure_cached("xfer_mix_target_mbpp_completion", "train", directory)
    record = directory / "xfer_mbpp_completion" / "train.tfrecord-00000-of-00001"
    first = record.stat().st_mtime_ns
    cache.ensure_cached("xfer_mix_target_mbpp_completion", "train", directory)
    assert record.stat().st_mtime_ns == first


def test_the_key_follows_the_tokenizer_and_the_data(tmp_path):
    code = ["def add(a, b):\n    return a + b\n"] * 20
    prose = ["The quick brown fox jumps over the lazy dog.\n"] * 20
    small = vocabularies.HuggingFaceVocabulary(
        str(vocabularies.train_byte_level_bpe(code, tmp_path / "a.json", vocab_size=280))
    )
    large = vocabularies.HuggingFaceVocabulary(
        str(vocabularies.train_byte_level_bpe(prose, tmp_path / "b.json", vocab_size=300))
    )
    assert cache.cache_key(small, ["data"]) != cache.cache_key(large, ["data"])
    assert cache.cache_key(small, ["data"]) != cache.cache_key(small, ["other"])
    assert cache.cache_key(small, ["data"]) == cache.cache_key(small, ["data"])


def test_a_remote_cache_dir_is_refused(registered):
    with pytest.raises(ValueError, match="gs://bucket/cache"):
        cache.task_cache("gs://bucket/cache", registered, object())
