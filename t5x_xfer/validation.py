"""Evaluation during training: teacher-forced loss and accuracy on the validation split, and
the tasks' own seqio metrics (accuracy, SQuAD F1, ROUGE...) on greedy decodes."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from t5x_xfer import partitioning
from t5x_xfer import trainer as trainer_lib
from t5x_xfer.decoding import DecodeSettings
from t5x_xfer.models import BaseModel
from t5x_xfer.tasks.batches import get_dataset, pad_batch, to_numpy


def make_evaluator(
    model: BaseModel,
    mesh: Any,
    name: str,
    lengths: Mapping[str, int],
    per_host: int,
    split: str,
    eval_steps: int,
    infer_examples: int,
    seed: int,
    loss_opts: trainer_lib.LossOptions,
    use_cached: bool = False,
) -> Callable[[Any], dict[str, float]]:
    """A function params -> eval metrics: teacher-forced loss/accuracy over ``eval_steps``
    batches of ``split``, plus seqio metrics of greedy predictions on ``infer_examples``."""
    b_sharding = partitioning.batch_sharding(mesh)
    eval_step = jax.jit(
        trainer_lib.make_eval_step(model, loss_opts),
        in_shardings=(None, b_sharding),
        compiler_options=partitioning.compiler_options(model.config.dtype),
    )
    shard = {"shard_index": jax.process_index(), "num_shards": jax.process_count()}
    decoded: dict[str, Callable[[Any], dict[str, float]]] = {}
    # The eval batches are the same at every evaluation (no shuffling): the first one keeps
    # this host's ``eval_steps`` batches, so later ones neither rebuild the seqio pipeline
    # (about a second of tf.data tracing each) nor re-read the split.
    kept: list[dict[str, np.ndarray]] = []

    def host_batches() -> list[dict[str, np.ndarray]]:
        if not kept:
            ds = get_dataset(
                name,
                model.feature_converter(pack=True),
                lengths,
                split,
                per_host,
                shuffle=False,
                seed=seed,
                num_epochs=1,
                use_cached=use_cached,
                **shard,
            )
            for i, batch in enumerate(ds):
                if i >= eval_steps:
                    break
                kept.append(pad_batch(to_numpy(batch), per_host))
            if not kept:
                raise ValueError(f"{name}: split {split!r} is empty")
        return kept

    def evaluate(params: Any) -> dict[str, float]:
        sums = None
        for batch in host_batches():
            m = eval_step(params, partitioning.global_batch(batch, mesh))
            sums = m if sums is None else jax.tree.map(jnp.add, sums, m)
        out = trainer_lib.summarize_metrics(jax.device_get(sums))
        if infer_examples:
            if "metrics" not in decoded:  # built once: its datasets and jit are reused
                decoded["metrics"] = seqio_metrics(
                    model,
                    name,
                    lengths,
                    batch_size=per_host,
                    num_examples=infer_examples,
                    split=split,
                    seed=seed,
                    use_cached=use_cached,
                )
            out.update(decoded["metrics"](params))
        return out

    return evaluate


def seqio_metrics(
    model: BaseModel,
    name: str,
    lengths: Mapping[str, int],
    batch_size: int,
    num_examples: int,
    split: str,
    seed: int,
    use_cached: bool = False,
) -> Callable[[Any], dict[str, float]]:
    """``params -> metrics``: the tasks' own metrics on greedy decodes (as long as the targets),
    via one seqio.Evaluator, which keeps its examples and the decode jit between evaluations."""
    import seqio

    evaluator = seqio.Evaluator(
        mixture_or_task_name=name,
        feature_converter=model.feature_converter(pack=False),
        eval_split=split,
        use_cached=use_cached,
        seed=seed,
        sequence_length=dict(lengths),
        num_examples=num_examples,
        logger_cls=(),
    )
    greedy = DecodeSettings(method="greedy", max_length=lengths["targets"])
    predict_jit = jax.jit(lambda p, b: model.predict_batch(p, b, greedy)[0])

    def metrics(params: Any) -> dict[str, float]:
        if not evaluator.eval_tasks:
            return {}

        def predict_fn(ds: Any) -> list[tuple[int, list[int]]]:
            out = []
            for chunk in ds.batch(batch_size):
                index, feats = chunk
                feats = to_numpy(feats)
                n = len(index)
                tokens = np.asarray(predict_jit(params, pad_batch(feats, batch_size)))[:n, 0]
                out += [
                    (int(i), t.tolist()) for i, t in zip(np.asarray(index), tokens, strict=True)
                ]
            return out

        all_metrics, _ = evaluator.evaluate(compute_metrics=True, predict_fn=predict_fn)
        results = all_metrics.result() if hasattr(all_metrics, "result") else all_metrics
        flat = {}
        for task, task_metrics in results.items():
            for key, value in task_metrics.items():
                v = getattr(value, "value", value)
                if isinstance(v, (int, float, np.floating)) and math.isfinite(float(v)):
                    flat[f"{task}/{key}"] = float(v)
        return flat

    return metrics
