"""The training binary: one stage (intermediate or target) of an experiment, from a laptop CPU to
a TPU pod, resumable after preemption without losing or repeating work.

    python -m t5x_xfer.train \
        --gin_file=gin/runs/intermediate.gin --gin_file=gin/models/codet5p_220m.gin \
        --gin.MODEL_DIR=\\"runs/mnli/seed0/intermediate\\" \
        --gin.MIXTURE_OR_TASK_NAME=\\"xfer_mix_mnli\\" [--gin.TRAIN_STEPS=1000] \
        [--multihost [--coordinator_address=H:P --process_count=N --process_index=I]]

Restore precedence (implemented once, in :func:`restore_source`):
  1. MODEL_DIR's latest checkpoint: params, optimizer state, step and data-iterator position
     (an interrupted run continues exactly);
  2. else INIT_CHECKPOINT: params only, optimizer fresh, step 0 (the previous stage's
     checkpoint, an imported Hugging Face checkpoint, or a Hugging Face directory);
  3. else HF_CHECKPOINT (the model gin file's pretrained weights: a hub id or directory);
  4. else random initialisation from SEED.

MODEL_DIR receives config.gin (the effective gin config), the numbered orbax checkpoints,
hf_assets/ (the tokenizer files, so infer and export need nothing else), TensorBoard events
under train/ and eval/, and train_metrics.jsonl / eval_metrics.jsonl (local dirs only).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gin
import jax
import jax.numpy as jnp
import numpy as np

from t5x_xfer import checkpoints, gin_utils, partitioning
from t5x_xfer import trainer as trainer_lib
from t5x_xfer.io_utils import write_atomic
from t5x_xfer.models import EncoderDecoderModel, T5Config

if __name__ == "__main__":  # pragma: no cover
    # ``python -m t5x_xfer.train``: run the package module instead, so gin registers the entry
    # function once (as t5x_xfer.train.train, the name the run files bind), not also __main__'s.
    from t5x_xfer.train import main as _package_main

    sys.exit(_package_main())

log = logging.getLogger("t5x_xfer.train")

# bfloat16 dense peak FLOP/s per device, for MFU (substring of jax's device_kind).
PEAK_FLOPS = {
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v5": 459e12,
    "TPU v6 lite": 918e12,
    "H100": 989e12,
    "H200": 989e12,
    "A100": 312e12,
}


def peak_flops(device: jax.Device) -> float | None:
    kind = device.device_kind
    for name, flops in PEAK_FLOPS.items():
        if name.lower() in kind.lower():
            return flops
    return None


def _is_remote(path: str) -> bool:
    return "://" in path


def _local_dir(path: str) -> Path | None:
    return None if _is_remote(path) else Path(path).expanduser().resolve()


# --------------------------------------------------------------------------------------------
# Data


def _check_task(name: str) -> None:
    import seqio

    if name in seqio.TaskRegistry.names() or name in seqio.MixtureRegistry.names():
        return
    from t5x_xfer import tasks

    raise ValueError(
        f"MIXTURE_OR_TASK_NAME {name!r} is not a registered seqio task or mixture; "
        f"mixtures: {', '.join(tasks.MIXTURES)}; tasks: {', '.join(tasks.TASKS)}"
    )


def get_dataset(
    name: str,
    task_feature_lengths: Mapping[str, int],
    split: str,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    num_epochs: int | None,
    pack: bool = True,
) -> Any:
    """This process's shard of ``name``, converted to EncDec features and batched."""
    import seqio

    ds = seqio.get_dataset(
        name,
        task_feature_lengths=dict(task_feature_lengths),
        feature_converter=seqio.EncDecFeatureConverter(pack=pack),
        dataset_split=split,
        shuffle=shuffle,
        num_epochs=num_epochs,
        shard_info=seqio.ShardInfo(index=jax.process_index(), num_shards=jax.process_count()),
        seed=seed,
        verbose=False,
    )
    return ds.batch(batch_size, drop_remainder=num_epochs is None)


def _to_numpy(batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in batch.items()}


def _pad_batch(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Zero-pad a final partial eval batch (zero loss weight) to the compiled batch size."""
    n = next(iter(batch.values())).shape[0]
    if n == size:
        return batch
    return {
        k: np.concatenate([v, np.zeros((size - n, *v.shape[1:]), v.dtype)])
        for k, v in batch.items()
    }


# --------------------------------------------------------------------------------------------
# Restore precedence


def restore_source(
    manager: Any, init_checkpoint: str | None, hf_checkpoint: str | None
) -> tuple[str, Any]:
    """Where the run's starting point comes from: ("resume", step), ("init", path),
    ("hf", id_or_dir) or ("random", None). See the module docstring."""
    latest = manager.latest_step()
    if latest is not None:
        return "resume", latest
    if init_checkpoint:
        return "init", init_checkpoint
    if hf_checkpoint:
        return "hf", hf_checkpoint
    return "random", None


def _load_init_params(source: str, path: str, config: T5Config, abstract: Any) -> Any:
    """Params from an orbax checkpoint or a Hugging Face dir/hub id, shape-checked and sharded."""
    from t5x_xfer import hf

    local = Path(path).expanduser()
    if source == "hf" or (local / "config.json").is_file():
        hf_config, params, _ = hf.load_hf(path)
        checkpoints.check_shapes(params, abstract, f"Hugging Face checkpoint {path}")
        differs = {
            k: (v, getattr(config, k))
            for k, v in hf_config.to_dict().items()
            if k not in ("dropout_rate", "dtype") and getattr(config, k, v) != v
        }
        if differs:
            raise ValueError(f"{path}: config differs from the model's: {differs}")
        return jax.tree.map(lambda x, a: jax.device_put(x, a.sharding), params, abstract)
    return checkpoints.load_params(path, target=abstract)


def _copy_assets(model_dir: Any, init_checkpoint: str | None, vocabulary: Any) -> None:
    """Put the tokenizer files in MODEL_DIR/hf_assets so later stages need only the dir.

    Sources, first found: the initial checkpoint's hf_assets (or the HF dir itself), then the
    vocabulary's own file (tokenizer.json or SentencePiece model). Works on gs:// too.
    """
    from t5x_xfer import hf

    dest = model_dir / hf.ASSETS_DIR
    if dest.exists():
        return
    candidates = []
    if init_checkpoint:
        root = checkpoints.as_path(init_checkpoint)
        candidates += [root / hf.ASSETS_DIR, root.parent / hf.ASSETS_DIR, root]
    for attr in ("_source", "sentencepiece_model_file"):
        source = getattr(vocabulary, attr, None)
        if isinstance(source, str) and source:
            candidates.append(checkpoints.as_path(source))
    for cand in candidates:
        if not cand.exists():
            continue
        if cand.is_dir():
            files = {f: f.name for f in (cand / n for n in hf.TOKENIZER_FILES) if f.exists()}
        else:
            files = {cand: "spiece.model" if cand.suffix == ".model" else "tokenizer.json"}
        if files:
            tmp = model_dir / (hf.ASSETS_DIR + ".tmp")
            tmp.mkdir(parents=True, exist_ok=True)
            for f, name in files.items():
                (tmp / name).write_bytes(f.read_bytes())
            tmp.rename(dest)
            return


# --------------------------------------------------------------------------------------------
# Metrics output


class MetricsWriter:
    """Console progress, TensorBoard events and JSONL for one split (process 0 only)."""

    def __init__(self, model_dir: str, split: str, resume_step: int | None) -> None:
        self.enabled = jax.process_index() == 0
        self.jsonl: Path | None = None
        self.tb = None
        if not self.enabled:
            return
        import tensorflow as tf

        self.tb = tf.summary.create_file_writer(os.path.join(model_dir, split))
        local = _local_dir(model_dir)
        if local is not None:
            self.jsonl = local / f"{split}_metrics.jsonl"
            if self.jsonl.exists():  # drop records past the restored step (they are redone)
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


# --------------------------------------------------------------------------------------------
# The entry function


@gin.configurable
def train(
    *,
    model_dir: str = gin.REQUIRED,
    mixture_or_task_name: str = gin.REQUIRED,
    model_config: T5Config = gin.REQUIRED,
    vocabulary: Any = gin.REQUIRED,
    data_dir: str = "data",
    task_feature_lengths: Mapping[str, int] = gin.REQUIRED,
    batch_size: int = 128,
    train_steps: int = gin.REQUIRED,
    num_microbatches: int = 1,
    seed: int = 0,
    init_checkpoint: str | None = None,
    hf_checkpoint: str | None = None,
    mesh_shape: tuple[int, int, int] = (-1, 1, 1),
    label_smoothing: float = 0.0,
    z_loss: float = 1e-4,
    save_every: int = 1000,
    keep_checkpoints: int | None = 3,
    keep_best: int = 0,
    best_metric: str = "eval/loss",
    best_mode: str = "min",
    async_checkpointing: bool = True,
    log_every: int = 50,
    eval_every: int = 0,
    eval_steps: int = 20,
    eval_split: str = "validation",
    infer_eval_examples: int = 0,
    peak_flops_per_device: float | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train ``model_config`` on ``mixture_or_task_name`` for ``train_steps`` steps.

    ``batch_size`` is global (all processes) and must divide by the data-parallel size times
    ``num_microbatches``; ``mesh_shape`` is (data, fsdp, model) with one -1 to fill;
    ``eval_every`` > 0 runs teacher-forced eval on ``eval_split`` for ``eval_steps`` batches and,
    when ``infer_eval_examples`` > 0, the task's seqio metrics on that many decoded examples.
    ``stop_after`` ends the process early at that step (after saving), for tests and debugging.
    Returns the final train (and eval) metrics.
    """
    # ---- validate everything before any work ------------------------------------------
    if not isinstance(model_config, T5Config):
        raise TypeError(f"model_config must be a T5Config, got {type(model_config).__name__}")
    for name, value, low in (
        ("train_steps", train_steps, 0),
        ("batch_size", batch_size, 1),
        ("num_microbatches", num_microbatches, 1),
        ("save_every", save_every, 1),
        ("log_every", log_every, 1),
        ("eval_every", eval_every, 0),
    ):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if set(task_feature_lengths) != {"inputs", "targets"}:
        raise ValueError(
            "task_feature_lengths must have keys 'inputs' and 'targets', "
            f"got {dict(task_feature_lengths)}"
        )
    mesh = partitioning.make_mesh(*mesh_shape)
    dp = partitioning.data_parallel_size(mesh)
    if batch_size % (dp * num_microbatches):
        raise ValueError(
            f"batch_size {batch_size} must divide by data-parallel size {dp} x "
            f"num_microbatches {num_microbatches}"
        )
    if batch_size % jax.process_count():
        raise ValueError(f"batch_size {batch_size} must divide by {jax.process_count()} processes")

    with partitioning.activate(mesh):
        from t5x_xfer import tasks

        tasks.register_all(vocabulary, data_dir)
        _check_task(mixture_or_task_name)

        model = EncoderDecoderModel(model_config)
        abstract = model.abstract_params()
        p_shardings = partitioning.param_shardings(model.logical_axes(), abstract, mesh)
        abstract_params = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, p_shardings
        )
        schedule = trainer_lib.make_schedule()
        optimizer = trainer_lib.make_optimizer(schedule)
        abstract_opt = jax.eval_shape(optimizer.init, abstract)
        o_shardings = partitioning.opt_state_shardings(
            optimizer, abstract_opt, p_shardings, abstract, mesh
        )
        abstract_opt_state = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            abstract_opt,
            o_shardings,
        )
        replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        state_shardings = trainer_lib.TrainState(
            step=replicated, params=p_shardings, opt_state=o_shardings
        )

        manager = checkpoints.train_manager(
            model_dir,
            keep=keep_checkpoints,
            keep_best=keep_best,
            best_metric=best_metric if keep_best else None,
            best_mode=best_mode,
            async_save=async_checkpointing,
        )
        source, where = restore_source(manager, init_checkpoint, hf_checkpoint)
        init_params = None
        if source in ("init", "hf"):  # shape mismatches fail here, before training
            init_params = _load_init_params(source, where, model_config, abstract_params)

        # ---- set up -----------------------------------------------------------------------
        local_dir = _local_dir(model_dir)
        if jax.process_index() == 0:
            out_dir = checkpoints.as_path(model_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            if local_dir is not None:
                write_atomic(local_dir / "config.gin", gin.config_str())
            else:
                (out_dir / "config.gin").write_text(gin.config_str())
            _copy_assets(
                out_dir, init_checkpoint if source == "init" else hf_checkpoint, vocabulary
            )

        if source == "resume":
            params, opt_state, meta = checkpoints.restore_train_state(
                manager, where, abstract_params, abstract_opt_state
            )
            start = int(meta["step"])
            log.info("resuming %s from step %d", model_dir, start)
        else:
            if init_params is None:
                init_fn = jax.jit(model.init_params, out_shardings=p_shardings)
                params = init_fn(jax.random.PRNGKey(seed))
            else:
                params = init_params
            opt_state = jax.jit(optimizer.init, out_shardings=o_shardings)(params)
            start = 0
            log.info(
                "starting %s at step 0 from %s",
                model_dir,
                {"init": f"INIT_CHECKPOINT {where}", "hf": f"HF_CHECKPOINT {where}"}.get(
                    source, f"random init (seed {seed})"
                ),
            )
        # The data position: the seeded pipeline replayed past the batches already trained on
        # (tf.data iterator snapshots cannot hold the tokenizer's py_function), so a resumed
        # run sees exactly the batches an uninterrupted one would.
        per_host = batch_size // jax.process_count()
        train_ds = get_dataset(
            mixture_or_task_name,
            task_feature_lengths,
            "train",
            per_host,
            shuffle=True,
            seed=seed,
            num_epochs=None,
        )
        if start:
            log.info("replaying the data pipeline past %d batches", start)
        iterator = iter(train_ds.skip(start))
        state = trainer_lib.TrainState(
            step=jnp.asarray(start, jnp.int32), params=params, opt_state=opt_state
        )
        state = jax.device_put(state, state_shardings)

        loss_opts = trainer_lib.LossOptions(label_smoothing=label_smoothing, z_loss=z_loss)
        step_fn = trainer_lib.make_train_step(
            model,
            optimizer,
            schedule,
            num_microbatches=num_microbatches,
            loss=loss_opts,
            dropout_seed=seed,
        )
        b_sharding = partitioning.batch_sharding(mesh)
        train_step = jax.jit(
            step_fn,
            in_shardings=(state_shardings, b_sharding),
            out_shardings=(state_shardings, replicated),
            donate_argnums=(0,),
        )
        n_devices = jax.device_count()
        flops_per_step = batch_size * trainer_lib.model_flops_per_token_pair(
            model_config, task_feature_lengths["inputs"], task_feature_lengths["targets"]
        )
        peak = peak_flops_per_device or peak_flops(jax.devices()[0])
        tokens_per_step = batch_size * (
            task_feature_lengths["inputs"] + task_feature_lengths["targets"]
        )

        train_writer = MetricsWriter(model_dir, "train", start if source == "resume" else None)
        eval_writer = MetricsWriter(model_dir, "eval", start if source == "resume" else None)
        evaluate = _make_evaluator(
            model,
            mesh,
            mixture_or_task_name,
            task_feature_lengths,
            per_host,
            eval_split,
            eval_steps,
            infer_eval_examples,
            seed,
            loss_opts,
        )

        preempted = {"flag": False}

        def on_sigterm(signum: int, frame: Any) -> None:
            preempted["flag"] = True

        previous = signal.signal(signal.SIGTERM, on_sigterm) if _main_thread() else None

        def save(step: int, metrics: dict[str, float] | None = None) -> None:
            checkpoints.save_train_state(
                manager,
                step,
                state.params,
                state.opt_state,
                model_config,
                {
                    "step": step,
                    "batches_drawn": step,
                    "mixture_or_task_name": mixture_or_task_name,
                    "seed": seed,
                },
                metrics=metrics,
            )

        # ---- the loop -----------------------------------------------------------------------
        from tqdm.auto import tqdm

        bar = tqdm(
            total=train_steps,
            initial=start,
            desc=f"train {Path(model_dir).name}",
            disable=not progress or jax.process_index() != 0,
            dynamic_ncols=True,
        )
        last: dict[str, float] = {}
        eval_last: dict[str, float] = {}
        acc: dict[str, Any] | None = None
        t_mark, steps_since, n_acc = None, 0, 0
        step = start
        if start == 0 and train_steps == 0:
            save(0)
        try:
            while step < train_steps:
                batch = partitioning.global_batch(_to_numpy(next(iterator)), mesh)
                state, metrics = train_step(state, batch)
                step += 1
                acc = metrics if acc is None else jax.tree.map(jnp.add, acc, metrics)
                n_acc += 1
                if t_mark is None:  # throughput starts after the compiling first step
                    jax.block_until_ready(metrics)
                    t_mark, steps_since = time.perf_counter(), 0
                else:
                    steps_since += 1
                bar.update(1)
                if step % log_every == 0 or step == train_steps:
                    sums = jax.device_get(acc)
                    last = trainer_lib.summarize_metrics(sums)
                    last["learning_rate"] = float(metrics["learning_rate"])
                    last["grad_norm"] = float(sums["grad_norm"]) / n_acc
                    if steps_since:
                        dt = time.perf_counter() - t_mark
                        last["steps_per_second"] = steps_since / dt
                        last["tokens_per_second"] = steps_since * tokens_per_step / dt
                        if peak:
                            last["mfu"] = steps_since * flops_per_step / dt / (peak * n_devices)
                        t_mark, steps_since = time.perf_counter(), 0
                    train_writer.write(step, last)
                    bar.set_postfix(
                        loss=f"{last['loss']:.3f}",
                        acc=f"{last['accuracy']:.3f}",
                        lr=f"{last['learning_rate']:.2g}",
                        tok_s=f"{last.get('tokens_per_second', 0):.0f}",
                        refresh=False,
                    )
                    acc, n_acc = None, 0
                ckpt_metrics = None
                if eval_every and (step % eval_every == 0 or step == train_steps):
                    eval_last = evaluate(state.params)
                    eval_writer.write(step, eval_last)
                    ckpt_metrics = {f"eval/{k}": v for k, v in eval_last.items()}
                    log.info("step %d eval %s", step, _fmt(eval_last))
                if step % save_every == 0 or step == train_steps or preempted["flag"]:
                    save(step, ckpt_metrics)
                if preempted["flag"]:
                    manager.wait_until_finished()
                    log.warning("SIGTERM: saved step %d; exiting for restart", step)
                    raise SystemExit(143)
                if stop_after is not None and step >= stop_after:
                    manager.wait_until_finished()
                    break
            manager.wait_until_finished()
        finally:
            bar.close()
            train_writer.close()
            eval_writer.close()
            manager.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        summary = {"step": step, "train": last, "eval": eval_last, "restored_from": source}
        if jax.process_index() == 0 and step >= train_steps:
            text = json.dumps(summary, indent=2) + "\n"
            if local_dir is not None:
                write_atomic(local_dir / "summary.json", text)
            else:
                (checkpoints.as_path(model_dir) / "summary.json").write_text(text)
        return summary


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _fmt(metrics: Mapping[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items())


def _make_evaluator(
    model: EncoderDecoderModel,
    mesh: Any,
    name: str,
    lengths: Mapping[str, int],
    per_host: int,
    split: str,
    eval_steps: int,
    infer_examples: int,
    seed: int,
    loss_opts: trainer_lib.LossOptions,
) -> Any:
    """A function params -> eval metrics: teacher-forced loss/accuracy over ``eval_steps``
    batches of ``split``, plus seqio metrics of greedy predictions on ``infer_examples``."""
    b_sharding = partitioning.batch_sharding(mesh)
    eval_step = jax.jit(
        trainer_lib.make_eval_step(model, loss_opts), in_shardings=(None, b_sharding)
    )

    def evaluate(params: Any) -> dict[str, float]:
        ds = get_dataset(name, lengths, split, per_host, shuffle=False, seed=seed, num_epochs=1)
        sums = None
        for i, batch in enumerate(ds):
            if i >= eval_steps:
                break
            b = partitioning.global_batch(_pad_batch(_to_numpy(batch), per_host), mesh)
            m = eval_step(params, b)
            sums = m if sums is None else jax.tree.map(jnp.add, sums, m)
        if sums is None:
            raise ValueError(f"{name}: split {split!r} is empty")
        out = trainer_lib.summarize_metrics(jax.device_get(sums))
        if infer_examples:
            out.update(
                _seqio_metrics(
                    model,
                    params,
                    name,
                    lengths,
                    batch_size=per_host,
                    num_examples=infer_examples,
                    split=split,
                    seed=seed,
                )
            )
        return out

    return evaluate


def _seqio_metrics(
    model: EncoderDecoderModel,
    params: Any,
    name: str,
    lengths: Mapping[str, int],
    batch_size: int,
    num_examples: int,
    split: str,
    seed: int,
) -> dict[str, float]:
    """The tasks' own metrics (accuracy, SQuAD F1, ROUGE...) on greedy decodes, via seqio."""
    import seqio

    predict = getattr(model, "predict_batch", None)
    if predict is None:
        log.warning("this model has no predict_batch yet; seqio metrics skipped")
        return {}
    evaluator = seqio.Evaluator(
        mixture_or_task_name=name,
        feature_converter=seqio.EncDecFeatureConverter(pack=False),
        eval_split=split,
        use_cached=False,
        seed=seed,
        sequence_length=dict(lengths),
        num_examples=num_examples,
        logger_cls=(),
    )
    if not evaluator.eval_tasks:
        return {}
    predict_jit = jax.jit(lambda p, b: predict(p, b, method="greedy")[0])

    def predict_fn(ds: Any) -> list[tuple[int, list[int]]]:
        out = []
        for chunk in ds.batch(batch_size):
            index, feats = chunk
            feats = _to_numpy(feats)
            n = len(index)
            tokens = np.asarray(predict_jit(params, _pad_batch(feats, batch_size)))[:n, 0]
            out += [(int(i), t.tolist()) for i, t in zip(np.asarray(index), tokens, strict=True)]
        return out

    all_metrics, _ = evaluator.evaluate(compute_metrics=True, predict_fn=predict_fn)
    results = all_metrics.result() if hasattr(all_metrics, "result") else all_metrics
    flat = {}
    for task, metrics in results.items():
        for key, value in metrics.items():
            v = getattr(value, "value", value)
            if isinstance(v, (int, float, np.floating)) and math.isfinite(float(v)):
                flat[f"{task}/{key}"] = float(v)
    return flat


# --------------------------------------------------------------------------------------------
# CLI


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    files, bindings, rest = gin_utils.split_flags(argv)
    parser = argparse.ArgumentParser(
        prog="python -m t5x_xfer.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gin_search_paths", default="", help="comma-separated extra paths")
    parser.add_argument("--multihost", action="store_true", help="call jax.distributed.initialize")
    parser.add_argument("--coordinator_address", default=None)
    parser.add_argument("--process_count", type=int, default=None)
    parser.add_argument("--process_index", type=int, default=None)
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args(rest)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not files:
        parser.error("give at least one --gin_file (a run file and a model file)")
    if args.multihost:
        partitioning.initialize_distributed(
            args.coordinator_address, args.process_count, args.process_index
        )
    try:
        if args.no_progress:
            bindings.append("t5x_xfer.train.train.progress=False")
        gin_utils.parse(files, bindings, [p for p in args.gin_search_paths.split(",") if p])
        summary = train()
    except (ValueError, FileNotFoundError, KeyError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
