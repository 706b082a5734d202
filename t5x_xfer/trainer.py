"""The trainer: train state, the jitted train and eval steps, metrics output and the step loop.

The steps are pure and sharding-agnostic (``t5x_xfer.train`` jits them with the shardings from
``t5x_xfer.partitioning``), so the same step runs on one CPU or a TPU pod. :class:`Trainer`
is the loop alone (T5X keeps setup apart from the loop too): it takes a jitted step, an
iterator of global batches, a checkpointer and metric writers, and knows nothing of gin,
tasks or restore precedence (``t5x_xfer.train_state``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from t5x_xfer.checkpoints import TrainCheckpointer, local_dir
from t5x_xfer.io_utils import write_atomic
from t5x_xfer.models import BaseModel

log = logging.getLogger("t5x_xfer.train")

Array = jax.Array
LOG_WINDOW = "log_window"  # step metadata: the metric sums since the last log
Batch = dict[str, Array]


class TrainState(flax.struct.PyTreeNode):
    """What a checkpoint must hold to continue bit-exactly (besides the data iterator)."""

    step: Array
    params: Any
    opt_state: Any


@dataclasses.dataclass(frozen=True)
class LossOptions:
    label_smoothing: float = 0.0
    z_loss: float = 0.0


def _split_microbatches(batch: Batch, num: int) -> Batch:
    def split(x: Array) -> Array:
        if x.shape[0] % num:
            raise ValueError(f"batch size {x.shape[0]} is not divisible by {num} microbatches")
        return x.reshape(num, x.shape[0] // num, *x.shape[1:])

    return {k: split(v) for k, v in batch.items()}


def make_train_step(
    model: BaseModel,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
    *,
    num_microbatches: int = 1,
    loss: LossOptions = LossOptions(),
    dropout_seed: int = 0,
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]]:
    """``step(state, batch) -> (state, metrics)``: gradients of the loss summed over weighted
    target tokens, divided by the whole batch's token count, so accumulating over
    ``num_microbatches`` gives the same update as one big batch.

    Dropout keys derive from ``(dropout_seed, step, microbatch)``, so a resumed run draws the
    same masks as an uninterrupted one.
    """
    base_key = jax.random.PRNGKey(dropout_seed)
    use_dropout = model.uses_dropout

    def micro_grads(params: Any, micro: Batch, key: Array) -> tuple[Any, dict[str, Array]]:
        def loss_sum(p: Any) -> tuple[Array, dict[str, Array]]:
            _, metrics = model.loss_fn(
                p,
                micro,
                dropout_rng=key if use_dropout else None,
                label_smoothing=loss.label_smoothing,
                z_loss=loss.z_loss,
            )
            return metrics["loss_sum"], metrics

        grads, metrics = jax.grad(loss_sum, has_aux=True)(params)
        return grads, metrics

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Array]]:
        step_key = jax.random.fold_in(base_key, state.step)
        if num_microbatches == 1:
            grads, metrics = micro_grads(state.params, batch, step_key)
        else:
            micros = _split_microbatches(batch, num_microbatches)

            def body(carry: Any, xs: tuple[Batch, Array]) -> tuple[Any, None]:
                acc_g, acc_m = carry
                micro, i = xs
                g, m = micro_grads(state.params, micro, jax.random.fold_in(step_key, i))
                return (jax.tree.map(jnp.add, acc_g, g), jax.tree.map(jnp.add, acc_m, m)), None

            zeros_g = jax.tree.map(jnp.zeros_like, state.params)
            zeros_m = jax.tree.map(
                lambda s: jnp.zeros(s.shape, s.dtype),
                jax.eval_shape(
                    lambda: micro_grads(
                        state.params, jax.tree.map(lambda x: x[0], micros), step_key
                    )[1]
                ),
            )
            (grads, metrics), _ = jax.lax.scan(
                body, (zeros_g, zeros_m), (micros, jnp.arange(num_microbatches))
            )
        denom = jnp.maximum(metrics["target_tokens"], 1.0)
        grads = jax.tree.map(lambda g: g / denom, grads)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        out = {
            **metrics,
            "learning_rate": schedule(state.step),
            "grad_norm": optax.global_norm(grads),
        }
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), out

    return step


def make_eval_step(
    model: BaseModel, loss: LossOptions = LossOptions()
) -> Callable[[Any, Batch], dict[str, Array]]:
    """Teacher-forced metric sums of one batch (no dropout)."""

    def step(params: Any, batch: Batch) -> dict[str, Array]:
        return model.loss_fn(
            params, batch, label_smoothing=loss.label_smoothing, z_loss=loss.z_loss
        )[1]

    return step


def summarize_metrics(sums: dict[str, Any]) -> dict[str, float]:
    """Per-token means from summed metrics (loss, z_loss, accuracy) plus passthrough scalars."""
    tokens = max(float(sums["target_tokens"]), 1.0)
    out = {
        "loss": float(sums["loss_sum"]) / tokens,
        "z_loss": float(sums["z_loss_sum"]) / tokens,
        "accuracy": float(sums["correct_tokens"]) / tokens,
        "target_tokens": float(sums["target_tokens"]),
    }
    for key in ("learning_rate", "grad_norm"):
        if key in sums:
            out[key] = float(sums[key])
    return out


# --------------------------------------------------------------------------------------------
# Metrics output


class MetricsWriter:
    """Console-free metrics of one split: TensorBoard events and ``<split>_metrics.jsonl``
    (local run dirs only), written by process 0. On resume, JSONL records past the restored
    step are dropped, since those steps are redone."""

    def __init__(self, model_dir: str, split: str, resume_step: int | None) -> None:
        self.enabled = jax.process_index() == 0
        self.jsonl: Path | None = None
        self.tb = None
        if not self.enabled:
            return
        import tensorflow as tf

        self.tb = tf.summary.create_file_writer(os.path.join(model_dir, split))
        local = local_dir(model_dir)
        if local is not None:
            self.jsonl = local / f"{split}_metrics.jsonl"
            if self.jsonl.exists():
                keep = [
                    line
                    for line in self.jsonl.read_text().splitlines()
                    if line.strip()
                    and resume_step is not None
                    and _json_step(line) is not None
                    and _json_step(line) <= resume_step
                ]
                write_atomic(self.jsonl, "".join(x + "\n" for x in keep))

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        import tensorflow as tf

        with self.tb.as_default(step=step):
            for key, value in metrics.items():
                if value is not None and np.isfinite(value):
                    tf.summary.scalar(key, value)
        self.tb.flush()
        if self.jsonl is not None:
            with open(self.jsonl, "a") as f:
                f.write(json.dumps({"step": step, **metrics}) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _json_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _fmt(metrics: Mapping[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items())


# --------------------------------------------------------------------------------------------
# The loop


@dataclasses.dataclass(frozen=True)
class LoopOptions:
    """When the loop logs, evaluates, saves and stops (``stop_after``: end early at that
    step, after the save ``save_every`` asks for there, if any; for tests and debugging)."""

    train_steps: int
    log_every: int = 50
    save_every: int = 1000
    eval_every: int = 0
    stop_after: int | None = None
    progress: bool = True
    desc: str = "train"


@dataclasses.dataclass(frozen=True)
class Throughput:
    """What one step computes, for tokens/s and MFU (``peak_flops``: all devices; None: no
    MFU, e.g. a CPU)."""

    tokens_per_step: float
    flops_per_step: float
    peak_flops: float | None = None


@jax.jit
def _add_metrics(acc: dict[str, Array], metrics: dict[str, Array]) -> dict[str, Array]:
    """The log window's running sums, one dispatch per step (not one per metric)."""
    return jax.tree.map(jnp.add, acc, metrics)


class Trainer:
    """The step loop: train steps on the batches, metrics every ``log_every`` steps,
    evaluation every ``eval_every``, a checkpoint every ``save_every`` and at the end; SIGTERM
    (preemption) saves the current step and exits with 143 so the run resumes where it was."""

    def __init__(
        self,
        step_fn: Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]],
        checkpointer: TrainCheckpointer,
        options: LoopOptions,
        *,
        throughput: Throughput,
        train_writer: MetricsWriter | None = None,
        eval_writer: MetricsWriter | None = None,
        evaluate: Callable[[Any], dict[str, float]] | None = None,
    ) -> None:
        self.step_fn = step_fn
        self.checkpointer = checkpointer
        self.options = options
        self.throughput = throughput
        self.train_writer = train_writer
        self.eval_writer = eval_writer
        self.evaluate = evaluate
        self.preempted = False

    def run(
        self,
        state: TrainState,
        start: int,
        batches: Iterator[Batch],
        log_window: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Train from step ``start`` to ``train_steps``; returns the step reached and the last
        train and eval metrics. Closes the checkpointer and writers when done.
        ``log_window``: the metric sums of the steps since the last log, as saved with the
        checkpoint resumed from (``LOG_WINDOW`` in its metadata), so that a run restarted at a
        step that is not a multiple of ``log_every`` logs the same windows as one that was not
        interrupted."""
        on_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, self._on_sigterm) if on_main else None
        from tqdm.auto import tqdm

        opts = self.options
        bar = tqdm(
            total=opts.train_steps,
            initial=start,
            desc=opts.desc,
            disable=not opts.progress or jax.process_index() != 0,
            dynamic_ncols=True,
        )
        try:
            if start == 0 and opts.train_steps == 0:
                self.checkpointer.save(0, state)
            out = self._loop(state, start, batches, bar, log_window)
            self.checkpointer.wait()
        finally:
            bar.close()
            for writer in (self.train_writer, self.eval_writer):
                if writer is not None:
                    writer.close()
            self.checkpointer.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return out

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.preempted = True

    def _loop(
        self,
        state: TrainState,
        start: int,
        batches: Iterator[Batch],
        bar: Any,
        log_window: Mapping[str, Any] | None,
    ) -> dict:
        opts, tp = self.options, self.throughput
        last: dict[str, float] = {}
        eval_last: dict[str, float] = {}
        acc: dict[str, Any] | None = None
        t_mark, steps_since, n_acc = None, 0, 0
        if log_window:  # float32 sums survive JSON exactly (float64)
            acc = {
                k: jnp.asarray(v, log_window["dtypes"][k]) for k, v in log_window["sums"].items()
            }
            n_acc = int(log_window["n"])
        step = start
        while step < opts.train_steps:
            state, metrics = self.step_fn(state, next(batches))
            step += 1
            acc = metrics if acc is None else _add_metrics(acc, metrics)
            n_acc += 1
            if t_mark is None:  # throughput starts after the compiling first step
                jax.block_until_ready(metrics)
                t_mark, steps_since = time.perf_counter(), 0
            else:
                steps_since += 1
            bar.update(1)
            if step % opts.log_every == 0 or step == opts.train_steps:
                sums = jax.device_get(acc)
                last = summarize_metrics(sums)
                last["learning_rate"] = float(metrics["learning_rate"])
                last["grad_norm"] = float(sums["grad_norm"]) / n_acc
                if steps_since:
                    dt = time.perf_counter() - t_mark
                    last["steps_per_second"] = steps_since / dt
                    last["tokens_per_second"] = steps_since * tp.tokens_per_step / dt
                    if tp.peak_flops:
                        last["mfu"] = steps_since * tp.flops_per_step / dt / tp.peak_flops
                    t_mark, steps_since = time.perf_counter(), 0
                self._write(self.train_writer, step, last)
                bar.set_postfix(
                    loss=f"{last['loss']:.3f}",
                    acc=f"{last['accuracy']:.3f}",
                    lr=f"{last['learning_rate']:.2g}",
                    tok_s=f"{last.get('tokens_per_second', 0):.0f}",
                    refresh=False,
                )
                acc, n_acc = None, 0
            ckpt_metrics = None
            if self._eval_due(step):
                eval_last = self.evaluate(state.params)
                self._write(self.eval_writer, step, eval_last)
                ckpt_metrics = {f"eval/{k}": v for k, v in eval_last.items()}
                log.info("step %d eval %s", step, _fmt(eval_last))
            if step % opts.save_every == 0 or step == opts.train_steps or self.preempted:
                extra = None
                if acc is not None and step % opts.log_every:  # a window left open
                    sums = jax.device_get(acc)
                    extra = {
                        LOG_WINDOW: {
                            "n": n_acc,
                            "sums": {k: float(v) for k, v in sums.items()},
                            "dtypes": {k: str(np.asarray(v).dtype) for k, v in sums.items()},
                        }
                    }
                self.checkpointer.save(step, state, ckpt_metrics, extra)
            if self.preempted:
                self.checkpointer.wait()
                log.warning("SIGTERM: saved step %d; exiting for restart", step)
                raise SystemExit(143)
            if opts.stop_after is not None and step >= opts.stop_after:
                break
        return {"step": step, "train": last, "eval": eval_last}

    def _eval_due(self, step: int) -> bool:
        every, end = self.options.eval_every, self.options.train_steps
        return bool(self.evaluate and every and (step % every == 0 or step == end))

    @staticmethod
    def _write(writer: MetricsWriter | None, step: int, metrics: Mapping[str, float]) -> None:
        if writer is not None:
            writer.write(step, metrics)
