"""Text-to-text preprocessors: each turns a source record into ``{"inputs", "targets"}`` text.

Every input starts with the task's prefix, so one model can learn a mixture without confusing
tasks; each function's docstring gives its format and the package docstring has the table.

Multiple choice answers are letters rather than the chosen text: one token to score, and exact
match is accuracy. Records with no gold label (label -1, empty answerKey) are dropped. Extra
outputs (``answers`` for SQuAD, ``task_id``/``language`` for HumanEval-X) ride along for the
metrics and the evaluator; the feature converter drops them from model batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import seqio
import tensorflow as tf

NLI_LABELS = ("entailment", "neutral", "contradiction")
QQP_LABELS = ("not_duplicate", "duplicate")
SST2_LABELS = ("negative", "positive")
UNANSWERABLE = "unanswerable"
LETTERS = ("A", "B", "C", "D", "E", "F", "G", "H")
CODE_TESTS_HEADER = "Your code should pass these tests:"

Example = Mapping[str, tf.Tensor]


def field(ex: Example, *path: str) -> tf.Tensor:
    """``ex[path[0]][path[1]]...``; a missing field raises KeyError naming it (at trace time)."""
    value = ex
    for i, name in enumerate(path):
        if name not in value:
            where = ".".join(path[:i]) or "record"
            raise KeyError(f"{where} has no field {name!r} (it has {sorted(value)})")
        value = value[name]
    return value


def _join(*parts: tf.Tensor | str) -> tf.Tensor:
    return tf.strings.join(list(parts))


def _label_name(label: tf.Tensor, names: Sequence[str]) -> tf.Tensor:
    return tf.gather(tf.constant(names), tf.cast(label, tf.int32))


def _options(choices: tf.Tensor, letters: tf.Tensor | None = None) -> tf.Tensor:
    """``(A) first (B) second ...`` from a vector of choice texts."""
    if letters is None:
        letters = tf.constant(LETTERS)[: tf.size(choices)]
    return tf.strings.reduce_join(
        tf.strings.join(["(", letters, ") ", choices]), separator=" ", axis=-1
    )


def _has_label(key: str) -> Callable[[Example], tf.Tensor]:
    return lambda ex: field(ex, key) >= 0


def nli(
    ds: tf.data.Dataset,
    prefix: str,
    premise_key: str = "premise",
    hypothesis_key: str = "hypothesis",
) -> tf.data.Dataset:
    """NLI in one label space (MNLI, SNLI and ANLI share entailment/neutral/contradiction)."""

    def fn(ex: Example) -> dict[str, tf.Tensor]:
        return {
            "inputs": _join(
                prefix,
                " premise: ",
                field(ex, premise_key),
                " hypothesis: ",
                field(ex, hypothesis_key),
            ),
            "targets": _label_name(field(ex, "label"), NLI_LABELS),
        }

    return ds.filter(_has_label("label")).map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def labelled_text(
    ds: tf.data.Dataset, prefix: str, keys: Sequence[str], labels: Sequence[str]
) -> tf.data.Dataset:
    """Classification of one or more text fields: ``{prefix} k1: v1 k2: v2`` -> label name."""

    def fn(ex: Example) -> dict[str, tf.Tensor]:
        parts: list[tf.Tensor | str] = [prefix]
        for key in keys:
            parts += [f" {key}: ", field(ex, key)]
        return {"inputs": _join(*parts), "targets": _label_name(field(ex, "label"), labels)}

    return ds.filter(_has_label("label")).map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def sentence_pair(ds: tf.data.Dataset) -> tf.data.Dataset:
    """QQP: are the two questions paraphrases?"""
    return labelled_text(ds, "qqp", ("question1", "question2"), QQP_LABELS)


def single_sentence(ds: tf.data.Dataset) -> tf.data.Dataset:
    """SST-2 sentiment."""
    return labelled_text(ds, "sst2", ("sentence",), SST2_LABELS)


@seqio.map_over_dataset
def squad(ex: Example, prefix: str = "squad") -> dict[str, tf.Tensor]:
    """SQuAD 1.1/2.0: target is the first gold answer, ``unanswerable`` when there is none;
    ``answers`` keeps every gold answer for EM/F1."""
    answers = field(ex, "answers", "text")
    target = tf.concat([answers, [UNANSWERABLE]], axis=0)[0]  # first answer, else the marker
    return {
        "inputs": _join(
            prefix, " question: ", field(ex, "question"), " context: ", field(ex, "context")
        ),
        "targets": target,
        "answers": answers,
    }


def _letter_target(ex: Example, key: str = "label") -> tf.Tensor:
    return tf.gather(tf.constant(LETTERS), tf.cast(field(ex, key), tf.int32))


def hellaswag(ds: tf.data.Dataset) -> tf.data.Dataset:
    """HellaSwag: pick the ending that continues the context."""

    def fn(ex: Example) -> dict[str, tf.Tensor]:
        return {
            "inputs": _join(
                "hellaswag context: ", field(ex, "context"), " options: ", _options(ex["endings"])
            ),
            "targets": _letter_target(ex),
        }

    return ds.filter(_has_label("label")).map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def cosmos_qa(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Cosmos QA: reading comprehension with four answers."""

    def fn(ex: Example) -> dict[str, tf.Tensor]:
        choices = tf.stack([field(ex, f"answer{i}") for i in range(4)])
        return {
            "inputs": _join(
                "cosmos_qa context: ",
                field(ex, "context"),
                " question: ",
                field(ex, "question"),
                " options: ",
                _options(choices),
            ),
            "targets": _letter_target(ex),
        }

    return ds.filter(_has_label("label")).map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def commonsense_qa(ds: tf.data.Dataset) -> tf.data.Dataset:
    """CommonsenseQA: five choices labelled A-E by the record itself."""

    def fn(ex: Example) -> dict[str, tf.Tensor]:
        options = _options(field(ex, "choices", "text"), field(ex, "choices", "label"))
        return {
            "inputs": _join(
                "commonsense_qa question: ", field(ex, "question"), " options: ", options
            ),
            "targets": field(ex, "answerKey"),
        }

    has_answer = lambda ex: tf.strings.length(field(ex, "answerKey")) > 0
    return ds.filter(has_answer).map(fn, num_parallel_calls=tf.data.AUTOTUNE)


@seqio.map_over_dataset
def ccg(ex: Example) -> dict[str, tf.Tensor]:
    """CCG supertagging as sequence generation: one tag per input token, in order."""
    return {
        "inputs": _join("ccg: ", tf.strings.reduce_join(field(ex, "tokens"), separator=" ")),
        "targets": tf.strings.reduce_join(field(ex, "tags"), separator=" "),
    }


@seqio.map_over_dataset
def summarize(
    ex: Example, article_key: str = "article", summary_key: str = "highlights"
) -> dict[str, tf.Tensor]:
    """CNN/DailyMail summarization (T5's format)."""
    return {
        "inputs": _join("summarize: ", field(ex, article_key)),
        "targets": field(ex, summary_key),
    }


@seqio.map_over_dataset
def code_from_description(ex: Example) -> dict[str, tf.Tensor]:
    """MBPP's prompt: the description then the test asserts; target is the code with ``\\n``
    line ends (MBPP's code uses ``\\r\\n``, HumanEval-X uses ``\\n``)."""
    tests = tf.strings.reduce_join(field(ex, "test_list"), separator="\n")
    return {
        "inputs": _join(field(ex, "text"), "\n", CODE_TESTS_HEADER, "\n", tests),
        "targets": tf.strings.regex_replace(field(ex, "code"), "\r\n", "\n"),
        "task_id": field(ex, "task_id"),
    }


@seqio.map_over_dataset
def code_completion(ex: Example) -> dict[str, tf.Tensor]:
    """HumanEval's format (``code_format``): code prompt in, the function body out."""
    return {
        "inputs": field(ex, "prompt"),
        "targets": field(ex, "completion"),
        "task_id": field(ex, "task_id"),
    }


@seqio.map_over_dataset
def humaneval_x(ex: Example) -> dict[str, tf.Tensor]:
    """HumanEval-X decoding input; ``task_id`` and ``language`` identify the sample for the
    evaluator, which assembles and runs the program from its own copy of the problem. Rust's
    ``prompt`` is only the doc comment, so its declaration (``use`` lines and signature)
    follows; this must agree with ``t5x_xfer.codeeval.languages.generation_prompt``."""
    prompt, declaration = field(ex, "prompt"), field(ex, "declaration")
    is_rust = tf.equal(field(ex, "language"), "rust")
    return {
        "inputs": tf.where(is_rust, _join(prompt, declaration), prompt),
        "targets": field(ex, "canonical_solution"),
        "task_id": field(ex, "task_id"),
        "language": ex["language"],
    }
