"""Training-step time: our trainer's step vs transformers' PyTorch T5, same shapes, same run.

A step is forward + backward + the Adafactor update (T5's optimizer; ours from optax through
``t5x_xfer.trainer.make_train_step``, theirs ``transformers.optimization.Adafactor`` with the
same settings). Default: the codet5p-220m-sized model (gin/models/codet5p_220m.gin, float32,
dropout on as in training), batch 8, input 512, target 128, random init and random tokens.
Prints the figures and the ratio, and writes them to ``--out`` (JSON + markdown).

    python benchmarks/step_time.py [--steps 3] [--model codet5p_220m] [--prng rbg] \\
        [--out runs/bench]

``--prng rbg`` draws dropout masks with XLA's RngBitGenerator instead of threefry (faster on
CPU and GPU; the default stays threefry, whose masks do not depend on the sharding).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import jax
import numpy as np


def _batch(vocab: int, batch: int, inputs: int, targets: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    tgt = rng.integers(3, vocab, size=(batch, targets)).astype(np.int32)
    return {
        "encoder_input_tokens": rng.integers(3, vocab, size=(batch, inputs)).astype(np.int32),
        "decoder_input_tokens": np.concatenate([np.zeros((batch, 1), np.int32), tgt[:, :-1]], 1),
        "decoder_target_tokens": tgt,
        "decoder_loss_weights": np.ones((batch, targets), np.float32),
    }


def _time(fn, steps: int) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    fn()  # compile / warm up
    first = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="codet5p_220m", help="a gin/models/*.gin name")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--inputs", type=int, default=512)
    parser.add_argument("--targets", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--prng", default="threefry2x32", choices=["threefry2x32", "rbg"])
    parser.add_argument("--dropout", type=float, default=None, help="override the model's rate")
    args = parser.parse_args()
    jax.config.update("jax_default_prng_impl", args.prng)

    import torch
    from transformers import T5Config as HFConfig
    from transformers import T5ForConditionalGeneration

    from t5x_xfer import gin_utils, hf, optimizers, trainer

    bindings = ['ACTIVATION_DTYPE="float32"']
    if args.dropout is not None:
        bindings.append(f"DROPOUT_RATE={args.dropout}")
    gin_utils.parse([f"gin/models/{args.model}.gin"], bindings)
    model = gin_utils.macro("MODEL")
    cfg = model.config
    batch = _batch(cfg.vocab_size, args.batch, args.inputs, args.targets)
    tokens = args.batch * (args.inputs + args.targets)

    schedule = optimizers.make_schedule("constant", 1e-3)
    optimizer = optimizers.make_optimizer(schedule, "adafactor")
    params = model.init_params(jax.random.PRNGKey(0))
    state = {
        "s": trainer.TrainState(
            step=jax.numpy.zeros((), jax.numpy.int32),
            params=params,
            opt_state=optimizer.init(params),
        )
    }
    step_fn = jax.jit(trainer.make_train_step(model, optimizer, schedule), donate_argnums=(0,))

    def jax_step() -> None:
        state["s"], metrics = step_fn(state["s"], batch)
        jax.block_until_ready(metrics)

    jax_first, jax_times = _time(jax_step, args.steps)

    from transformers.optimization import Adafactor

    torch.manual_seed(0)
    torch_model = T5ForConditionalGeneration(HFConfig(**hf.config_to_hf(model))).train()
    torch_opt = Adafactor(
        torch_model.parameters(),
        lr=1e-3,
        scale_parameter=True,
        relative_step=False,
        warmup_init=False,
        clip_threshold=1.0,
        decay_rate=-0.8,
    )
    t_batch = {
        "input_ids": torch.tensor(batch["encoder_input_tokens"], dtype=torch.long),
        "decoder_input_ids": torch.tensor(batch["decoder_input_tokens"], dtype=torch.long),
        "labels": torch.tensor(batch["decoder_target_tokens"], dtype=torch.long),
    }

    def torch_step() -> None:
        torch_opt.zero_grad(set_to_none=True)
        torch_model(**t_batch).loss.backward()
        torch_opt.step()

    torch_first, torch_times = _time(torch_step, args.steps)
    ours, theirs = statistics.median(jax_times), statistics.median(torch_times)
    result = {
        "model": args.model,
        "step": "forward + backward + Adafactor update",
        "prng": args.prng,
        "dropout_rate": cfg.dropout_rate,
        "shape": {"batch": args.batch, "inputs": args.inputs, "targets": args.targets},
        "cpu_threads": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "jax_step_s": ours,
        "jax_compile_plus_first_step_s": jax_first,
        "torch_step_s": theirs,
        "torch_first_step_s": torch_first,
        "jax_tokens_per_s": tokens / ours,
        "torch_tokens_per_s": tokens / theirs,
        "torch_over_jax_time_ratio": theirs / ours,
        "versions": {"jax": jax.__version__, "torch": torch.__version__},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "step_time.json").write_text(json.dumps(result, indent=2) + "\n")
    table = (
        "| implementation | step (s) | tokens/s |\n|---|---|---|\n"
        f"| t5x_xfer (JAX, jit) | {ours:.2f} | {tokens / ours:.0f} |\n"
        f"| transformers (PyTorch) | {theirs:.2f} | {tokens / theirs:.0f} |\n"
    )
    (out / "step_time.md").write_text(
        f"# Train step (fwd+bwd+Adafactor), {args.model}, prng {args.prng}, "
        f"batch {args.batch}, {args.inputs}->{args.targets}\n\n"
        f"{table}\nratio torch/jax step time: {theirs / ours:.2f}\n"
    )
    print(table)
    print(f"ratio (torch step time / jax step time): {theirs / ours:.2f}")


if __name__ == "__main__":
    main()
