"""seqio Tasks and Mixtures of the experiment, registered for the model's vocabulary.

Binaries call ``register_all(vocabulary, data_dir)`` after parsing gin (``VOCABULARY`` comes from
the model file, so the same tasks serve T5, mT5 and CodeT5+), then ``get(name)``.

Naming scheme: a Task is ``xfer_<dataset>`` (what you inspect, evaluate or decode); a Mixture is
``xfer_mix_<stage>`` (what a training stage runs on): one per intermediate task
(``xfer_mix_<task>``), ``xfer_mix_nlu9`` (the nine tasks of Phang et al. 2020,
examples-proportional, capped at 2**17 examples per task), ``xfer_mix_all10`` (nlu9 +
CNN/DailyMail), ``xfer_mix_target_mbpp_completion`` (the target stage: MBPP in HumanEval's
completion format, see ``code_format``), ``xfer_mix_target_mbpp`` (MBPP's own format) and
``xfer_mix_humanevalx`` (all six languages). ANLI+ exists only as ``xfer_mix_anli_plus``: its
five parts (``xfer_anli_plus_*``) share the NLI prompt and label space and mix in proportion to
their sizes.

| task | source | inputs | targets | metric |
|---|---|---|---|---|
| `xfer_anli_plus_{r1,r2,r3,mnli,snli}` | TFDS anli/r1-r3, glue/mnli, snli | `nli premise: {p} hypothesis: {h}` | `entailment` / `neutral` / `contradiction` | accuracy |
| `xfer_mnli` | TFDS glue/mnli | `mnli premise: {p} hypothesis: {h}` | `entailment` / `neutral` / `contradiction` | accuracy |
| `xfer_qqp` | TFDS glue/qqp | `qqp question1: {q1} question2: {q2}` | `duplicate` / `not_duplicate` | accuracy |
| `xfer_squad_v1` | TFDS squad/v1.1 | `squad question: {q} context: {c}` | first gold answer | SQuAD EM, F1 |
| `xfer_squad_v2` | TFDS squad/v2.0 | `squad2 question: {q} context: {c}` | first gold answer or `unanswerable` | SQuAD EM, F1 |
| `xfer_hellaswag` | TFDS hellaswag | `hellaswag context: {c} options: (A) {e0} (B) {e1} (C) {e2} (D) {e3}` | `A`-`D` | accuracy |
| `xfer_cosmos_qa` | TFDS cosmos_qa | `cosmos_qa context: {c} question: {q} options: (A) {a0} ... (D) {a3}` | `A`-`D` | accuracy |
| `xfer_commonsense_qa` | HF datasets tau/commonsense_qa (saved to disk) | `commonsense_qa question: {q} options: (A) {t0} ... (E) {t4}` | `A`-`E` | accuracy |
| `xfer_ccg` | CCGbank AUTO files (LDC2005T13) | `ccg: {tokens}` | supertags, space-separated | tag accuracy |
| `xfer_sst2` (extra) | TFDS glue/sst2 | `sst2 sentence: {s}` | `negative` / `positive` | accuracy |
| `xfer_cnn_dailymail` | TFDS cnn_dailymail 3.x | `summarize: {article}` | `{highlights}` | ROUGE-1/2/Lsum |
| `xfer_mbpp` | mbpp.jsonl (task_ids 601-974 train) | `{text}\\nYour code should pass these tests:\\n{asserts}` | `{code}` | (codeeval) |
| `xfer_code_jsonl` | your `{train,validation}.jsonl`, MBPP's fields | as MBPP | `{code}` | (codeeval) |
| `xfer_mbpp_completion`, `xfer_code_jsonl_completion` | the same records, rewritten with `ast` | imports and helpers, then the entry point's signature with the description and the first test as its docstring | the function body | (codeeval) |
| `xfer_humanevalx_{cpp,go,java,js,python,rust}` | HumanEval-X jsonl.gz, split `test` | the prompt (Rust: prompt + declaration) | canonical solution | (codeeval) |

Splits are ``train`` and ``validation`` (MNLI also ``validation_mismatched``; ANLI, SNLI, CCG and
CNN/DailyMail also ``test``; MBPP ``train``/``validation``/``test``/``prompt``; HumanEval-X only
``test``). See ``python -m t5x_xfer.tasks.inspect --help`` to print what the model sees.
"""  # noqa: E501

from typing import Any

# Lazy (PEP 562): ``python -m t5x_xfer.tasks.inspect`` imports this package first, and seqio
# (TensorFlow) must load only after the binary has set up quiet logging.
_FROM_REGISTRY = ("INTERMEDIATE", "MIXTURES", "NLU9", "NUM_TRAIN_EXAMPLES", "TASKS", "Paths")
_FROM_REGISTRY += ("get", "register_all")


def __getattr__(name: str) -> Any:
    if name in _FROM_REGISTRY:
        from t5x_xfer.tasks import registry

        return getattr(registry, name)
    if name == "MissingDataError":
        from t5x_xfer.tasks.sources import MissingDataError

        return MissingDataError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "INTERMEDIATE",
    "MIXTURES",
    "NLU9",
    "NUM_TRAIN_EXAMPLES",
    "TASKS",
    "MissingDataError",
    "Paths",
    "get",
    "register_all",
]
