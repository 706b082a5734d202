"""Forward+backward step time: our Flax T5 vs transformers' PyTorch T5, same shapes, same run.

Default: the codet5p-220m-sized model (gin/models/codet5p_220m.gin, float32, dropout on as in
training), batch 8, input 512, target 128, random init and random tokens. Prints the figures
and the ratio, and writes them to ``--out`` (JSON + markdown).

    python benchmarks/step_time.py [--steps 3] [--model codet5p_220m] [--out runs/bench]
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
    args = parser.parse_args()

    import torch
    from transformers import T5Config as HFConfig
    from transformers import T5ForConditionalGeneration

    from t5x_xfer import gin_utils, hf
    from t5x_xfer.models import EncoderDecoderModel

    gin_utils.parse([f"gin/models/{args.model}.gin"], ['ACTIVATION_DTYPE="float32"'])
    cfg = gin_utils.macro("MODEL_CONFIG")
    batch = _batch(cfg.vocab_size, args.batch, args.inputs, args.targets)
    tokens = args.batch * (args.inputs + args.targets)

    model = EncoderDecoderModel(cfg)
    params = model.init_params(jax.random.PRNGKey(0))
    grad_fn = jax.jit(jax.value_and_grad(model.loss_fn, has_aux=True))
    rng = jax.random.PRNGKey(1)
    jax_first, jax_times = _time(
        lambda: jax.block_until_ready(grad_fn(params, batch, rng)), args.steps
    )

    torch.manual_seed(0)
    torch_model = T5ForConditionalGeneration(HFConfig(**hf.config_to_hf(cfg))).train()
    t_batch = {
        "input_ids": torch.tensor(batch["encoder_input_tokens"], dtype=torch.long),
        "decoder_input_ids": torch.tensor(batch["decoder_input_tokens"], dtype=torch.long),
        "labels": torch.tensor(batch["decoder_target_tokens"], dtype=torch.long),
    }

    def torch_step() -> None:
        torch_model.zero_grad(set_to_none=True)
        torch_model(**t_batch).loss.backward()

    torch_first, torch_times = _time(torch_step, args.steps)
    ours, theirs = statistics.median(jax_times), statistics.median(torch_times)
    result = {
        "model": args.model,
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
        f"# Forward+backward, {args.model}, batch {args.batch}, {args.inputs}->{args.targets}\n\n"
        f"{table}\nratio torch/jax step time: {theirs / ours:.2f}\n"
    )
    print(table)
    print(f"ratio (torch step time / jax step time): {theirs / ours:.2f}")


if __name__ == "__main__":
    main()
