"""Offline HumanEval-X evaluation: loading, program assembly, sandboxed execution, pass@k.

Entry points: ``evaluate.evaluate`` (library), ``python -m t5x_xfer.evaluate_code`` (CLI) and
``python -m t5x_xfer.codeeval doctor`` (which toolchains and which sandbox tier are available).
"""

from t5x_xfer.codeeval.languages import LANGUAGES, STATUSES, STOP_SEQUENCES, truncate_completion

__all__ = ["LANGUAGES", "STATUSES", "STOP_SEQUENCES", "truncate_completion"]
