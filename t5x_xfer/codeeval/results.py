"""Scoring (unbiased pass@k) and the written results: per-sample JSONL, summary JSON, markdown.

Every file is written to a temporary sibling and renamed into place, so a crash never leaves a
half-written result behind.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from t5x_xfer.codeeval.languages import STATUSES
from t5x_xfer.io_utils import write_atomic

KS = (1, 10, 100)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimator of pass@k from n samples with c correct (Chen et al. 2021):
    1 - C(n-c, k) / C(n, k), computed as a stable product.

    >>> pass_at_k(2, 1, 1)
    0.5
    >>> round(pass_at_k(10, 3, 5), 6)  # 1 - C(7,5)/C(10,5) = 1 - 21/252
    0.916667
    """
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(counts: Sequence[tuple[int, int]], ks: Iterable[int] = KS) -> dict[str, float]:
    """Mean pass@k over problems given (n, c) per problem, for each k every problem allows."""
    if not counts:
        return {}
    return {
        f"pass@{k}": sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
        for k in ks
        if all(n >= k for n, _ in counts)
    }


def summarize(rows: Sequence[dict]) -> dict:
    """Per-language and overall pass@k, status counts and known defects from per-sample rows."""
    by_task: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        # A missing toolchain or library is not the model's failure: such samples are left out
        # of pass@k (and counted under environment_error), not scored as failures.
        if row["status"] != "environment_error":
            by_task[row["task_id"]].append(row)
    languages: dict[str, dict] = {}
    all_counts, all_clean = [], []
    for lang in sorted({row["language"] for row in rows}):
        tasks = {t: rs for t, rs in by_task.items() if rs[0]["language"] == lang}
        if not tasks:
            continue
        counts = [(len(rs), sum(r["passed"] for r in rs)) for rs in tasks.values()]
        clean = [
            (len(rs), sum(r["passed"] for r in rs))
            for rs in tasks.values()
            if not rs[0].get("known_defect")
        ]
        statuses = Counter(r["status"] for r in rows if r["language"] == lang)
        languages[lang] = {
            "problems": len(tasks),
            "samples": sum(n for n, _ in counts),
            "pass_at_k": mean_pass_at_k(counts),
            "pass_at_k_excluding_known_defects": mean_pass_at_k(clean),
            "statuses": {s: statuses.get(s, 0) for s in STATUSES},
        }
        all_counts += counts
        all_clean += clean
    defects = []
    for task, rs in sorted(by_task.items()):
        if rs[0].get("known_defect"):
            defects.append(
                {
                    "task_id": task,
                    "kind": rs[0]["known_defect"],
                    "note": rs[0].get("known_defect_note", ""),
                    "n": len(rs),
                    "passed": sum(r["passed"] for r in rs),
                }
            )
    return {
        "languages": languages,
        "overall": {
            "problems": len(all_counts),
            "samples": sum(n for n, _ in all_counts),
            "pass_at_k": mean_pass_at_k(all_counts),
            "pass_at_k_excluding_known_defects": mean_pass_at_k(all_clean),
        },
        "known_defects": defects,
    }


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def markdown(summary: dict) -> str:
    """The summary as a markdown table (percentages), with the sandbox tier and known defects."""
    ks = [f"pass@{k}" for k in KS]
    head = ["language", "problems", "samples", *ks, *STATUSES]
    lines = [
        "# HumanEval-X execution results",
        "",
        f"Sandbox tier: **{summary['sandbox']['tier']}** ({summary['sandbox']['detail']})",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for lang, s in summary["languages"].items():
        cells = [lang, s["problems"], s["samples"]]
        cells += [_pct(s["pass_at_k"].get(k)) for k in ks]
        cells += [s["statuses"][st] for st in STATUSES]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    o = summary["overall"]
    cells = ["overall", o["problems"], o["samples"], *(_pct(o["pass_at_k"].get(k)) for k in ks)]
    lines.append("| " + " | ".join(str(c) for c in cells) + " |" + " |" * len(STATUSES))
    lines += ["", "pass@k in percent: unbiased estimator (Chen et al. 2021), mean over problems."]
    env = sum(s["statuses"]["environment_error"] for s in summary["languages"].values())
    if env:
        lines += ["", f"WARNING: {env} samples hit environment errors and are left out of pass@k."]
    if summary["known_defects"]:
        lines += ["", "Known defects of the data (pass@k also reported without them):", ""]
        for d in summary["known_defects"]:
            lines.append(
                f"- {d['task_id']} ({d['kind']}): {d['note']}; passed {d['passed']}/{d['n']}"
            )
    return "\n".join(lines) + "\n"


def write_reports(out_dir: Path, rows: Sequence[dict], summary: dict) -> None:
    """results.jsonl, summary.json and report.md in ``out_dir``."""
    write_atomic(out_dir / "results.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    write_atomic(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_atomic(out_dir / "report.md", markdown(summary))
