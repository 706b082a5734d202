"""Execute HumanEval-X samples in a sandbox and report pass@k per language.

    python -m t5x_xfer.evaluate_code --samples S.jsonl --out DIR \
        [--languages cpp go ...] [--workers N] [--data_dir D] [--unsafe]

Samples are JSONL objects {"task_id": "CPP/0", "generation": "..."} ("completion" also works).
DIR receives results.jsonl (one row per sample), summary.json and report.md, plus cache/ with
one result per distinct program, so rerunning after a crash executes only what had not finished.
Problems come from --data_dir (or $T5X_HUMANEVAL_X_DIR), else from the Hugging Face hub.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from t5x_xfer.codeeval import data as D
from t5x_xfer.codeeval import languages as L
from t5x_xfer.codeeval import sandbox as sb
from t5x_xfer.codeeval.evaluate import Evaluation, evaluate


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
) -> Evaluation:
    """Evaluate a samples file; every input is validated before any program runs.

    ``languages`` keeps only samples of those languages; ``sandbox`` forces a tier (default:
    the strongest available); ``unsafe`` allows running without isolation where none exists.
    """
    if checkpoint is not None:
        raise NotImplementedError(
            "--checkpoint is not available yet: decode with the infer binary (issue 5) "
            "then pass --samples"
        )
    if samples is None:
        raise ValueError("--samples is required (a JSONL file of task_id/generation records)")
    if not Path(samples).is_file():
        raise FileNotFoundError(f"--samples {samples}: no such file")
    if sandbox is not None and sandbox not in sb.TIERS:
        raise ValueError(f"--sandbox {sandbox!r} unknown; allowed: {list(sb.TIERS)}")
    wanted = L.check_languages(list(languages)) if languages else list(L.LANGUAGES)
    records = [s for s in D.read_samples(samples) if s.language in wanted]
    if not records:
        raise ValueError(f"{samples}: no samples for languages {wanted}")
    data_dir = data_dir or os.environ.get("T5X_HUMANEVAL_X_DIR")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m t5x_xfer.evaluate_code", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--samples", help="JSONL of {task_id, generation|completion}")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--languages", nargs="+", help=f"subset of {list(L.LANGUAGES)}")
    parser.add_argument("--workers", type=int, help="parallel workers (default: CPU count)")
    parser.add_argument("--data_dir", help="local HumanEval-X directory (default: the hub)")
    parser.add_argument("--checkpoint", help="decode first (not available yet)")
    parser.add_argument("--sandbox", choices=sb.TIERS, help="force a sandbox tier")
    parser.add_argument("--unsafe", action="store_true", help="allow running without isolation")
    parser.add_argument("--timeout_scale", type=float, default=1.0, help="scale all timeouts")
    parser.add_argument("--memory_mb", type=int, default=4096, help="memory per program")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
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
        )
    except (ValueError, FileNotFoundError, NotImplementedError, sb.SandboxRefused) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # missing toolchains
        print(f"error: {e}", file=sys.stderr)
        return 2
    print((Path(args.out) / "report.md").read_text(), end="")
    return 0 if result.rows else 1


if __name__ == "__main__":
    sys.exit(main())
