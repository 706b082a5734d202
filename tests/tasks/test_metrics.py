"""Metrics on known cases: SQuAD EM/F1, ROUGE equal to rouge-score's, accuracies."""

from __future__ import annotations

import numpy as np
import pytest
from rouge_score import rouge_scorer

from t5x_xfer.tasks import metrics


def test_squad_normalisation_and_scores():
    assert metrics.normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert metrics.squad_exact_match("the Eiffel tower.", "Eiffel Tower") == 1.0
    # pred "tower in paris" vs gold "eiffel tower": 1 common token, P=1/3, R=1/2 -> F1=0.4
    assert metrics.squad_f1("tower in Paris", "Eiffel Tower") == pytest.approx(0.4)
    scores = metrics.squad(
        [["Eiffel Tower", "the tower"], [""], ["Paris"]],
        ["tower", "", "London"],
    )
    # q1: EM 1 via "the tower"; q2: unanswerable predicted as unanswerable; q3: wrong.
    assert scores["em"] == pytest.approx(200 / 3)
    assert scores["f1"] == pytest.approx(200 / 3)
    assert metrics.squad([["Paris"]], [""]) == {"em": 0.0, "f1": 0.0}


def test_squad_postprocess_maps_unanswerable():
    assert metrics.squad_postprocess("unanswerable") == ""
    assert metrics.squad_postprocess("Paris") == "Paris"
    example = {"answers": np.array([b"Paris", b"the city"], dtype=object)}
    assert metrics.squad_postprocess("x", example, is_target=True) == ["Paris", "the city"]
    empty = {"answers": np.array([], dtype=object)}
    assert metrics.squad_postprocess("unanswerable", empty, is_target=True) == [""]


def test_rouge_equals_rouge_score():
    targets = ["The cat sat on the mat.\nIt purred.", "Council approves new library."]
    predictions = ["A cat sat on a mat and purred.", "The council approved a library downtown."]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
    expected = {
        k: 100
        * np.mean(
            [scorer.score(t, p)[k].fmeasure for t, p in zip(targets, predictions, strict=True)]
        )
        for k in ("rouge1", "rouge2", "rougeLsum")
    }
    got = metrics.rouge(targets, predictions)
    assert got == pytest.approx(expected)
    assert 0 < got["rouge2"] < got["rouge1"] < 100


def test_accuracy_and_tag_accuracy():
    assert metrics.accuracy(["A", "B", "neutral"], ["A", "C", "neutral"]) == {
        "accuracy": pytest.approx(200 / 3)
    }
    got = metrics.ccg_tag_accuracy(["NP S\\NP N", "N N"], ["NP S/NP N", "N"])
    assert got == {"tag_accuracy": pytest.approx(300 / 5)}  # 2 of 3, then 1 of 2 (one missing)


def test_metric_inputs_are_checked():
    with pytest.raises(ValueError, match="2 targets but 1 predictions"):
        metrics.accuracy(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no examples"):
        metrics.rouge([], [])
