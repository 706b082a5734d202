"""Batches for a model from a registered task or mixture: this process's shard, converted by
the model's own seqio feature converter, batched; plus the numpy helpers the loops share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import seqio


def check_registered(name: str) -> None:
    """Fail before any work when ``name`` is no registered task or mixture, listing ours."""
    if name in seqio.TaskRegistry.names() or name in seqio.MixtureRegistry.names():
        return
    from t5x_xfer.tasks.registry import MIXTURES, TASKS

    raise ValueError(
        f"MIXTURE_OR_TASK_NAME {name!r} is not a registered seqio task or mixture; "
        f"mixtures: {', '.join(MIXTURES)}; tasks: {', '.join(TASKS)}"
    )


def get_dataset(
    name: str,
    feature_converter: seqio.FeatureConverter,
    task_feature_lengths: Mapping[str, int],
    split: str,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    num_epochs: int | None,
    shard_index: int = 0,
    num_shards: int = 1,
    use_cached: bool = False,
) -> Any:
    """Shard ``shard_index`` of ``num_shards`` of ``name``, converted and batched (the last
    partial batch is kept only for finite epochs, where eval pads it). ``use_cached``: read the
    tokenized tasks ``t5x_xfer.tasks.cache`` wrote."""
    ds = seqio.get_dataset(
        name,
        task_feature_lengths=dict(task_feature_lengths),
        feature_converter=feature_converter,
        dataset_split=split,
        shuffle=shuffle,
        num_epochs=num_epochs,
        shard_info=seqio.ShardInfo(index=shard_index, num_shards=num_shards),
        seed=seed,
        use_cached=use_cached,
        verbose=False,
    )
    return ds.batch(batch_size, drop_remainder=num_epochs is None)


def to_numpy(batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in batch.items()}


def pad_batch(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Zero-pad a final partial batch (zero loss weight) to the compiled batch size."""
    n = next(iter(batch.values())).shape[0]
    if n == size:
        return batch
    return {
        k: np.concatenate([v, np.zeros((size - n, *v.shape[1:]), v.dtype)])
        for k, v in batch.items()
    }
