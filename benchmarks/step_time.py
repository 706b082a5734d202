"""Training-step time: our trainer's step vs transformers' PyTorch model, same shapes, same run.

A step is forward + backward + the optimizer update: for the T5 family Adafactor (T5's
optimizer; ours from optax through ``t5x_xfer.trainer.make_train_step``, theirs
``transformers.optimization.Adafactor`` with the same settings), for the decoder-only family
AdamW (ours optax's, theirs ``torch.optim.AdamW``). Both sides hold the same random weights.
Default: the codet5p-220m-sized model (gin/models/codet5p_220m.gin at its default activation
dtype, bfloat16 as in T5X, against transformers at its default float32; ``--dtype float32``
matches them; dropout on as in training), batch 8, input 512, target 128, random tokens. A
decoder-only model sees inputs + targets as one sequence with the loss on the targets. The two
steps run interleaved, in pairs (see ``_time_pairs``), transformers' in a process of its own;
it prints the median step times and the median of the pairs' ratios, and writes them and every
step's time to ``--out`` (JSON + markdown).

    python benchmarks/step_time.py [--steps 3] [--model codet5p_220m] [--prng rbg] \\
        [--order sequential] [--malloc keep] [--out runs/bench]
    # full size on a 24 GiB machine: both sides' memory does not fit at once
    python benchmarks/step_time.py --order sequential
    # Qwen2.5-Coder 0.5B's shapes scaled down for 2 CPU cores (every dimension real but depth
    # and batch: the 152k-token vocabulary dominates):
    python benchmarks/step_time.py --model qwen2_5_coder_0_5b --layers 2 --batch 4 \\
        --inputs 256 --targets 128

On a GPU, transformers runs there too (``--torch_device``; TF32 float32 matmuls on both
sides, JAX's default). ``--prng rbg`` draws dropout masks with XLA's RngBitGenerator instead
of threefry (not faster on an H200; the default stays threefry, whose masks do not depend on
the sharding).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import jax
import models
import numpy as np


def _batch(model, batch: int, inputs: int, targets: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    vocab = model.vocab_size
    if model.family != "t5":  # one sequence: a prompt, then the targets the loss is on
        seq = rng.integers(3, vocab, size=(batch, inputs + targets)).astype(np.int32)
        start = np.full((batch, 1), model.config.start_token_id, np.int32)
        weights = np.zeros((batch, inputs + targets), np.float32)
        weights[:, inputs:] = 1
        return {
            "decoder_input_tokens": np.concatenate([start, seq[:, :-1]], 1),
            "decoder_target_tokens": seq,
            "decoder_loss_weights": weights,
        }
    tgt = rng.integers(3, vocab, size=(batch, targets)).astype(np.int32)
    return {
        "encoder_input_tokens": rng.integers(3, vocab, size=(batch, inputs)).astype(np.int32),
        "decoder_input_tokens": np.concatenate([np.zeros((batch, 1), np.int32), tgt[:, :-1]], 1),
        "decoder_target_tokens": tgt,
        "decoder_loss_weights": np.ones((batch, targets), np.float32),
    }


def _torch_step(
    model, torch_model, batch: dict[str, np.ndarray], dtype: str = "float32", device: str = "cpu"
):
    """transformers' step on the same batch: Adafactor for T5, AdamW for decoder-only.

    ``dtype="bfloat16"`` runs forward and backward under autocast (weights and optimizer
    float32), the matched counterpart of our bfloat16 activations. The step returns after the
    device finished, as ours does (``block_until_ready``)."""
    import contextlib

    import torch

    if model.family == "t5":
        from transformers.optimization import Adafactor

        opt = Adafactor(
            torch_model.parameters(),
            lr=1e-3,
            scale_parameter=True,
            relative_step=False,
            warmup_init=False,
            clip_threshold=1.0,
            decay_rate=-0.8,
        )
        inputs = {
            "input_ids": torch.tensor(batch["encoder_input_tokens"], dtype=torch.long),
            "decoder_input_ids": torch.tensor(batch["decoder_input_tokens"], dtype=torch.long),
            "labels": torch.tensor(batch["decoder_target_tokens"], dtype=torch.long),
        }
        inputs = {k: v.to(device) for k, v in inputs.items()}
    else:
        opt = torch.optim.AdamW(torch_model.parameters(), lr=1e-3)
        ids = torch.tensor(batch["decoder_input_tokens"], dtype=torch.long)
        labels = ids.clone()  # transformers shifts them: the same next-token targets
        labels[torch.tensor(batch["decoder_loss_weights"]) == 0] = -100
        inputs = {"input_ids": ids.to(device), "labels": labels.to(device)}

    def autocast():
        if dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device, dtype=torch.bfloat16)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = torch_model(**inputs).loss
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return step


def _time_pairs(
    ours: Callable[[], float], theirs: Callable[[], float], steps: int
) -> dict[str, Any]:
    """Both steps (each returns its own duration), interleaved: warm-up (compilation) once
    each, then ``steps`` pairs.

    This machine's speed drifts by a fifth between runs and within one, so one side's steps
    all measured before the other's would compare different machines. A pair runs both steps
    back to back (alternating which goes first) and gives one ratio; the median of the pairs'
    ratios is the figure, their range how steady it is."""
    firsts = [ours(), theirs()]
    ours_t, theirs_t = [], []
    for i in range(steps):
        for fn, times in [(ours, ours_t), (theirs, theirs_t)][:: 1 if i % 2 == 0 else -1]:
            times.append(fn())
    ratios = [t / o for o, t in zip(ours_t, theirs_t, strict=True)]
    return {
        "ours_first": firsts[0],
        "theirs_first": firsts[1],
        "ours": ours_t,
        "theirs": theirs_t,
        "ratios": ratios,
    }


def _time_sequential(
    ours: Callable[[], float], theirs_all: Callable[[], list[float]], steps: int
) -> dict[str, Any]:
    """``--order sequential``: all of theirs (the first step and ``steps`` more, their process
    ended after), then ours; ``_time_pairs``'s result without pair ratios."""
    theirs = theirs_all()
    mine = [ours() for _ in range(steps + 1)]
    return {
        "ours_first": mine[0],
        "theirs_first": theirs[0],
        "ours": mine[1:],
        "theirs": theirs[1:],
        "ratios": None,
    }


def _torch_worker(conn: Connection, spec: dict[str, Any]) -> None:
    """transformers' side in a process of its own, as a PyTorch run has: the same model and
    random weights (``models.build`` is deterministic), one step per request, its duration
    sent back. In one process with ours, the memory both libraries' allocators kept
    exhausted this 24 GiB machine at full size."""
    # Its JAX only initialises the weights: on the CPU, taking no accelerator memory from ours.
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_default_prng_impl", spec["prng"])
    if spec["malloc"] == "keep":
        from t5x_xfer import host

        host.keep_freed_memory()
    import torch

    model, params = models.build(spec["model"], spec["layers"], spec["dropout"], spec["dtype"])
    torch_model = models.reference(model, params, spec["device"]).train()
    del params
    batch = _batch(model, *spec["shape"])
    step = _torch_step(model, torch_model, batch, spec["torch_dtype"], spec["device"])
    conn.send({"torch": torch.__version__, "threads": torch.get_num_threads()})

    def timed() -> float:
        t0 = time.perf_counter()
        step()
        return time.perf_counter() - t0

    request = conn.recv()
    if request == "all":  # --order sequential: the first step and ``steps`` more, then exit
        conn.send([timed() for _ in range(spec["steps"] + 1)])
        return
    while request == "step":
        conn.send(timed())
        request = conn.recv()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="codet5p_220m", help="a gin/models/*.gin name")
    parser.add_argument("--layers", type=int, default=None, help="fewer layers (small CPUs)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--inputs", type=int, default=512)
    parser.add_argument("--targets", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--prng", default="threefry2x32", choices=["threefry2x32", "rbg"])
    parser.add_argument("--dropout", type=float, default=None, help="override the model's rate")
    parser.add_argument(
        "--dtype",
        default="model",
        choices=["model", "float32", "bfloat16"],
        help="our activation dtype; 'model' keeps the gin file's default (bfloat16 for the "
        "real-size models, as in T5X; parameters and optimizer state stay float32)",
    )
    parser.add_argument(
        "--torch_dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="transformers' compute: float32 (its default) or bfloat16 autocast (matched)",
    )
    parser.add_argument(
        "--torch_device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where transformers runs: 'auto' is cuda when JAX's default backend is a GPU",
    )
    models.add_malloc_argument(parser, "the train, infer and evaluate binaries (each side)")
    parser.add_argument(
        "--order",
        default="interleaved",
        choices=["interleaved", "sequential"],
        help="'interleaved': pairs of steps, one of each side (robust to the machine's drift); "
        "'sequential': all of transformers' steps, its process ended, then ours: for machines "
        "where both sides' memory does not fit at once (full size: transformers 15 GB, ours "
        "12 GB, more than 24 GiB)",
    )
    args = parser.parse_args()
    kept = models.apply_malloc(args.malloc)  # the spawned transformers side inherits it
    jax.config.update("jax_default_prng_impl", args.prng)
    from t5x_xfer import optimizers, partitioning, trainer

    dtype = None if args.dtype == "model" else args.dtype
    device = models.torch_device() if args.torch_device == "auto" else args.torch_device
    spec = {
        "prng": args.prng,
        "malloc": args.malloc,
        "model": args.model,
        "layers": args.layers,
        "dropout": args.dropout,
        "dtype": dtype,
        "device": device,
        "shape": (args.batch, args.inputs, args.targets),
        "torch_dtype": args.torch_dtype,
        "steps": args.steps,
    }
    ctx = multiprocessing.get_context("spawn")  # no fork of a process running XLA's threads
    conn, child_end = ctx.Pipe()
    worker = ctx.Process(target=_torch_worker, args=(child_end, spec), daemon=True)
    worker.start()
    child_end.close()  # the worker's end: a worker that dies ends recv() with EOFError
    model, params = models.build(args.model, args.layers, args.dropout, dtype=dtype)
    batch = _batch(model, args.batch, args.inputs, args.targets)
    tokens = args.batch * (args.inputs + args.targets)
    opt_name = "adafactor" if model.family == "t5" else "adamw"
    schedule = optimizers.make_schedule("constant", 1e-3)
    optimizer = optimizers.make_optimizer(schedule, opt_name)
    state = {
        "s": trainer.TrainState(
            step=jax.numpy.zeros((), jax.numpy.int32),
            params=params,
            opt_state=optimizer.init(params),
        )
    }
    step_fn = jax.jit(
        trainer.make_train_step(model, optimizer, schedule),
        donate_argnums=(0,),
        # as the train binary does
        compiler_options=partitioning.compiler_options(model.config.dtype),
    )

    def jax_step() -> float:
        t0 = time.perf_counter()
        state["s"], metrics = step_fn(state["s"], batch)
        jax.block_until_ready(metrics)
        return time.perf_counter() - t0

    def torch_step() -> float:
        conn.send("step")
        return conn.recv()

    def torch_steps() -> list[float]:
        conn.send("all")
        times = conn.recv()
        worker.join()  # its memory freed before ours runs
        return times

    try:
        torch_info = conn.recv()
        if args.order == "sequential":
            timed = _time_sequential(jax_step, torch_steps, args.steps)
        else:
            timed = _time_pairs(jax_step, torch_step, args.steps)
            conn.send("stop")
            worker.join()
    except EOFError:
        worker.join()
        raise SystemExit(
            f"transformers' process ended (exit {worker.exitcode}; -9: killed, e.g. out of "
            "memory: try --order sequential); its traceback, if any, is above"
        ) from None
    ours, theirs = statistics.median(timed["ours"]), statistics.median(timed["theirs"])
    ratio = statistics.median(timed["ratios"]) if timed["ratios"] else theirs / ours
    result = {
        "model": args.model,
        "shape_of_model": models.describe(model),
        "step": f"forward + backward + {opt_name} update",
        "prng": args.prng,
        "jax_activation_dtype": model.config.dtype,
        "torch_compute_dtype": args.torch_dtype,
        "dropout": model.uses_dropout,
        "shape": {"batch": args.batch, "inputs": args.inputs, "targets": args.targets},
        "jax_backend": jax.default_backend(),
        "jax_device": str(jax.devices()[0].device_kind),
        "torch_device": device,
        "cpu_threads": os.cpu_count(),
        "torch_threads": torch_info["threads"],
        "jax_step_s": ours,
        "jax_compile_plus_first_step_s": timed["ours_first"],
        "torch_step_s": theirs,
        "torch_first_step_s": timed["theirs_first"],
        "jax_step_times_s": timed["ours"],
        "torch_step_times_s": timed["theirs"],
        "order": args.order,
        "pair_ratios": timed["ratios"],
        "jax_tokens_per_s": tokens / ours,
        "torch_tokens_per_s": tokens / theirs,
        "torch_over_jax_time_ratio": ratio,
        "malloc_keeps_freed_memory": kept,
        "versions": {"jax": jax.__version__, "torch": torch_info["torch"]},
    }
    if timed["ratios"]:
        summary = (
            f"ratio (torch step time / jax step time), median of {args.steps} interleaved "
            f"pairs: {ratio:.2f} (pairs: {min(timed['ratios']):.2f}-{max(timed['ratios']):.2f})"
        )
    else:
        summary = (
            f"ratio (torch step time / jax step time), medians of {args.steps} steps each, "
            f"transformers' first: {ratio:.2f}"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "step_time.json").write_text(json.dumps(result, indent=2) + "\n")
    table = (
        "| implementation | step (s) | tokens/s |\n|---|---|---|\n"
        f"| t5x_xfer (JAX, jit) | {ours:.3g} | {tokens / ours:.0f} |\n"
        f"| transformers (PyTorch) | {theirs:.3g} | {tokens / theirs:.0f} |\n"
    )
    (out / "step_time.md").write_text(
        f"# Train step (fwd+bwd+{opt_name}), {args.model} ({models.describe(model)}), "
        f"prng {args.prng}, activations ours {model.config.dtype} / transformers "
        f"{args.torch_dtype}, on {jax.devices()[0].device_kind} / torch {device}, "
        f"batch {args.batch}, {args.inputs}->{args.targets}\n\n"
        f"{table}\n{summary}\n"
    )
    print(table)
    print(summary)


if __name__ == "__main__":
    main()
