"""Samples in, reports out: validation, assembly, sandboxed execution, scoring, writing.

All checks (task ids, languages, toolchains, sandbox) happen before any program runs.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from t5x_xfer.codeeval import data as D
from t5x_xfer.codeeval import engine
from t5x_xfer.codeeval import languages as L
from t5x_xfer.codeeval import sandbox as sb
from t5x_xfer.codeeval import toolchains as tc
from t5x_xfer.codeeval.results import summarize, write_reports

ROW_TAIL = 500


@dataclasses.dataclass
class Evaluation:
    """What a run produced: per-sample rows, the summary, and which programs executed."""

    rows: list[dict]
    summary: dict
    executed: list[str]


def prepare(
    samples: Sequence[D.Sample],
    problems: dict[str, dict[str, dict]],
    *,
    sandbox_tier: str | None = None,
    unsafe: bool = False,
    limits: sb.Limits | None = None,
    timeout_scale: float = 1.0,
    warm_javac: bool = True,
    warm_parse: bool = True,
) -> tuple[engine.ExecConfig, list[engine.Program]]:
    """Validate everything and assemble the programs, raising before any execution.
    ``warm_javac=False`` runs javac in the sandbox for every Java program, ``warm_parse=False``
    checks Python and JavaScript syntax there too (the references)."""
    D.check_samples(list(samples), problems)
    if timeout_scale <= 0:
        raise ValueError(f"timeout_scale must be positive, got {timeout_scale}")
    needed = sorted({s.language for s in samples})
    chains = tc.require_ready(needed, subject="samples in ")
    found = sb.probe(sandbox_tier)
    sb.check_allowed(found, unsafe)
    config = engine.ExecConfig(
        found, chains, limits or sb.Limits(), timeout_scale, warm_javac, warm_parse
    )
    programs = []
    for s in samples:
        problem = problems[s.language][s.task_id]
        completion = D.strip_prompt(s.completion, L.generation_prompt(s.language, problem))
        completion = L.truncate_completion(s.language, completion)
        files = L.LANGUAGES[s.language].assemble(problem, completion)
        programs.append(engine.make_program(s.language, files, config))
    return config, programs


def evaluate(
    samples: Sequence[D.Sample],
    problems: dict[str, dict[str, dict]],
    *,
    out_dir: str | Path,
    workers: int = 2,
    sandbox_tier: str | None = None,
    unsafe: bool = False,
    limits: sb.Limits | None = None,
    timeout_scale: float = 1.0,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    warm_javac: bool = True,
    warm_parse: bool = True,
) -> Evaluation:
    """Execute every sample and write results.jsonl, summary.json and report.md to out_dir.

    Results are cached by program hash in ``cache_dir`` (default ``out_dir/cache``), so a rerun
    after a crash executes only what had not finished.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out_dir)
    config, programs = prepare(
        samples,
        problems,
        sandbox_tier=sandbox_tier,
        unsafe=unsafe,
        limits=limits,
        timeout_scale=timeout_scale,
        warm_javac=warm_javac,
        warm_parse=warm_parse,
    )
    cache = Path(cache_dir) if cache_dir else out / "cache"
    results, stats = engine.execute(
        programs, config, cache_dir=cache, workers=workers, progress=progress
    )
    rows = []
    index: Counter[str] = Counter()
    for s, program in zip(samples, programs, strict=True):
        r = results[program.key]
        defect = D.KNOWN_DEFECTS.get(s.task_id)
        rows.append(
            {
                "task_id": s.task_id,
                "language": s.language,
                "sample": index[s.task_id],
                "line": s.line,
                "status": r["status"],
                "passed": r["status"] == "passed",
                "known_defect": defect[0] if defect else None,
                "known_defect_note": defect[1] if defect else None,
                "program": program.key,
                "phase": r.get("phase"),
                "returncode": r.get("returncode"),
                "build_s": round(r.get("build_s", 0.0), 3),
                "run_s": round(r.get("run_s", 0.0), 3),
                "stderr": (r.get("stderr") or "")[-ROW_TAIL:],
            }
        )
        index[s.task_id] += 1
    summary = summarize(rows)
    summary["sandbox"] = {"tier": config.probe.tier, "detail": config.probe.detail}
    summary["programs"] = {
        "unique": len({p.key for p in programs}),
        "from_cache": stats.cached,
        "executed": len(stats.executed),
    }
    summary["toolchains"] = {lang: c.version for lang, c in config.toolchains.items()}
    write_reports(out, rows, summary)
    return Evaluation(rows, summary, stats.executed)
