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
    check_lengths(
        ds.element_spec, feature_converter.get_model_feature_lengths(task_feature_lengths)
    )
    return ds.batch(batch_size, drop_remainder=num_epochs is None)


def check_lengths(spec: Mapping[str, Any], lengths: Mapping[str, int]) -> None:
    """Every model feature has its length in the pipeline's static shapes.

    seqio's converters can check each example's lengths as it passes (a map of assertions):
    about 0.4 s of tf.data tracing per pipeline and work per example. Our converters pad every
    feature to a fixed length, so the shapes say it once, before any example is read; the
    converters run with ``apply_length_check=False``.

    >>> import tensorflow as tf
    >>> check_lengths({"x": tf.TensorSpec([4], tf.int32)}, {"x": 5})
    Traceback (most recent call last):
    ...
    ValueError: the feature converter's x has shape [4], not [5]
    """
    for name, length in lengths.items():
        shape = spec[name].shape.as_list() if name in spec else None
        if shape is None or shape[-1:] != [length]:
            raise ValueError(f"the feature converter's {name} has shape {shape}, not [{length}]")


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
