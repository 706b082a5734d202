"""Entry points: ``write_report`` (library) and ``main`` (``python -m t5x_xfer.report``).

Reads every ``<root>/<arm>/seed<S>/eval``, builds the report and writes ``report.json``,
``report.md``, per language a PNG of every arm against the baseline and one of CNN/DailyMail
against the NLU arms, and ``cnn_summary.png`` across languages, each file atomically.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from t5x_xfer.arms import CNN, NLU_ARMS
from t5x_xfer.io_utils import check_output_dir, write_atomic, write_json_atomic
from t5x_xfer.report.build import KS, build_report
from t5x_xfer.report.load import discover, load_run, select_runs
from t5x_xfer.report.render import markdown, plot_cnn_summary, plot_cnn_vs_nlu, plot_language
from t5x_xfer.report.stats import INTERVALS


def write_report(
    root: Path,
    out: Path,
    *,
    arms: Sequence[str] | None = None,
    ks: Sequence[int] = KS,
    n_resamples: int = 10000,
    seed: int = 0,
    exclude_known_defects: bool = False,
    interval: str = "crossed",
    seed_sd: float | None = None,
) -> dict[str, Any]:
    """Read every ``<root>/<arm>/seed<S>/eval``, write report.json, report.md and one PNG per
    language into ``out``, and return the report dict.

    ``arms`` restricts the report to those arms (default: every arm found); a listed arm without
    results is stated as missing, not an error, so a grid driver can report on a partial grid.
    ``interval``: "crossed" (default) or "bootstrap"; ``seed_sd``: with one seed, an assumed
    seed-to-seed sd of a difference, in pass@k units (see ``t5x_xfer.report.stats``).
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
        interval=interval,
        seed_sd=seed_sd,
    )

    def draw(name: str, plot: Callable[[], bytes], what: str) -> str | None:
        try:  # a figure is a view of the numbers: never lose report.json and .md to it
            png = plot()
        except Exception as e:  # noqa: BLE001 - any plotting failure is stated, not raised
            report["statements"].append(f"{what}: plot {name} not drawn ({type(e).__name__}: {e})")
            return None
        write_atomic(out / name, png)
        return name

    plots, cnn_plots = {}, {}
    metric = report["primary_metric"].replace("@", "_at_")
    for lang in report["languages"]:
        if name := draw(
            f"{metric}_{lang}.png", lambda lang=lang: plot_language(report, lang), lang
        ):
            plots[lang] = name
        if CNN in report["arms"] and any(a in NLU_ARMS for a in report["arms"]):
            plot = lambda lang=lang: plot_cnn_vs_nlu(report, lang)  # noqa: E731
            if name := draw(f"cnn_vs_nlu_{lang}.png", plot, lang):
                cnn_plots[lang] = name
    summary = None
    if CNN in report["arms"]:
        summary = draw("cnn_summary.png", lambda: plot_cnn_summary(report), "summary")
    report["root"] = str(root)
    report["files"] = {
        "json": "report.json",
        "markdown": "report.md",
        "plots": plots,
        "cnn_plots": cnn_plots,
        "summary_plot": summary,
    }
    write_json_atomic(out / "report.json", report)
    write_atomic(out / "report.md", markdown(report, plots))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI: writes the report, prints its statements and verdicts; 2 on missing inputs."""
    parser = argparse.ArgumentParser(
        prog="python -m t5x_xfer.report",
        description="Compare the grid's arms on HumanEval-X: pass@k, 95% CIs of differences, "
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
    parser.add_argument(
        "--interval",
        choices=INTERVALS,
        default="crossed",
        help="crossed: t interval with problems and seeds as random effects (default); "
        "bootstrap: the paired hierarchical bootstrap of earlier reports",
    )
    parser.add_argument(
        "--seed_sd",
        type=float,
        help="crossed, one seed: assumed seed-to-seed sd of a difference in pp (e.g. 1.5), "
        "added to the interval; with several seeds it is estimated",
    )
    args = parser.parse_args(argv)
    if args.seed_sd is not None and not 0 <= args.seed_sd <= 100:
        parser.error(f"--seed_sd must be in [0, 100] pp, got {args.seed_sd}")
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
            interval=args.interval,
            seed_sd=None if args.seed_sd is None else args.seed_sd / 100,
        )
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for s in report["statements"]:
        print(f"note: {s}")
    for entry in report["per_language"].values():
        print(entry["verdict"]["text"])
    files = report["files"]
    n_plots = len(files["plots"]) + len(files["cnn_plots"]) + bool(files["summary_plot"])
    print(f"wrote {args.out / 'report.md'}, report.json and {n_plots} plots")
    return 0
