"""Execute HumanEval-X samples in a sandbox and report pass@k per language.

    python -m t5x_xfer.evaluate_code --samples S.jsonl --out DIR \
        [--languages cpp go ...] [--workers N] [--data_dir D] [--unsafe]
    python -m t5x_xfer.evaluate_code --checkpoint CKPT --out DIR [--num_samples 20 \
        --temperature 0.8 --top_p 0.95 --max_length 512 --batch_size 8 --seed 0] [...]

Samples are JSONL objects {"task_id": "CPP/0", "generation": "..."} ("completion" also works).
With --checkpoint the samples are decoded first: DIR/prompts.jsonl holds the prompts (with
their language, whose stop strings end decoding), DIR/generations.jsonl the infer binary's
output and DIR/samples.jsonl the samples executed; decoding resumes like execution does.
DIR receives results.jsonl (one row per sample), summary.json and report.md, plus cache/ with
one result per distinct program, so rerunning after a crash executes only what had not finished.
Problems come from --data_dir ("minibench": the project's mini benchmark), else
$T5X_HUMANEVAL_X_DIR, else the Hugging Face hub (``codeeval.data.humaneval_x_dir``). The
decoding flags are :class:`t5x_xfer.decoding.DecodeSettings`' fields, as for the infer binary;
``--temperature 0`` is the old spelling of ``--method greedy``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from t5x_xfer import host, logs
from t5x_xfer.codeeval import data as D
from t5x_xfer.codeeval import languages as L
from t5x_xfer.codeeval import sandbox as sb
from t5x_xfer.codeeval import toolchains as tc
from t5x_xfer.codeeval.evaluate import Evaluation, evaluate
from t5x_xfer.decoding.settings import DecodeSettings, add_flags, from_flags
from t5x_xfer.io_utils import check_output_dir, iter_jsonl, write_atomic

# Defaults of the decoding step: greedy decoding, one sample (pass@1), 512 new tokens; top_p
# 0.95 for sampling when a temperature is given.
DECODE_DEFAULTS = DecodeSettings(method="greedy", num_samples=1, top_p=0.95, max_length=512)
DECODE_BATCH_SIZE = 8


def _task_number(task_id: str) -> int:
    tail = task_id.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def decode_problems(
    *,
    checkpoint: str,
    out: Path,
    problems: dict[str, dict[str, dict]],
    decode: DecodeSettings = DECODE_DEFAULTS,
    batch_size: int = DECODE_BATCH_SIZE,
    tokenizer: str | None = None,
    progress: bool = True,
    run_infer: Callable[[list[str]], int] | None = None,
) -> Path:
    """Prompts -> infer -> DIR/samples.jsonl of {task_id, generation}; each step resumable.

    The prompt is ``generation_prompt`` (Rust adds its declaration); the infer binary ends a
    sample at its language's stop strings and trims it with ``truncate_completion``. The
    infer binary runs as a child process: the stages hand over through files, the model's
    memory is freed before programs run, and the sandbox (which forks) never shares a process
    with JAX's threads. ``run_infer`` (the infer binary's arguments -> exit status) replaces
    that child, for a caller that runs no programs itself (the grid driver).
    """
    out.mkdir(parents=True, exist_ok=True)
    records = [
        {"id": tid, "prompt": L.generation_prompt(lang, problem), "language": lang}
        for lang, by_id in problems.items()
        for tid, problem in sorted(by_id.items(), key=lambda kv: _task_number(kv[0]))
    ]
    prompts = out / "prompts.jsonl"
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if not prompts.is_file() or prompts.read_text(encoding="utf-8") != text:
        write_atomic(prompts, text)
    generations = out / "generations.jsonl"
    argv = ["--checkpoint", checkpoint, "--input", str(prompts), "--output", str(generations)]
    argv += [*decode.flags(), "--batch_size", str(batch_size)]
    if tokenizer is not None:
        argv += ["--tokenizer", tokenizer]
    if not progress:
        argv.append("--no_progress")
    if run_infer is None:
        child = [sys.executable, "-m", "t5x_xfer.infer", *argv]
        rc = subprocess.run(child, check=False).returncode
    else:
        rc = run_infer(argv)
    if rc != 0:
        raise RuntimeError(f"decoding failed (infer exited with {rc}; its message is above)")
    by_id: dict[str, dict[int, str]] = {}
    for _, row in iter_jsonl(generations, "generations"):
        by_id.setdefault(row["id"], {})[row["sample_index"]] = row["text"]
    samples = out / "samples.jsonl"
    write_atomic(
        samples,
        "".join(
            json.dumps({"task_id": r["id"], "generation": by_id[r["id"]][j]}) + "\n"
            for r in records
            for j in range(decode.num_samples)
        ),
    )
    return samples


def evaluate_code(
    *,
    samples: str | Path | None,
    out: str | Path,
    languages: Sequence[str] | None = None,
    workers: int | None = None,
    unsafe: bool = False,
    data_dir: str | Path | None = None,
    checkpoint: str | None = None,
    sandbox: str | None = None,
    timeout_scale: float = 1.0,
    memory_mb: int = 4096,
    progress: bool = True,
    tokenizer: str | None = None,
    max_problems: int | None = None,
    decode: DecodeSettings = DECODE_DEFAULTS,
    batch_size: int = DECODE_BATCH_SIZE,
) -> Evaluation:
    """Evaluate a samples file, or decode one from ``checkpoint`` first; every input is
    validated (and toolchains and sandbox checked) before any decoding or program runs.

    ``languages`` keeps only samples of those languages; ``sandbox`` forces a tier (default:
    the strongest available); ``unsafe`` allows running without isolation where none exists.
    With ``checkpoint``, ``max_problems`` decodes only the first N problems of each language,
    with ``decode`` settings and ``batch_size`` prompts at a time.
    """
    if (samples is None) == (checkpoint is None):
        raise ValueError(
            "give exactly one of --samples (a JSONL file of task_id/generation records) or "
            "--checkpoint (decode the problems first)"
        )
    check_output_dir(out, "--out")
    if samples is not None and not Path(samples).is_file():
        raise FileNotFoundError(f"--samples {samples}: no such file")
    if sandbox is not None and sandbox not in sb.TIERS:
        raise ValueError(f"--sandbox {sandbox!r} unknown; allowed: {list(sb.TIERS)}")
    if max_problems is not None and max_problems < 1:
        raise ValueError(f"--max_problems must be >= 1 or unset, got {max_problems}")
    wanted = L.check_languages(list(languages)) if languages else list(L.LANGUAGES)
    data_dir = D.humaneval_x_dir(data_dir)
    if checkpoint is not None:
        samples, problems = _decode_first(
            checkpoint,
            Path(out),
            wanted,
            data_dir,
            decode,
            batch_size,
            tokenizer,
            max_problems,
            sandbox,
            unsafe,
            progress,
        )
    records = [s for s in D.read_samples(samples) if s.language in wanted]
    if not records:
        raise ValueError(f"{samples}: no samples for languages {wanted}")
    if checkpoint is None:
        problems = D.load_problems(sorted({s.language for s in records}), data_dir)
    return evaluate(
        records,
        problems,
        out_dir=out,
        workers=workers or os.cpu_count() or 1,
        sandbox_tier=sandbox,
        unsafe=unsafe,
        limits=sb.Limits(memory_mb=memory_mb),
        timeout_scale=timeout_scale,
        progress=progress,
    )


def _decode_first(
    checkpoint: str,
    out: Path,
    wanted: list[str],
    data_dir: Path | None,
    decode: DecodeSettings,
    batch_size: int,
    tokenizer: str | None,
    max_problems: int | None,
    sandbox: str | None,
    unsafe: bool,
    progress: bool,
    run_infer: Callable[[list[str]], int] | None = None,
) -> tuple[Path, dict[str, dict[str, dict]]]:
    """Check everything decoding and execution need, then decode: (samples file, problems).
    With ``run_infer`` the caller holds JAX's threads, where the sandbox probe (a
    ``preexec_fn`` child) must not run: the executing process probes it before any program."""
    from t5x_xfer import checkpoints  # JAX is only needed on this path
    from t5x_xfer.infer import check_arguments

    check_arguments(batch_size=batch_size)
    checkpoints.resolve(checkpoint)  # names a missing checkpoint before any work
    problems = D.load_problems(wanted, data_dir)
    if max_problems is not None:
        problems = {
            lang: dict(sorted(by_id.items(), key=lambda kv: _task_number(kv[0]))[:max_problems])
            for lang, by_id in problems.items()
        }
    _preflight(wanted, sandbox, unsafe, probe_sandbox=run_infer is None)  # before decoding
    samples = decode_problems(
        checkpoint=checkpoint,
        out=out,
        problems=problems,
        decode=decode,
        batch_size=batch_size,
        tokenizer=tokenizer,
        progress=progress,
        run_infer=run_infer,
    )
    return samples, problems


_READY: set[tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = set()


def _preflight(
    languages: Sequence[str], sandbox: str | None, unsafe: bool, probe_sandbox: bool = True
) -> None:
    """The checks ``evaluate`` makes before executing, made before decoding instead.
    Toolchains found ready are not looked for again in this process (a grid driver evaluates
    many checkpoints) while the settings they were found with stay; the execution looks again."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k == "PATH" or k.startswith("T5X")))
    key = (tuple(sorted(languages)), env)
    if key not in _READY:
        tc.require_ready(languages, fix="leave those languages out with --languages")
        _READY.add(key)
    if probe_sandbox:
        sb.check_allowed(sb.probe(sandbox), unsafe)


def decode_then_execute_argv(
    argv: Sequence[str], run_infer: Callable[[list[str]], int]
) -> list[str]:
    """For the grid driver: decode as ``evaluate_code ARGV --checkpoint C`` would, with
    ``run_infer`` running the infer binary (in the caller's process), and return the
    arguments of the ``evaluate_code --samples`` run that executes those samples, as ARGV
    would have next."""
    args = _parser().parse_args(list(argv))
    if args.checkpoint is None or args.samples is not None:
        raise ValueError("decode_then_execute_argv needs --checkpoint and no --samples")
    wanted = L.check_languages(list(args.languages)) if args.languages else list(L.LANGUAGES)
    samples, _ = _decode_first(
        args.checkpoint,
        Path(args.out),
        wanted,
        D.humaneval_x_dir(args.data_dir),
        from_flags(args, DECODE_DEFAULTS),
        args.batch_size,
        args.tokenizer,
        args.max_problems,
        args.sandbox,
        args.unsafe,
        not args.no_progress,
        run_infer=run_infer,
    )
    out = ["--samples", str(samples), "--out", args.out, "--languages", *wanted]
    for flag in ("workers", "data_dir", "sandbox", "timeout_scale", "memory_mb"):
        if getattr(args, flag) is not None:
            out += [f"--{flag}", str(getattr(args, flag))]
    for flag in ("unsafe", "no_progress", "verbose"):
        if getattr(args, flag):
            out.append(f"--{flag}")
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m t5x_xfer.evaluate_code", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--samples", help="JSONL of {task_id, generation|completion}")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--languages", nargs="+", help=f"subset of {list(L.LANGUAGES)}")
    parser.add_argument("--workers", type=int, help="parallel workers (default: CPU count)")
    parser.add_argument(
        "--data_dir",
        help="HumanEval-X directory or 'minibench' (default: $T5X_HUMANEVAL_X_DIR, else the hub)",
    )
    parser.add_argument("--checkpoint", help="decode the problems with this checkpoint first")
    parser.add_argument("--tokenizer", help="override the checkpoint's hf_assets tokenizer")
    parser.add_argument("--max_problems", type=int, help="decode the first N per language")
    parser.add_argument(
        "--batch_size", type=int, default=DECODE_BATCH_SIZE, help="prompts decoded together"
    )
    add_flags(parser, DECODE_DEFAULTS)
    parser.add_argument("--sandbox", choices=sb.TIERS, help="force a sandbox tier")
    parser.add_argument("--unsafe", action="store_true", help="allow running without isolation")
    parser.add_argument("--timeout_scale", type=float, default=1.0, help="scale all timeouts")
    parser.add_argument("--memory_mb", type=int, default=4096, help="memory per program")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    logs.add_verbose_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.setup(args.verbose)
    host.keep_freed_memory()
    try:
        result = evaluate_code(
            samples=args.samples,
            out=args.out,
            languages=args.languages,
            workers=args.workers,
            unsafe=args.unsafe,
            data_dir=args.data_dir,
            checkpoint=args.checkpoint,
            sandbox=args.sandbox,
            timeout_scale=args.timeout_scale,
            memory_mb=args.memory_mb,
            progress=not args.no_progress,
            tokenizer=args.tokenizer,
            max_problems=args.max_problems,
            decode=from_flags(args, DECODE_DEFAULTS),
            batch_size=args.batch_size,
        )
    except (ValueError, OSError, sb.SandboxRefused) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # missing toolchains
        print(f"error: {e}", file=sys.stderr)
        return 2
    print((Path(args.out) / "report.md").read_text(), end="")
    return 0 if result.rows else 1


if __name__ == "__main__":
    sys.exit(main())
