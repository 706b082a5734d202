"""Rendering the report dict: markdown (statements, verdicts, per-language tables) and PNG plots.

Pure functions of the dict that ``build_report`` returns, so the files can be re-rendered from
``report.json`` without the evaluation outputs. matplotlib is imported only when plotting.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from t5x_xfer.arms import ALL10, BASELINE, CNN, NLU9_MIXTURE, NLU_ARMS
from t5x_xfer.report.stats import metric_name


def _pct(x: float | None) -> str:
    """A pass@k in percent with two decimals; None (no value) as an empty table cell."""
    return "" if x is None else f"{100 * x:.2f}"


def _pp(x: float) -> str:
    """Percentage points with a sign: 0.0213 -> '+2.13'."""
    return f"{100 * x:+.2f}"


def describe(cmp: Mapping[str, Any] | None) -> str:
    """A comparison in words, for tables and verdicts: "+2.13 pp [-0.50, +4.80]" or why n/a.

    >>> describe({"available": True, "diff": 0.0213, "low": -0.005, "high": 0.048})
    '+2.13 pp [-0.50, +4.80]'
    >>> describe({"available": False, "reason": "share no seed"})
    'n/a (share no seed)'
    """
    if not cmp or not cmp.get("available"):
        return "n/a" if not cmp else f"n/a ({cmp['reason']})"
    text = f"{_pp(cmp['diff'])} pp [{_pp(cmp['low'])}, {_pp(cmp['high'])}]"
    if cmp.get("problems_left_out"):
        text += f" ({cmp['n_problems']} problems; {cmp['problems_left_out']} lack a value)"
    return text + (f" (paired seeds {cmp['seeds']} only)" if "note" in cmp else "")


def markdown(report: Mapping[str, Any], plots: Mapping[str, str] | None = None) -> str:
    """The report as markdown: statements, verdicts, then per language the arm and CNN tables."""
    lines = _header(report)
    if report["statements"]:
        lines += ["## Statements", ""] + [f"- {s}" for s in report["statements"]] + [""]
    lines += [f"## Verdicts ({report['primary_metric']})", ""]
    lines += [f"- {e['verdict']['text']}" for e in report["per_language"].values()]
    files = report.get("files") or {}
    if files.get("summary_plot"):
        lines += ["", f"![{CNN} against the NLU arms, all languages]({files['summary_plot']})"]
    lines += _best_nlu_section(report["best_nlu"])
    ks = [metric_name(k) for k in report["ks"]]
    for lang, entry in report["per_language"].items():
        plot = (plots or {}).get(lang)
        lines += _language_section(lang, entry, ks, report["best_nlu"]["arm"], plot)
        if (files.get("cnn_plots") or {}).get(lang):
            lines += ["", f"![{CNN} minus the NLU arms, {lang}]({files['cnn_plots'][lang]})"]
    lines += ["", "## Method", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


def _header(report: Mapping[str, Any]) -> list[str]:
    """Title and the reading instructions: arms with their seed counts, units and method."""
    seeds = ", ".join(f"{a} ({len(s)})" for a, s in report["seeds"].items())
    return [
        "# Intermediate-task training and zero-shot HumanEval-X: report",
        "",
        f"Arms (seeds): {seeds}.",
        "",
        f"pass@k in percent; differences in percentage points (pp) with "
        f"{int(100 * report['confidence'])}% {interval_label(report)} intervals; "
        + (
            "known defects of the data excluded."
            if report["exclude_known_defects"]
            else "known defects of the data included (as in published pass@k)."
        ),
        "",
    ]


def interval_label(report: Mapping[str, Any]) -> str:
    """What the intervals are, in a few words, for the header and the plots' axes.

    >>> interval_label({"interval": "crossed", "assumed_seed_sd": None})
    'crossed (problems x seeds) t'
    >>> interval_label({"interval": "bootstrap", "n_resamples": 100, "bootstrap_seed": 0})
    'paired bootstrap (100 resamples, seed 0)'
    """
    if report.get("interval", "bootstrap") == "bootstrap":
        return (
            f"paired bootstrap ({report['n_resamples']} resamples, seed {report['bootstrap_seed']})"
        )
    sd = report.get("assumed_seed_sd")
    assumed = f", one seed: seed sd {100 * sd:.2f} pp assumed" if sd is not None else ""
    return f"crossed (problems x seeds) t{assumed}"


def _best_nlu_section(best: Mapping[str, Any]) -> list[str]:
    """Which NLU arm CNN/DailyMail is held against, and why that choice is conservative."""
    lines = ["", "## Best NLU arm", ""]
    if best["arm"] is None:
        return [*lines, f"None: {best['reason']}."]
    scores = ", ".join(f"{a} {_pct(v)}" for a, v in best["scores"].items())
    return [
        *lines,
        f"**{best['arm']}**, by mean {best['metric']} over {', '.join(best['languages'])} "
        f"({scores}).",
        "",
        "Choosing the best arm on the same data it is then compared on biases that comparison "
        "in the NLU arm's favour; that is the conservative direction for the claim that "
        "CNN/DailyMail helps more.",
    ]


def _language_section(
    lang: str, entry: Mapping[str, Any], ks: list[str], best: str | None, plot: str | None
) -> list[str]:
    """One language: problem counts, the arms against the baseline, CNN/DailyMail against each
    NLU arm, then the plot; a language without any pass@k gets one line (and no plot link)."""
    title = lang + ("" if entry["zero_shot"] else " (target language, not zero-shot)")
    lines = ["", f"## {title}", ""]
    available = [m for m in ks if entry["metrics"][m].get("available")]
    coverage = [f"- {note}" for note in entry.get("statements", [])]
    if coverage:
        lines += ["Coverage:", "", *coverage, ""]
    if not available:
        return [*lines, "No pass@k available."]
    counts = ", ".join(f"{m}: {entry['metrics'][m]['problems']}" for m in available)
    lines += [f"Problems: {counts}.", ""]
    lines += _arm_table(entry, available)
    rows = []
    for m in available:
        for arm, cmp in (entry["metrics"][m].get("cnn_vs_nlu") or {}).items():
            tag = " (best)" if arm == best else ""
            verdict = cmp["verdict"] if cmp.get("available") else ""
            rows.append(f"| {m} | {arm}{tag} | {describe(cmp)} | {verdict} |")
    if rows:
        lines += [
            "",
            f"{CNN} minus each NLU arm:",
            "",
            "| metric | NLU arm | Δ (pp) [CI] | CI |",
            "|---|---|---|---|",
            *rows,
        ]
    if plot:
        lines += ["", f"![{lang}]({plot})"]
    return lines


def _arm_table(entry: Mapping[str, Any], available: list[str]) -> list[str]:
    """Per arm and metric: mean, the per-seed values, and the difference to the baseline."""
    head = ["arm", "seeds"]
    for m in available:
        head += [f"{m}", f"{m} per seed", f"Δ{m} vs {BASELINE}", "CI"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for arm in entry["arms"]:
        cells = [arm, str(len(entry["seeds"][arm]))]
        for m in available:
            stats = entry["metrics"][m]["arms"].get(arm)  # None: no problem with n >= k
            cmp = (entry["metrics"][m].get("vs_baseline") or {}).get(arm)
            cells += [
                _pct(stats["mean"]) if stats else "n/a",
                " ".join(_pct(v) for v in stats["per_seed"].values()) if stats else "",
                describe(cmp) if cmp else "",
                cmp["verdict"] if cmp and cmp.get("available") else "",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


_COLOURS = {BASELINE: "#7f7f7f", CNN: "#d62728", NLU9_MIXTURE: "#17becf", ALL10: "#9467bd"}


def _colour(arm: str) -> str:
    """The arm's bar colour: one per special arm, one shared by the NLU tasks, one for others."""
    return _COLOURS.get(arm, "#1f77b4" if arm in NLU_ARMS else "#bcbd22")


def plot_language(report: Mapping[str, Any], language: str) -> bytes:
    """A PNG for one language: left, primary-metric pass@k per arm (bar = mean over seeds, dots =
    seeds, dashed line = baseline); right, the difference to the baseline with its 95% CI, so
    both the spread over seeds and the paired uncertainty are visible at a glance."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metric = report["primary_metric"]
    entry = report["per_language"][language]
    m_entry = entry["metrics"][metric]
    arms = entry["arms"]
    fig = Figure(figsize=(11, 0.45 * len(arms) + 1.6))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(arms))[::-1]
    title = language + ("" if entry["zero_shot"] else " (target language)")
    if m_entry.get("available"):
        _plot_arms(left, y, arms, m_entry["arms"])
        _plot_differences(right, y, arms, m_entry.get("vs_baseline") or {})
    else:
        left.text(0.5, 0.5, f"{metric} not available", transform=left.transAxes, ha="center")
    best = report["best_nlu"]["arm"]
    left.set_yticks(y, [f"{a} (best NLU)" if a == best else a for a in arms])
    left.set_xlabel(f"{metric} (%)   bar: mean over seeds, dots: seeds")
    right.set_xlabel(
        f"Δ{metric} vs {BASELINE} (pp), 95% CI ({report.get('interval', 'bootstrap')})"
    )
    left.set_title(f"HumanEval-X {title}: {metric}")
    right.set_title("difference to the baseline")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _plot_arms(ax: Any, y: np.ndarray, arms: list[str], stats: Mapping[str, Any]) -> None:
    """Bars of the mean over seeds, a dot per seed, and the baseline's mean as a dashed line."""
    means = [100 * stats[a]["mean"] if a in stats else 0.0 for a in arms]  # absent: no bar
    ax.barh(y, means, color=[_colour(a) for a in arms], alpha=0.75)
    if BASELINE in stats:
        ax.axvline(100 * stats[BASELINE]["mean"], color="black", ls="--", lw=0.8)
    top = max([1.0, *means])
    for yi, arm in zip(y, arms, strict=True):
        points = [100 * v for v in stats[arm]["per_seed"].values()] if arm in stats else []
        ax.scatter(points, [yi] * len(points), color="black", s=12, zorder=3)
        top = max([top, *points])
    ax.set_xlim(0, min(100.0, top * 1.1))  # a readable axis even when all are 0


def _xerr(d: float, low: float, high: float) -> list[list[float]]:
    """matplotlib's error bar lengths around ``d``, never negative (an interval a rounding
    error away from its estimate must not cost the report its plot).

    >>> _xerr(0.1, 0.10000000000000002, 0.3)
    [[0.0], [0.19999999999999998]]
    """
    return [[max(0.0, d - low)], [max(0.0, high - d)]]


def _plot_differences(ax: Any, y: np.ndarray, arms: list[str], vs: Mapping[str, Any]) -> None:
    """Each arm's difference to the baseline with its CI, around a line at zero."""
    for yi, arm in zip(y, arms, strict=True):
        cmp = vs.get(arm)
        if not cmp or not cmp.get("available"):
            continue
        d, lo, hi = 100 * cmp["diff"], 100 * cmp["low"], 100 * cmp["high"]
        ax.errorbar(d, yi, xerr=_xerr(d, lo, hi), fmt="o", color=_colour(arm), capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    lo_x, hi_x = ax.get_xlim()
    if hi_x - lo_x < 1.0:  # all differences ~0: show +-1 pp rather than float noise
        ax.set_xlim(-1.0, 1.0)
    if not vs:
        ax.text(0.5, 0.5, f"no {BASELINE} arm", transform=ax.transAxes, ha="center")


_VERDICT_COLOURS = {"above zero": "#d62728", "below zero": "#1f77b4", "straddles zero": "#555555"}


def _language_title(language: str, entry: Mapping[str, Any]) -> str:
    return language + ("" if entry["zero_shot"] else " (target language, not zero-shot)")


def _draw_interval(ax: Any, y: float, cmp: Mapping[str, Any], **style: Any) -> None:
    """One comparison as a point with its CI, coloured by where the CI lies."""
    d, lo, hi = 100 * cmp["diff"], 100 * cmp["low"], 100 * cmp["high"]
    colour = style.pop("color", _VERDICT_COLOURS[cmp["verdict"]])
    ax.errorbar(d, y, xerr=_xerr(d, lo, hi), fmt="o", color=colour, capsize=3, **style)


def _finish_difference_axis(ax: Any) -> None:
    ax.axvline(0, color="black", lw=0.8)
    lo_x, hi_x = ax.get_xlim()
    if hi_x - lo_x <= 1.0:  # nothing drawn, or all differences ~0: +-1 pp, not float noise
        ax.set_xlim(-1.0, 1.0)
    ax.grid(axis="x", alpha=0.3)


def plot_cnn_vs_nlu(report: Mapping[str, Any], language: str) -> bytes:
    """A PNG for one language, the research question itself: CNN/DailyMail minus each NLU arm
    and minus the best NLU arm (top row), one panel per pass@k, with the 95% CIs coloured by
    where they lie (red: CNN/DM better, blue: worse, grey: the CI straddles zero)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    entry = report["per_language"][language]
    metrics = [metric_name(k) for k in report["ks"]]
    best = report["best_nlu"]["arm"]
    nlu = [a for a in entry["arms"] if a in NLU_ARMS]
    labels = [f"best NLU arm ({best})" if best else "best NLU arm (none)", *nlu]
    fig = Figure(figsize=(5.2 * len(metrics) + 1.5, 0.42 * len(labels) + 2.0))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    y = np.arange(len(labels))[::-1].astype(float)
    for ax, metric in zip(axes, metrics, strict=True):
        m_entry = entry["metrics"][metric]
        drawn = 0
        if m_entry.get("available"):
            rows = [
                m_entry.get("cnn_vs_best_nlu"),
                *[(m_entry.get("cnn_vs_nlu") or {}).get(a) for a in nlu],
            ]
            for yi, cmp in zip(y, rows, strict=True):
                if cmp and cmp.get("available"):
                    _draw_interval(ax, yi, cmp, ms=7 if yi == y[0] else 5)
                    drawn += 1
        if not drawn:
            reason = (
                "not available"
                if not m_entry.get("available")
                else f"no {CNN} results"
                if CNN not in m_entry["arms"]
                else "no NLU arm results"
            )
            ax.text(
                0.5,
                0.5,
                f"{metric}: {reason}",
                transform=ax.transAxes,
                ha="center",
                bbox={"facecolor": "white", "edgecolor": "none"},
            )
        ax.axhline(y[0] - 0.5, color="black", lw=0.5, ls=":")
        _finish_difference_axis(ax)
        ax.set_title(metric)
        ax.set_xlabel(f"{CNN} minus NLU arm, Δ{metric} (pp), 95% CI")
    axes[0].set_yticks(y, labels)
    axes[0].set_ylim(y[-1] - 0.7, y[0] + 0.7)
    fig.suptitle(
        f"HumanEval-X {_language_title(language, entry)}: does {CNN} beat the NLU tasks?\n"
        "red: CI above zero (CNN/DM better), blue: below, grey: straddles zero",
        fontsize=10,
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def plot_cnn_summary(report: Mapping[str, Any]) -> bytes:
    """One PNG across languages: CNN/DailyMail minus the best NLU arm and minus the baseline,
    per language and pass@k, with 95% CIs; the target language is marked (not zero-shot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    languages = list(report["per_language"])
    metrics = [metric_name(k) for k in report["ks"]]
    best = report["best_nlu"]["arm"]
    fig = Figure(figsize=(5.0 * len(metrics) + 2.0, 0.6 * len(languages) + 2.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    y = np.arange(len(languages))[::-1].astype(float)
    series = [("cnn_vs_best_nlu", f"minus best NLU arm ({best})", _COLOURS[CNN], 0.15)]
    series.append(("vs_baseline", f"minus {BASELINE}", _COLOURS[BASELINE], -0.15))
    for ax, metric in zip(axes, metrics, strict=True):
        for yi, lang in zip(y, languages, strict=True):
            entry = report["per_language"][lang]
            if not entry["zero_shot"]:
                ax.axhspan(yi - 0.45, yi + 0.45, color="#fff3c4", zorder=0)
            m_entry = entry["metrics"].get(metric, {})
            for key, _, colour, dy in series:
                cmp = (
                    m_entry.get(key) if key != "vs_baseline" else (m_entry.get(key) or {}).get(CNN)
                )
                if m_entry.get("available") and cmp and cmp.get("available"):
                    _draw_interval(ax, yi + dy, cmp, color=colour)
        _finish_difference_axis(ax)
        ax.set_title(metric)
        ax.set_xlabel(f"{CNN} minus ..., Δ{metric} (pp), 95% CI")
    axes[0].set_yticks(
        y,
        [
            lang
            if report["per_language"][lang]["zero_shot"]
            else f"{lang}\n(target, not zero-shot)"
            for lang in languages
        ],
    )
    handles = [
        Line2D([], [], color=c, marker="o", ls="", label=f"{CNN} {label}")
        for _, label, c, _ in series
    ]
    fig.legend(handles=handles, loc="upper center", ncol=2, fontsize=9, bbox_to_anchor=(0.5, 0.94))
    fig.suptitle("HumanEval-X, all languages: CNN/DailyMail against the NLU tasks", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.89))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()
