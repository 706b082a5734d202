"""Entry points: ``write_report`` (library) and ``main`` (``python -m t5x_xfer.report``).

Reads every ``<root>/<arm>/seed<S>/eval``, builds the report and writes ``report.json``,
``report.md`` and one PNG per language into the output directory, each file atomically.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from t5x_xfer.io_utils import check_output_dir, write_atomic, write_json_atomic
from t5x_xfer.report.build import KS, build_report
from t5x_xfer.report.load import discover, load_run, select_runs
from t5x_xfer.report.render import markdown, plot_language


def write_report(
    root: Path,
    out: Path,
    *,
    arms: Sequence[str] | None = None,
    ks: Sequence[int] = KS,
    n_resamples: int = 10000,
    seed: int = 0,
    exclude_known_defects: bool = False,
) -> dict[str, Any]:
    """Read every ``<root>/<arm>/seed<S>/eval``, write report.json, report.md and one PNG per
    language into ``out``, and return the report dict.

    ``arms`` restricts the report to those arms (default: every arm found); a listed arm without
    results is stated as missing, not an error, so a grid driver can report on a partial grid.
    """
    root, out = Path(root), Path(out)
    found = discover(root)
    wanted, missing_runs = select_runs(root, found, arms)
    runs = [
        load_run(
            root / arm / f"seed{s}" / "eval",
            arm=arm,
            seed=s,
            exclude_known_defects=exclude_known_defects,
        )
        for arm in wanted
        for s in found[arm]
    ]
    report = build_report(
        runs,
        requested_arms=arms,
        missing_runs=missing_runs,
        ks=ks,
        n_resamples=n_resamples,
        seed=seed,
        exclude_known_defects=exclude_known_defects,
    )
    plots = {}
    for lang in report["languages"]:
        name = f"{report['primary_metric'].replace('@', '_at_')}_{lang}.png"
        write_atomic(out / name, plot_language(report, lang))
        plots[lang] = name
    report["root"] = str(root)
    report["files"] = {"json": "report.json", "markdown": "report.md", "plots": plots}
    write_json_atomic(out / "report.json", report)
    write_atomic(out / "report.md", markdown(report, plots))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI: writes the report, prints its statements and verdicts; 2 on missing inputs."""
    parser = argparse.ArgumentParser(
        prog="python -m t5x_xfer.report",
        description="Compare the grid's arms on HumanEval-X: pass@k, paired bootstrap CIs, "
        "CNN/DailyMail vs the NLU arms; writes report.json, report.md and PNGs.",
    )
    parser.add_argument("--root", required=True, type=Path, help="<root>/<arm>/seed<S>/eval/")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--arms", nargs="+", help="only these arms (default: all found)")
    parser.add_argument("--ks", nargs="+", type=int, default=list(KS), help="default: 1 10")
    parser.add_argument("--n_resamples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0, help="bootstrap RNG seed")
    parser.add_argument(
        "--exclude_known_defects",
        action="store_true",
        help="leave out the data's known defective problems (see codeeval)",
    )
    args = parser.parse_args(argv)
    try:
        check_output_dir(args.out, "--out")
        report = write_report(
            args.root,
            args.out,
            arms=args.arms,
            ks=args.ks,
            n_resamples=args.n_resamples,
            seed=args.seed,
            exclude_known_defects=args.exclude_known_defects,
        )
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for s in report["statements"]:
        print(f"note: {s}")
    for entry in report["per_language"].values():
        print(entry["verdict"]["text"])
    print(f"wrote {args.out / 'report.md'}, report.json and {len(report['files']['plots'])} plots")
    return 0
