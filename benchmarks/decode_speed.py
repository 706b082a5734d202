"""Decoded tokens/second: our jitted, KV-cached sampler vs transformers' ``generate``, same run.

Default: the HumanEval shape of a pass@k run with the codet5p-220m-sized model
(gin/models/codet5p_220m.gin, float32, random weights shared by both): 164 prompts of 128
tokens, 20 samples each (temperature 0.8, top-p 0.95), 256 new tokens, 8 prompts per batch.
EOS is disabled in both so every sample has exactly ``--max_length`` tokens and the work is
identical. A decoder-only model continues the prompt (its start token first, as a prompt is
decoded for HumanEval-X). Our first batch (compilation) is timed separately and left out of
the rate. Prints the figures and the ratio and writes JSON + markdown to ``--out``. On a small
CPU, scale down:

    python benchmarks/decode_speed.py --prompts 8 --samples 4 --max_length 64 --batch 4
    # Qwen2.5-Coder 0.5B's shapes (all but depth) on 2 CPU cores:
    python benchmarks/decode_speed.py --model qwen2_5_coder_0_5b --layers 4 --prompts 8 \\
        --samples 4 --max_length 64 --batch 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import models
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="codet5p_220m", help="a gin/models/*.gin name")
    parser.add_argument("--prompts", type=int, default=164)
    parser.add_argument("--layers", type=int, default=None, help="fewer layers (small CPUs)")
    parser.add_argument("--samples", type=int, default=20, help="samples per prompt")
    parser.add_argument("--max_length", type=int, default=256, help="new tokens per sample")
    parser.add_argument("--prompt_length", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8, help="prompts per decode call")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top_p", type=float, default=0.95)
    parser.add_argument("--skip_transformers", action="store_true")
    parser.add_argument("--out", default="runs/bench")
    models.add_malloc_argument(parser, "the infer binary and evaluate_code")
    args = parser.parse_args()
    models.apply_malloc(args.malloc)  # both sides of this process

    import torch

    from t5x_xfer.decoding import DecodeSettings

    built, params = models.build(args.model, args.layers, dropout=0.0)
    rng = np.random.default_rng(0)
    prompts = rng.integers(3, built.vocab_size, size=(args.prompts, args.prompt_length))
    prompts = prompts.astype(np.int32)
    if built.family != "t5":
        prompts[:, 0] = built.config.start_token_id
    batches = [prompts[i : i + args.batch] for i in range(0, args.prompts, args.batch)]
    samples = args.prompts * args.samples
    tokens = samples * args.max_length
    model = built.replace(eos_token_id=-1)  # no EOS
    settings = DecodeSettings(
        method="sample",
        num_samples=args.samples,
        max_length=args.max_length,
        temperature=args.temperature,
        top_p=args.top_p,
    )

    def ours(batch: np.ndarray, seed: int) -> None:
        out = model.predict_batch(
            params,
            model.prompt_batch(batch, batch.shape[1]),
            settings,
            rng=jax.random.PRNGKey(seed),
        )
        jax.block_until_ready(out)

    t0 = time.perf_counter()
    ours(batches[0], 0)  # compile (and a first batch)
    compile_s = time.perf_counter() - t0
    if len(batches[-1]) != len(batches[0]):
        ours(batches[-1], 0)  # the ragged last batch compiles too; not timed
    t0 = time.perf_counter()
    for i, batch in enumerate(batches):
        ours(batch, i)
    ours_s = time.perf_counter() - t0

    hf_s = None
    device = models.torch_device()
    if not args.skip_transformers:
        torch_model = models.reference(built, params, device).eval()
        torch_model.generation_config.eos_token_id = None  # no EOS, as above
        torch_model.generation_config.forced_eos_token_id = None
        extra = {"decoder_start_token_id": 0} if built.family == "t5" else {}

        def theirs(batch: np.ndarray, new_tokens: int) -> None:
            with torch.no_grad():
                out = torch_model.generate(
                    input_ids=torch.tensor(batch, dtype=torch.long, device=device),
                    do_sample=True,
                    temperature=args.temperature,
                    top_p=args.top_p,
                    num_return_sequences=args.samples,
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,
                    eos_token_id=None,
                    pad_token_id=0,
                    **extra,
                )
            prompt = 1 if built.family == "t5" else batch.shape[1]  # echoed by a decoder LM
            assert out.shape[1] == new_tokens + prompt, out.shape
            if device == "cuda":
                torch.cuda.synchronize()

        theirs(batches[0], 2)  # warm-up (lazy initialisation), not timed, as our compile
        t0 = time.perf_counter()
        for batch in batches:
            theirs(batch, args.max_length)
        hf_s = time.perf_counter() - t0

    result = {
        "model": args.model,
        "shape_of_model": models.describe(built),
        "dtype": "float32",
        "prompts": args.prompts,
        "samples_per_prompt": args.samples,
        "prompt_length": args.prompt_length,
        "max_length": args.max_length,
        "prompts_per_batch": args.batch,
        "sampling": {"temperature": args.temperature, "top_p": args.top_p},
        "decoded_tokens": tokens,
        "ours_compile_s": round(compile_s, 2),
        "ours_s": round(ours_s, 2),
        "ours_tokens_per_s": round(tokens / ours_s, 1),
        "transformers_s": None if hf_s is None else round(hf_s, 2),
        "transformers_tokens_per_s": None if hf_s is None else round(tokens / hf_s, 1),
        "speedup": None if hf_s is None else round(hf_s / ours_s, 2),
        "device": f"{jax.devices()[0].device_kind} ({jax.device_count()} device(s))",
        "torch_device": device,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "jax": jax.__version__,
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
        },
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "decode_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    hf_row = (
        f"| transformers generate (PyTorch) | {result['transformers_s']} | "
        f"{result['transformers_tokens_per_s']} |\n"
        if hf_s is not None
        else ""
    )
    (out / "decode_speed.md").write_text(
        f"# Decode speed: {args.model}, {args.prompts} prompts x {args.samples} samples, "
        f"{args.max_length} new tokens\n\n"
        f"float32, top-p {args.top_p}, temperature {args.temperature}, prompt length "
        f"{args.prompt_length}, {args.batch} prompts per batch, EOS disabled; "
        f"{result['device']}, {os.cpu_count()} CPUs.\n\n"
        "| decoder | seconds | decoded tokens/s |\n|---|---|---|\n"
        f"| ours (jit, KV cache, lax.while_loop) | {result['ours_s']} | "
        f"{result['ours_tokens_per_s']} |\n" + hf_row + f"\nOur compilation (first batch, "
        f"not in the rate): {result['ours_compile_s']} s. Speed-up: {result['speedup']}x.\n"
    )
    print(json.dumps(result, indent=2))
    if hf_s is not None:
        print(
            f"ours {tokens / ours_s:.1f} tok/s vs transformers {tokens / hf_s:.1f} tok/s: "
            f"{hf_s / ours_s:.2f}x"
        )


if __name__ == "__main__":
    main()
