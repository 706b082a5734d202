"""Metrics as seqio metric functions ``fn(targets, predictions) -> {name: value}`` (percent).

SQuAD uses the official evaluation script's answer normalisation (lower case, strip
punctuation, the articles a/an/the and extra whitespace) and takes the maximum over the gold
answers; an unanswerable SQuAD 2.0 question has the single gold answer ``""``. ROUGE is
rouge-score's, averaged over examples, so the numbers equal rouge-score's own.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from t5x_xfer.tasks.preprocessors import UNANSWERABLE

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """The official SQuAD v1.1/v2.0 normalisation."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def squad_exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def squad_f1(prediction: str, gold: str) -> float:
    """Token-level F1 after normalisation; as in the official v2.0 script, an empty answer
    scores 1 only against an empty answer."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = collections.Counter(pred) & collections.Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def squad(targets: Sequence[Sequence[str]], predictions: Sequence[str]) -> dict[str, float]:
    """Mean over questions of the best EM and F1 over each question's gold answers."""
    _check_lengths(targets, predictions)
    em = [
        max(squad_exact_match(p, g) for g in golds)
        for golds, p in zip(targets, predictions, strict=True)
    ]
    f1 = [max(squad_f1(p, g) for g in golds) for golds, p in zip(targets, predictions, strict=True)]
    return {"em": 100 * float(np.mean(em)), "f1": 100 * float(np.mean(f1))}


def squad_postprocess(
    output: str, example: Mapping[str, Any] | None = None, is_target: bool = False
) -> str | list[str]:
    """Predictions: ``unanswerable`` -> ``""``. Targets: every gold answer of the example
    (``[""]`` for an unanswerable question), so the metric can take the best match."""
    if not is_target:
        return "" if output == UNANSWERABLE else output
    answers = [a.decode("utf-8") if isinstance(a, bytes) else str(a) for a in example["answers"]]
    return answers or [""]


def accuracy(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Exact string match (the label name or option letter)."""
    _check_lengths(targets, predictions)
    return {
        "accuracy": 100
        * float(np.mean([t == p for t, p in zip(targets, predictions, strict=True)]))
    }


def ccg_tag_accuracy(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Per-token supertag accuracy: tags compared by position; a prediction that is too short
    gets the missing tags wrong, extra predicted tags are ignored."""
    _check_lengths(targets, predictions)
    right = total = 0
    for target, prediction in zip(targets, predictions, strict=True):
        gold, pred = target.split(), prediction.split()
        right += sum(g == p for g, p in zip(gold, pred, strict=False))
        total += len(gold)
    return {"tag_accuracy": 100 * right / max(total, 1)}


ROUGE_TYPES = ("rouge1", "rouge2", "rougeLsum")


def rouge(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/Lsum F-measure (rouge-score, Porter stemming); Lsum splits sentences at
    newlines, which is how CNN/DailyMail highlights are joined."""
    from rouge_score import rouge_scorer

    _check_lengths(targets, predictions)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    scores = [scorer.score(t, p) for t, p in zip(targets, predictions, strict=True)]
    return {k: 100 * float(np.mean([s[k].fmeasure for s in scores])) for k in ROUGE_TYPES}


def _check_lengths(targets: Sequence[Any], predictions: Sequence[Any]) -> None:
    if len(targets) != len(predictions):
        raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
    if not targets:
        raise ValueError("no examples to score")
