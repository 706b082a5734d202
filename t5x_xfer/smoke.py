"""Model smoke run: the whole model path on the local CPU in about a minute.

Trains a byte-level BPE tokenizer on embedded code snippets, builds the tiny T5 of
gin/models/tiny.gin, trains it on a copy task, saves an orbax checkpoint, exports it to Hugging
Face format, re-imports it and checks the logits are unchanged. Writes ``summary.json`` (losses,
timings, paths) and ``summary.md`` to ``--out``; a finished run is not repeated unless
``--force``.

    python -m t5x_xfer.smoke --out runs/smoke [--steps 300] [--gin.NUM_LAYERS=3]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from t5x_xfer import checkpoints, gin_utils, hf
from t5x_xfer.io_utils import write_atomic, write_json_atomic
from t5x_xfer.models import EncoderDecoderModel
from t5x_xfer.vocabularies import train_byte_level_bpe

log = logging.getLogger("t5x_xfer.smoke")

SNIPPETS = [
    "def add(a, b):\n    return a + b\n",
    "int main() {\n\treturn 0;\n}\n",
    "func Max(a, b int) int {\n\tif a > b {\n\t\treturn a\n\t}\n\treturn b\n}\n",
    "public static int square(int x) {\n    return x * x;\n}\n",
    "const inc = (x) => x + 1;\n",
    "fn len(s: &str) -> usize {\n    s.len()\n}\n",
    "for i in range(10):\n    print(i)\n",
    "while (n > 0) {\n  n--;\n}\n",
]


def _copy_batches(vocab: Any, batch_size: int, length: int, seed: int):
    """Endless batches of a copy task over random spans of the snippets' tokens."""
    stream = np.concatenate([np.asarray(vocab.encode(s), np.int32) for s in SNIPPETS])
    rng = np.random.default_rng(seed)
    while True:
        n = rng.integers(4, length - 1, size=batch_size)
        start = rng.integers(0, len(stream) - length, size=batch_size)
        enc = np.zeros((batch_size, length), np.int32)
        tgt = np.zeros((batch_size, length), np.int32)
        for i in range(batch_size):
            span = stream[start[i] : start[i] + n[i]]
            enc[i, : n[i]] = span
            tgt[i, : n[i] + 1] = np.append(span, vocab.eos_id)
        dec = np.concatenate([np.zeros((batch_size, 1), np.int32), tgt[:, :-1]], axis=1)
        yield {
            "encoder_input_tokens": enc,
            "decoder_input_tokens": dec,
            "decoder_target_tokens": tgt,
            "decoder_loss_weights": (tgt > 0).astype(np.float32),
        }


def run(
    *,
    out: str,
    steps: int = 300,
    batch_size: int = 16,
    length: int = 24,
    seed: int = 0,
    gin_bindings: tuple[str, ...] = (),
    force: bool = False,
) -> dict[str, Any]:
    """Run the smoke pipeline into ``out``; returns the summary."""
    if steps < 1 or batch_size < 1 or length < 8:
        raise ValueError(
            f"need steps >= 1, batch_size >= 1, length >= 8; got {steps}, {batch_size}, {length}"
        )
    out_dir = Path(out).expanduser().resolve()
    summary_path = out_dir / "summary.json"
    if summary_path.exists() and not force:
        log.info("%s exists: smoke run already finished (use --force to rerun)", summary_path)
        return json.loads(summary_path.read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    train_byte_level_bpe(SNIPPETS * 10, out_dir / "tokenizer.json")
    gin_utils.parse(
        ["gin/models/tiny.gin"], [f'TOKENIZER="{out_dir}"', *gin_bindings], finalize=False
    )
    vocab = gin_utils.macro("VOCABULARY")
    cfg = gin_utils.macro("MODEL_CONFIG")
    if cfg.vocab_size < vocab.vocab_size:
        raise ValueError(f"VOCAB_SIZE={cfg.vocab_size} < tokenizer size {vocab.vocab_size}")
    model = EncoderDecoderModel(cfg)
    params = model.init_params(jax.random.PRNGKey(seed))
    n_params = sum(x.size for x in jax.tree.leaves(params))
    log.info("tiny T5: %d params, vocab %d", n_params, vocab.vocab_size)

    optimizer = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 3e-3, 20, steps))
    opt_state = optimizer.init(params)

    @jax.jit
    def train_step(params, opt_state, batch, rng):
        (loss, _), grads = jax.value_and_grad(model.loss_fn, has_aux=True)(params, batch, rng)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    batches = _copy_batches(vocab, batch_size, length, seed)
    rng = jax.random.PRNGKey(seed + 1)
    losses = []
    for step in (bar := tqdm(range(steps), desc="smoke train", unit="step")):
        rng, step_rng = jax.random.split(rng)
        params, opt_state, loss = train_step(params, opt_state, next(batches), step_rng)
        losses.append(float(loss))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    t_train = time.perf_counter() - t0

    ckpt = checkpoints.save(out_dir / "checkpoint", params, cfg, step=steps)
    hf.export_hf(checkpoint=str(ckpt), out=str(out_dir / "hf"), tokenizer_dir=str(out_dir))
    cfg2, params2, _ = hf.load_hf(str(out_dir / "hf"))
    probe = next(_copy_batches(vocab, 4, length, seed + 2))
    logits = model.logits(params, probe)
    diff = float(jnp.max(jnp.abs(logits - EncoderDecoderModel(cfg2).logits(params2, probe))))
    if diff > 1e-5:
        raise RuntimeError(f"HF export/import changed the logits by {diff}")
    greedy = np.asarray(jnp.argmax(logits, -1))
    token_acc = float(
        np.sum((greedy == probe["decoder_target_tokens"]) * probe["decoder_loss_weights"])
        / np.sum(probe["decoder_loss_weights"])
    )
    summary = {
        "params": int(n_params),
        "steps": steps,
        "first_loss": losses[0],
        "final_loss": float(np.mean(losses[-10:])),
        "teacher_forced_token_accuracy": token_acc,
        "export_reimport_max_logit_diff": diff,
        "train_seconds": round(t_train, 1),
        "total_seconds": round(time.perf_counter() - t0, 1),
        "checkpoint": str(ckpt.relative_to(out_dir)),
        "hf_export": "hf",
    }
    rows = "\n".join(f"| {k} | {v} |" for k, v in summary.items())
    write_atomic(out_dir / "summary.md", f"# Smoke run\n\n| what | value |\n|---|---|\n{rows}\n")
    write_json_atomic(summary_path, summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _, bindings, rest = gin_utils.split_flags(argv)
    parser = argparse.ArgumentParser(
        prog="python -m t5x_xfer.smoke",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="runs/smoke")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rerun even if finished")
    args = parser.parse_args(rest)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = run(
            out=args.out,
            steps=args.steps,
            batch_size=args.batch_size,
            seed=args.seed,
            gin_bindings=tuple(bindings),
            force=args.force,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
