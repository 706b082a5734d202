"""Rewrite every record of an MBPP-format file into HumanEval's completion format and run both.

    python benchmarks/mbpp_completion_check.py --mbpp PATH/mbpp.jsonl [--workers N] [--out DIR]

For each record runs the original program and prompt + completion, each followed by the
record's ``test_setup_code`` and ``test_list``, in a plain child interpreter (the programs are
the dataset's reference code, not model output), and prints how many records convert, how many
completions continue past the function's body, and which converted programs fail where the
original passes; writes mbpp_completion_check.json and .md to --out. The data is not shipped
(see README: Data).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from t5x_xfer.codeeval import languages as L
from t5x_xfer.io_utils import write_atomic
from t5x_xfer.tasks.code_format import mbpp_to_completion


def passes(program: str, timeout_s: float) -> bool:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mbpp", required=True, type=Path, help="an MBPP-format jsonl file")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout_s", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args(argv)
    if not args.mbpp.is_file():
        parser.error(f"--mbpp {args.mbpp} is not a file; give an MBPP-format jsonl file")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    rows = [json.loads(line) for line in args.mbpp.read_text().splitlines() if line.strip()]
    start = time.monotonic()
    jobs, skipped, tails = [], [], []
    for r in rows:
        tests = "\n".join([r.get("test_setup_code", ""), *r["test_list"]]) + "\n"
        original = r["code"].replace("\r\n", "\n") + "\n" + tests
        converted = mbpp_to_completion(r["text"], r["code"], r["test_list"])
        if converted is None:
            skipped.append(r["task_id"])
            jobs.append((r["task_id"], original, None))
            continue
        completion = converted["completion"]
        if L.truncate_completion("python", completion) != completion:
            tails.append(r["task_id"])
        jobs.append((r["task_id"], original, converted["prompt"] + completion + "\n" + tests))

    def check(job: tuple) -> tuple:
        task_id, original, program = job
        ok = passes(original, args.timeout_s)
        return task_id, ok, passes(program, args.timeout_s) if program else None

    with ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(check, jobs))
    result = {
        "file": args.mbpp.name,
        "records": len(rows),
        "original_passes": sum(ok for _, ok, _ in results),
        "converted": len(rows) - len(skipped),
        "skipped_task_ids": skipped,
        "completion_continues_past_body": tails,
        "converted_passes": sum(bool(new) for _, _, new in results),
        "converted_fails_where_original_passes": [t for t, ok, new in results if ok and not new],
        "wall_s": round(time.monotonic() - start, 1),
    }
    lines = [
        "# MBPP -> completion format",
        "",
        f"`{result['file']}`: {result['records']} records, {result['original_passes']} "
        f"originals pass their tests; {result['converted']} convert, "
        f"{result['converted_passes']} converted programs pass; "
        f"{len(tails)} completions continue past the body.",
        "",
        f"Skipped: {skipped or 'none'}. Converted failing where the original passes: "
        f"{result['converted_fails_where_original_passes'] or 'none'}.",
    ]
    print("\n".join(lines[2:]))
    write_atomic(args.out / "mbpp_completion_check.json", json.dumps(result, indent=2) + "\n")
    write_atomic(args.out / "mbpp_completion_check.md", "\n".join(lines) + "\n")
    return 0 if not result["converted_fails_where_original_passes"] else 1


if __name__ == "__main__":
    sys.exit(main())
