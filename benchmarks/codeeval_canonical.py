"""Execute every canonical HumanEval-X program with and without the sandbox; time both.

    python benchmarks/codeeval_canonical.py [--workers N] [--languages ...] [--out DIR]

Prints wall time per language for the sandboxed run (strongest tier available) and for a plain
run (tier "none"), the sandbox's cost per sandboxed command in milliseconds per language, and
the fixed cost of one empty sandboxed command, and per language where a sandboxed program's
time goes (build, run, the rest); writes codeeval_canonical.json and .md to --out.
Caches are fresh, so every program really executes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from t5x_xfer.codeeval import data as D
from t5x_xfer.codeeval import languages as L
from t5x_xfer.codeeval import sandbox as sb
from t5x_xfer.codeeval import toolchains as tc
from t5x_xfer.codeeval.evaluate import evaluate
from t5x_xfer.io_utils import write_atomic

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "humaneval-x"


def empty_command_ms(tier: str, repeats: int = 30) -> float:
    """Median wall time of running /usr/bin/true under ``tier``."""
    found = sb.probe(tier)
    slot = sb.acquire_slot(with_uid=tier in ("bwrap+uid", "uid"))
    try:
        box = sb.Sandbox(found, slot, sb.Limits())
        work = slot.dir / "bench"
        work.mkdir(mode=0o755, exist_ok=True)
        times = [
            box.run(["/usr/bin/true"], workdir=work, timeout_s=10, env={}).wall_s
            for _ in range(repeats)
        ]
    finally:
        slot.release()
    return 1000 * statistics.median(times)


def run_mode(tier: str, languages: list[str], problems: dict, workers: int, out: Path) -> dict:
    per_lang = {}
    for lang in languages:
        subset = {lang: problems[lang]}
        start = time.monotonic()
        result = evaluate(
            D.canonical_samples(subset),
            subset,
            out_dir=out / tier / lang,
            workers=workers,
            sandbox_tier=tier,
            unsafe=tier == "none",
            progress=True,
        )
        wall = time.monotonic() - start
        per_program = [r["build_s"] + r["run_s"] for r in result.rows]
        per_lang[lang] = {
            "wall_s": wall,
            "programs": len(result.rows),
            "passed": sum(r["passed"] for r in result.rows),
            "mean_program_s": statistics.mean(per_program),
            "mean_build_s": statistics.mean(r["build_s"] for r in result.rows),
            "mean_run_s": statistics.mean(r["run_s"] for r in result.rows),
        }
        print(f"[{tier}] {lang}: {wall:.1f} s wall, {per_lang[lang]['passed']}/164 passed")
    return per_lang


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--languages", nargs="+", default=list(L.LANGUAGES))
    parser.add_argument("--data_dir", default=str(DATA))
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    languages = L.check_languages(args.languages)
    problems = D.load_problems(languages, args.data_dir)
    tier = sb.probe().tier
    chains = tc.discover(languages)
    with tempfile.TemporaryDirectory() as tmp:
        sandboxed = run_mode(tier, languages, problems, args.workers, Path(tmp))
        plain = run_mode("none", languages, problems, args.workers, Path(tmp))
    rows = {}
    for lang in languages:
        spec = L.LANGUAGES[lang]
        tools = chains[lang].tools
        # canonical programs parse: where a warm parser checks them, the build steps are skipped
        builds = 0 if spec.parse else len(spec.build(tools, "/w"))
        commands = builds + len(spec.run(tools, "/w"))
        extra = sandboxed[lang]["mean_program_s"] - plain[lang]["mean_program_s"]
        rows[lang] = {
            "sandboxed_wall_s": round(sandboxed[lang]["wall_s"], 1),
            "plain_wall_s": round(plain[lang]["wall_s"], 1),
            "sandbox_ms_per_command": round(1000 * extra / commands, 1),
            # Where a sandboxed program's time goes: building (compilers), running (the
            # program), and the rest of the wall time (workers, bookkeeping, writing).
            "build_ms_per_program": round(1000 * sandboxed[lang]["mean_build_s"], 1),
            "run_ms_per_program": round(1000 * sandboxed[lang]["mean_run_s"], 1),
            "other_ms_per_program": round(
                1000
                * (
                    sandboxed[lang]["wall_s"] * args.workers / sandboxed[lang]["programs"]
                    - sandboxed[lang]["mean_program_s"]
                ),
                1,
            ),
            "commands_per_program": commands,
            "passed_sandboxed": sandboxed[lang]["passed"],
            "passed_plain": plain[lang]["passed"],
        }
    result = {
        "tier": tier,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "programs": sum(s["programs"] for s in sandboxed.values()),
        "sandboxed_wall_s": round(sum(s["wall_s"] for s in sandboxed.values()), 1),
        "plain_wall_s": round(sum(s["wall_s"] for s in plain.values()), 1),
        "empty_command_ms": {t: round(empty_command_ms(t), 1) for t in (tier, "none")},
        "languages": rows,
    }
    lines = [
        f"# Canonical HumanEval-X programs: sandbox ({tier}) vs plain",
        "",
        f"{result['programs']} programs, {args.workers} workers on {os.cpu_count()} CPUs: "
        f"{result['sandboxed_wall_s']} s sandboxed, {result['plain_wall_s']} s plain. "
        f"Empty command: {result['empty_command_ms'][tier]} ms sandboxed, "
        f"{result['empty_command_ms']['none']} ms plain.",
        "",
        "| language | sandboxed wall s | plain wall s | sandbox ms per command | commands | "
        "build ms | run ms | other ms (per program, sandboxed; other = wall x workers / "
        "programs - build - run) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for lang, r in rows.items():
        lines.append(
            f"| {lang} | {r['sandboxed_wall_s']} | {r['plain_wall_s']} | "
            f"{r['sandbox_ms_per_command']} | {r['commands_per_program']} | "
            f"{r['build_ms_per_program']} | {r['run_ms_per_program']} | "
            f"{r['other_ms_per_program']} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    write_atomic(out / "codeeval_canonical.json", json.dumps(result, indent=2) + "\n")
    write_atomic(out / "codeeval_canonical.md", text)


if __name__ == "__main__":
    main()
