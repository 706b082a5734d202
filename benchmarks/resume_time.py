"""Resume time at two step counts: how long a restarted run spends reaching its data position,
replayed (tasks tokenized on the fly, the pipeline drawn again up to step N) or restored (cached
tasks, the tf.data iterator saved with the checkpoint), plus the train binary's whole restart.

Part 1, the input pipeline of the real intermediate config (batch 128, 512 -> 128, packed, the
MNLI mixture) on the smoke data with its tokenizer: for each N, the seconds to reach step N by
replaying uncached, by replaying cached, and by restoring the iterator saved at N.
Part 2, the debug config end to end: ``python -m t5x_xfer.train`` trained to step N with cached
tasks, then restarted for one more step; the seconds from launch to that step's end.
Writes ``--out``/resume_time.{json,md}.

    python benchmarks/resume_time.py [--steps 100 1000] [--train_steps 20 200] [--out runs/bench]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LENGTHS = {"inputs": 512, "targets": 128}


def _pipeline(root: Path, steps: list[int], batch: int, mixture: str) -> list[dict]:
    import gin

    from t5x_xfer import data_position, gin_utils, logs, tasks
    from t5x_xfer.tasks import cache
    from t5x_xfer.tasks.batches import get_dataset

    logs.setup(tensorflow=True)
    gin_utils.parse(["gin/models/tiny.gin"], [f'TOKENIZER="{root}/tokenizer.json"'])
    model, vocab = gin_utils.macro("MODEL"), gin_utils.macro("VOCABULARY")
    gin.clear_config()
    paths = tasks.register_all(vocab, root / "data")
    cache.ensure_cached(mixture, "train", cache.task_cache(root / "cache", vocab, paths))

    def batches(cached: bool, model_dir: Path) -> data_position.DataIterator:
        ds = get_dataset(
            mixture,
            model.feature_converter(pack=True),
            LENGTHS,
            "train",
            batch,
            shuffle=True,
            seed=0,
            num_epochs=None,
            use_cached=cached,
        )
        return data_position.DataIterator(ds, lambda b: b, str(model_dir), 0, saveable=cached)

    rows = []
    for n in steps:
        row = {"step": n}
        for cached in (False, True):
            it = batches(cached, root / "m")
            next(it)  # pipeline start-up is not replay
            t0 = time.perf_counter()
            it.skip(n - 1)
            row["replay_cached_s" if cached else "replay_s"] = time.perf_counter() - t0
        it.save(n, keep=[n])
        fresh = batches(True, root / "m")
        t0 = time.perf_counter()
        fresh.restore(n)
        next(fresh)
        row["restore_s"] = time.perf_counter() - t0
        print(row, flush=True)
        rows.append(row)
    return rows


def _train_argv(root: Path, model_dir: Path, steps: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "t5x_xfer.train",
        "--gin_file=gin/runs/debug_cpu.gin",
        "--gin_file=gin/models/tiny.gin",
        f'--gin.DATA_DIR="{root}/data"',
        f'--gin.TOKENIZER="{root}/tokenizer.json"',
        f'--gin.TASK_CACHE_DIR="{root}/cache"',
        f'--gin.MODEL_DIR="{model_dir}"',
        '--gin.MIXTURE_OR_TASK_NAME="xfer_mix_target_mbpp_completion"',
        f"--gin.TRAIN_STEPS={steps}",
        f"--gin.train.save_every={max(steps - 1, 1)}",
        "--gin.train.eval_every=0",
        "--no_progress",
    ]


def _restart(root: Path, steps: list[int]) -> list[dict]:
    env = {"JAX_COMPILATION_CACHE_DIR": str(root / "jax_cache")}
    import os

    env = {**os.environ, **env}
    rows = []
    for n in steps:
        model_dir = root / f"run{n}"

        def run(steps: int, model_dir: Path = model_dir) -> subprocess.CompletedProcess:
            argv = _train_argv(root, model_dir, steps)
            return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)

        done = run(n)
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        t0 = time.perf_counter()
        done = run(n + 1)
        wall = time.perf_counter() - t0
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        summary = json.loads((model_dir / "summary.json").read_text())
        row = {"step": n, "restart_wall_s": wall, "data_position": summary["data_position"]}
        print(row, flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs=2, default=[100, 1000])
    parser.add_argument("--train_steps", type=int, nargs=2, default=[20, 200])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--mixture", default="xfer_mix_mnli")
    parser.add_argument("--out", default="runs/bench")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "t5x_xfer.testing.smoke_data", "--out", str(root / "data")]
            + ["--tokenizer", str(root / "tokenizer.json")],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        pipeline = _pipeline(root, args.steps, args.batch, args.mixture)
        restart = _restart(root, args.train_steps)
    result = {
        "pipeline": {"batch": args.batch, "lengths": LENGTHS, "mixture": args.mixture},
        "pipeline_rows": pipeline,
        "restart_rows": restart,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "resume_time.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Reaching step N after a restart ({args.mixture}, batch {args.batch}, 512->128)",
        "",
        "| step N | replay, on the fly (s) | replay, cached (s) | restore saved position (s) |",
        "|---|---|---|---|",
        *(
            f"| {r['step']} | {r['replay_s']:.1f} | {r['replay_cached_s']:.1f} "
            f"| {r['restore_s']:.2f} |"
            for r in pipeline
        ),
        "",
        "# The train binary restarted at step N (debug config, cached tasks), one more step",
        "",
        "| step N | launch to done (s) | data position |",
        "|---|---|---|",
        *(f"| {r['step']} | {r['restart_wall_s']:.1f} | {r['data_position']} |" for r in restart),
    ]
    (out / "resume_time.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
