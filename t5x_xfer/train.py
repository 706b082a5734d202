"""The training binary: one stage (intermediate or target) of an experiment, from a laptop CPU to
a TPU pod, resumable after preemption without losing or repeating work.

    python -m t5x_xfer.train \
        --gin_file=gin/runs/intermediate.gin --gin_file=gin/models/codet5p_220m.gin \
        --gin.MODEL_DIR=\\"runs/mnli/seed0/intermediate\\" \
        --gin.MIXTURE_OR_TASK_NAME=\\"xfer_mix_mnli\\" [--gin.TRAIN_STEPS=1000] \
        [--multihost [--coordinator_address=H:P --process_count=N --process_index=I]]

Restore precedence is implemented once, in ``t5x_xfer.train_state`` (MODEL_DIR's latest
checkpoint, else INIT_CHECKPOINT's params, else HF_CHECKPOINT, else a random init from SEED).

MODEL_DIR receives config.gin (the effective gin config), the numbered orbax checkpoints,
hf_assets/ (the tokenizer files, so infer and export need nothing else), TensorBoard events
under train/ and eval/, and train_metrics.jsonl / eval_metrics.jsonl (local dirs only).

:func:`train` is plain Python that takes built objects (a model, an optimizer, a mesh...);
this binary attaches gin to it, as T5X does, so the gin files bind ``train.model``,
``train.optimizer`` and so on.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import optax

from t5x_xfer import checkpoints, data_position, gin_utils, host, logs, partitioning, train_state
from t5x_xfer import trainer as trainer_lib
from t5x_xfer.io_utils import check_output_dir
from t5x_xfer.models import BaseModel

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


def _check_arguments(task_feature_lengths: Mapping[str, int], **ints: Any) -> None:
    """Every integer setting and the feature lengths, before any work."""
    lows = {"train_steps": 0, "eval_every": 0}
    for name, value in ints.items():
        low = lows.get(name, 1)
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if set(task_feature_lengths) != {"inputs", "targets"}:
        raise ValueError(
            "task_feature_lengths must have keys 'inputs' and 'targets', "
            f"got {dict(task_feature_lengths)}"
        )
    if ints["batch_size"] % jax.process_count():
        raise ValueError(
            f"batch_size {ints['batch_size']} must divide by {jax.process_count()} processes"
        )


def _train_batches(
    name: str,
    model: BaseModel,
    lengths: Mapping[str, int],
    per_host: int,
    seed: int,
    mesh: jax.sharding.Mesh,
    model_dir: str,
    use_cached: bool = False,
) -> data_position.DataIterator:
    """Global training batches of this process's shard, whose position is saved with each
    checkpoint when the pipeline allows it (cached tasks; see ``t5x_xfer.data_position``)."""
    from t5x_xfer.tasks.batches import get_dataset, to_numpy

    ds = get_dataset(
        name,
        model.feature_converter(pack=True),
        lengths,
        "train",
        per_host,
        shuffle=True,
        seed=seed,
        num_epochs=None,
        shard_index=jax.process_index(),
        num_shards=jax.process_count(),
        use_cached=use_cached,
    )
    return data_position.DataIterator(
        ds,
        lambda batch: partitioning.global_batch(to_numpy(batch), mesh),
        model_dir,
        jax.process_index(),
        saveable=use_cached,
    )


def _write_run_files(
    model_dir: str, run_config: str | None, assets_from: str | None, vocabulary: Any
) -> None:
    """config.gin and hf_assets/ in MODEL_DIR (process 0), before the first step."""
    if jax.process_index() != 0:
        return
    checkpoints.as_path(model_dir).mkdir(parents=True, exist_ok=True)
    if run_config is not None:
        checkpoints.write_text(f"{model_dir.rstrip('/')}/config.gin", run_config)
    checkpoints.copy_assets(model_dir, [assets_from], vocabulary)


def _throughput(
    model: BaseModel, batch_size: int, lengths: Mapping[str, int], peak_per_device: float | None
) -> trainer_lib.Throughput:
    """Tokens and model FLOPs of one step, and the devices' peak (None: no MFU, e.g. CPU)."""
    peak = peak_per_device or peak_flops(jax.devices()[0])
    return trainer_lib.Throughput(
        tokens_per_step=batch_size * sum(lengths.values()),
        flops_per_step=batch_size * model.flops_per_example(lengths),
        peak_flops=peak * jax.device_count() if peak else None,
    )


def _start_state(
    init: train_state.TrainStateInitializer,
    manager: Any,
    source: str,
    where: Any,
    init_params: Any,
    seed: int,
    model_dir: str,
) -> tuple[trainer_lib.TrainState, int, dict[str, Any] | None]:
    """The state the loop starts from (see restore precedence), its step, and the open
    logging window saved with it."""
    if source == "resume":
        state, meta = init.resume(manager, model_dir)
        log.info("resuming %s from step %d", model_dir, int(meta["step"]))
        return state, int(meta["step"]), meta.get(trainer_lib.LOG_WINDOW)
    state = init.from_params(init_params, seed)
    origin = {"init": f"INIT_CHECKPOINT {where}", "hf": f"HF_CHECKPOINT {where}"}
    origin_text = origin.get(source, f"random init (seed {seed})")
    log.info("starting %s at step 0 from %s", model_dir, origin_text)
    return state, 0, None


def train(
    *,
    model_dir: str,
    model: BaseModel,
    vocabulary: Any,
    mixture_or_task_name: str,
    task_feature_lengths: Mapping[str, int],
    train_steps: int,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
    mesh: jax.sharding.Mesh | None = None,
    data_dir: str = "data",
    task_cache_dir: str | None = None,
    batch_size: int = 128,
    num_microbatches: int = 1,
    seed: int = 0,
    init_checkpoint: str | None = None,
    hf_checkpoint: str | None = None,
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
    run_config: str | None = None,
) -> dict[str, Any]:
    """Train ``model`` on ``mixture_or_task_name`` for ``train_steps`` steps.

    ``batch_size`` is global (all processes) and must divide by the data-parallel size of
    ``mesh`` (default: every device data-parallel) times ``num_microbatches``. ``schedule`` is
    the learning rate the ``optimizer`` follows (logged); ``eval_every`` > 0 runs
    teacher-forced eval on ``eval_split`` for ``eval_steps`` batches and, when
    ``infer_eval_examples`` > 0, the task's seqio metrics on that many decoded examples.
    ``stop_after`` ends early at that step (after the checkpoint ``save_every`` asks for there,
    if any), for tests and debugging;
    ``run_config`` (the effective gin config) is written to MODEL_DIR/config.gin.
    ``task_cache_dir``: a local directory where the tokenized tasks are cached on first use
    and read from then on (``t5x_xfer.tasks.cache``); None tokenizes on the fly.
    Returns the final train (and eval) metrics, where the run started from, and how its data
    position was reached (``start``, ``restored`` from the checkpoint, ``replayed``, or
    ``unused``: a finished run resumed, which draws no batch).
    """
    if not isinstance(model, BaseModel):
        raise TypeError(f"model must be a t5x_xfer BaseModel, got {type(model).__name__}")
    _check_arguments(
        train_steps=train_steps,
        batch_size=batch_size,
        num_microbatches=num_microbatches,
        save_every=save_every,
        log_every=log_every,
        eval_every=eval_every,
        task_feature_lengths=task_feature_lengths,
    )
    check_output_dir(model_dir, "MODEL_DIR")  # before anything is written
    mesh = partitioning.make_mesh() if mesh is None else mesh
    dp = partitioning.data_parallel_size(mesh)
    if batch_size % (dp * num_microbatches):
        raise ValueError(
            f"batch_size {batch_size} must divide by data-parallel size {dp} x "
            f"num_microbatches {num_microbatches}"
        )
    with partitioning.activate(mesh):
        from t5x_xfer import tasks, validation  # seqio and TensorFlow: after logs.setup
        from t5x_xfer.tasks.batches import check_registered
        from t5x_xfer.vocabularies import check_available

        check_available(vocabulary)  # a missing TOKENIZER: one line, not a tf.data traceback
        paths = tasks.register_all(vocabulary, data_dir)
        check_registered(mixture_or_task_name)
        if task_cache_dir is not None:
            from t5x_xfer.tasks import cache

            cache_dir = cache.task_cache(task_cache_dir, vocabulary, paths)
            for split in ("train", eval_split) if eval_every else ("train",):
                cache.ensure_cached(mixture_or_task_name, split, cache_dir)
        init = train_state.TrainStateInitializer(model, optimizer, mesh)
        manager = checkpoints.train_manager(
            model_dir,
            keep=keep_checkpoints,
            keep_best=keep_best,
            best_metric=best_metric if keep_best else None,
            best_mode=best_mode,
            async_save=async_checkpointing,
        )
        source, where = train_state.restore_source(manager, init_checkpoint, hf_checkpoint)
        init_params = None
        if source in ("init", "hf"):  # family and shape mismatches fail here, before training
            init_params = init.load_init_params(source, where)
        # The stored model config is compared and a damaged latest step skipped before
        # anything is written to MODEL_DIR.
        state, start, log_window = _start_state(
            init, manager, source, where, init_params, seed, model_dir
        )
        assets_from = init_checkpoint if source == "init" else hf_checkpoint
        _write_run_files(model_dir, run_config, assets_from, vocabulary)

        per_host = batch_size // jax.process_count()
        loss_opts = trainer_lib.LossOptions(label_smoothing=label_smoothing, z_loss=z_loss)
        step_fn = trainer_lib.make_train_step(
            model,
            optimizer,
            schedule,
            num_microbatches=num_microbatches,
            loss=loss_opts,
            dropout_seed=seed,
        )
        resume_step = start if source == "resume" else None
        if start >= train_steps:  # a step-0 save (the "pretrained" stage) or a finished run:
            # no step will draw a batch, so no input pipeline is built (seconds of tf.data)
            batches = data_position.DataIterator(
                [], lambda batch: batch, model_dir, jax.process_index(), saveable=False
            )
            position = "start" if start == 0 else "unused"
        else:
            batches = _train_batches(
                mixture_or_task_name,
                model,
                task_feature_lengths,
                per_host,
                seed,
                mesh,
                model_dir,
                use_cached=task_cache_dir is not None,
            )
            position = data_position.start_at(batches, start)
        loop = trainer_lib.Trainer(
            jax.jit(
                step_fn,
                in_shardings=(init.state_shardings, partitioning.batch_sharding(mesh)),
                out_shardings=(init.state_shardings, init.replicated),
                donate_argnums=(0,),
                compiler_options=partitioning.compiler_options(model.config.dtype),
            ),
            checkpoints.TrainCheckpointer(
                manager,
                model,
                {"mixture_or_task_name": mixture_or_task_name, "seed": seed},
                data=batches,
            ),
            trainer_lib.LoopOptions(
                train_steps=train_steps,
                log_every=log_every,
                save_every=save_every,
                eval_every=eval_every,
                stop_after=stop_after,
                progress=progress,
                desc=f"train {Path(model_dir).name}",
            ),
            throughput=_throughput(model, batch_size, task_feature_lengths, peak_flops_per_device),
            train_writer=trainer_lib.MetricsWriter(model_dir, "train", resume_step),
            eval_writer=trainer_lib.MetricsWriter(model_dir, "eval", resume_step),
            evaluate=validation.make_evaluator(
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
                use_cached=task_cache_dir is not None,
            ),
        )
        summary = {
            **loop.run(state, start, batches, log_window),
            "restored_from": source,
            "data_position": position,
        }
    if jax.process_index() == 0 and summary["step"] >= train_steps:
        text = json.dumps(summary, indent=2) + "\n"
        checkpoints.write_text(f"{model_dir.rstrip('/')}/summary.json", text)
    batches.close()
    return summary


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
    logs.add_verbose_flag(parser)
    args = parser.parse_args(rest)
    logs.setup(args.verbose, tensorflow=True, fmt="%(asctime)s " + logs.FORMAT)
    host.keep_freed_memory()
    if not files:
        parser.error("give at least one --gin_file (a run file and a model file)")
    if args.multihost:
        partitioning.initialize_distributed(
            args.coordinator_address, args.process_count, args.process_index
        )
    try:
        train_using_gin = gin_utils.configurable_entry(train)
        search = [p for p in args.gin_search_paths.split(",") if p]
        gin_utils.parse(files, bindings, search, require_macros=True)
        import gin

        summary = train_using_gin(progress=not args.no_progress, run_config=gin.config_str())
    except (ValueError, OSError, KeyError, TypeError) as e:
        print(f"error: {gin_utils.error_line(e)}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
