"""The research report: every arm of the grid against the baseline, and CNN/DailyMail against the
NLU arms, per HumanEval-X language, with 95% confidence intervals of the differences.

    python -m t5x_xfer.report --root RUNS --out RUNS/report [--arms baseline mnli ...]

Input: ``<root>/<arm>/seed<S>/eval/`` for each arm and seed, each the output directory of
``python -m t5x_xfer.evaluate_code`` (``results.jsonl``: one row per sample with task_id,
language, status, passed, known_defect; ``summary.json`` for the sandbox tier). Output in
``<out>``: ``report.json`` (everything, per-problem values included), ``report.md`` (tables and
verdicts), per language ``pass_at_1_<language>.png`` (every arm against the baseline) and
``cnn_vs_nlu_<language>.png`` (CNN/DailyMail minus each NLU arm and the best one, pass@1 and
pass@10), and ``cnn_summary.png`` across languages, each written atomically.

Statistics. pass@k is estimated per problem with codeeval's unbiased estimator (samples with an
environment error left out, as codeeval does) and averaged over problems, then over seeds. Arms
are compared on the same problems and seeds (seed i of one arm with seed i of the other, which
share the target-stage seed): by default a t interval with problems and seeds as crossed random
effects (``stats.crossed_interval``), or the paired hierarchical bootstrap (``--interval
bootstrap``).

Modules: ``load`` (reading evaluate_code outputs), ``stats`` (pass@k per problem, the paired
bootstrap, comparisons), ``build`` (the report as a JSON-able dict), ``render`` (markdown and
plots), ``write`` (``write_report`` and the CLI). Importing this package loads numpy but neither
seqio, TensorFlow nor JAX: the arm names come from ``t5x_xfer.arms``.
"""

from t5x_xfer.arms import ARM_ORDER, BASELINE, CNN, EXPECTED_ARMS, NLU_ARMS
from t5x_xfer.arms import NLU9 as NLU_TASKS
from t5x_xfer.report.build import KS, LANGUAGE_ORDER, TARGET_LANGUAGE, build_report
from t5x_xfer.report.load import RunResults, discover, load_run
from t5x_xfer.report.render import markdown, plot_cnn_summary, plot_cnn_vs_nlu, plot_language
from t5x_xfer.report.stats import (
    CONFIDENCE,
    INTERVALS,
    Interval,
    crossed_interval,
    paired_bootstrap,
    per_problem_pass_at_k,
)
from t5x_xfer.report.write import main, write_report

__all__ = [
    "ARM_ORDER",
    "BASELINE",
    "CNN",
    "CONFIDENCE",
    "INTERVALS",
    "EXPECTED_ARMS",
    "KS",
    "LANGUAGE_ORDER",
    "NLU_ARMS",
    "NLU_TASKS",
    "TARGET_LANGUAGE",
    "Interval",
    "RunResults",
    "build_report",
    "crossed_interval",
    "discover",
    "load_run",
    "main",
    "markdown",
    "paired_bootstrap",
    "per_problem_pass_at_k",
    "plot_cnn_summary",
    "plot_cnn_vs_nlu",
    "plot_language",
    "write_report",
]
