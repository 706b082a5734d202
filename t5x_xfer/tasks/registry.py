"""Registration of every Task and Mixture, for the vocabulary of the model being run.

seqio's registries are global and a Task's output features fix its vocabulary, while the
vocabulary is only known once a binary has parsed the model's gin file. So the names are fixed
here (``TASKS``, ``MIXTURES``) and ``register_all(vocabulary, data_dir)`` (re-)registers them:
calling it again with the same arguments is a no-op; different arguments replace our tasks and
mixtures (one process evaluating two models); a name already taken by someone else's task is
an error. ``get(name)`` fails loudly on unknown names, listing the known ones.

Mixing rates are examples-proportional over the published train-set sizes in
``NUM_TRAIN_EXAMPLES`` (so mixtures can be built before the data is there), capped at
``mixture_cap`` examples per task as in T5.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import seqio

from t5x_xfer.arms import NLU9
from t5x_xfer.tasks import metrics
from t5x_xfer.tasks import preprocessors as pp
from t5x_xfer.tasks import sources as src

TRAIN_VALIDATION = {"train": "train", "validation": "validation"}
TFDS = {
    "mnli": src.TfdsDataset(
        "glue/mnli:2.0.0",
        {
            "train": "train",
            "validation": "validation_matched",
            "validation_mismatched": "validation_mismatched",
        },
    ),
    "qqp": src.TfdsDataset("glue/qqp:2.0.0", TRAIN_VALIDATION),
    "sst2": src.TfdsDataset("glue/sst2:2.0.0", TRAIN_VALIDATION),
    "anli_r1": src.TfdsDataset("anli/r1:0.1.0", {**TRAIN_VALIDATION, "test": "test"}),
    "anli_r2": src.TfdsDataset("anli/r2:0.1.0", {**TRAIN_VALIDATION, "test": "test"}),
    "anli_r3": src.TfdsDataset("anli/r3:0.1.0", {**TRAIN_VALIDATION, "test": "test"}),
    "snli": src.TfdsDataset("snli:1.1.0", {**TRAIN_VALIDATION, "test": "test"}),
    "squad_v1": src.TfdsDataset("squad/v1.1:3.0.0", TRAIN_VALIDATION),
    "squad_v2": src.TfdsDataset("squad/v2.0:3.0.0", TRAIN_VALIDATION),
    "hellaswag": src.TfdsDataset("hellaswag:1.1.0", TRAIN_VALIDATION),
    "cosmos_qa": src.TfdsDataset("cosmos_qa:1.0.0", TRAIN_VALIDATION),
    # TFDS's cnn_dailymail 3.x is the non-anonymised "version 3.0.0" data of See et al.
    "cnn_dailymail": src.TfdsDataset("cnn_dailymail:3.4.0", {**TRAIN_VALIDATION, "test": "test"}),
}

# Published train sizes (before dropping unlabelled records), for examples-proportional mixing.
NUM_TRAIN_EXAMPLES: dict[str, int] = {
    "xfer_anli_plus_r1": 16_946,
    "xfer_anli_plus_r2": 45_460,
    "xfer_anli_plus_r3": 100_459,
    "xfer_anli_plus_mnli": 392_702,
    "xfer_anli_plus_snli": 550_152,
    "xfer_mnli": 392_702,
    "xfer_qqp": 363_846,
    "xfer_squad_v1": 87_599,
    "xfer_squad_v2": 130_319,
    "xfer_hellaswag": 39_905,
    "xfer_cosmos_qa": 25_262,
    "xfer_commonsense_qa": 9_741,
    "xfer_ccg": 39_604,
    "xfer_sst2": 67_349,
    "xfer_cnn_dailymail": 287_113,
    "xfer_mbpp": 374,
}
ANLI_PLUS_PARTS = ("r1", "r2", "r3", "mnli", "snli")
# NLU9, the nine intermediate tasks of Phang et al. (2020), is named in t5x_xfer.arms.
INTERMEDIATE = (*NLU9, "sst2", "cnn_dailymail")
HUMANEVAL_X_LANGUAGES = src.HUMANEVAL_X_LANGUAGES
DEFAULT_MIXTURE_CAP = 2**17


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Everything about a task except the vocabulary."""

    source: Callable[[Paths], seqio.DataSource]
    preprocessor: Callable[..., Any]
    metric_fns: tuple[Callable[..., Mapping[str, float]], ...] = ()
    postprocess_fn: Callable[..., Any] | None = None


@dataclasses.dataclass(frozen=True)
class Paths:
    """Where each kind of data lives; defaults are laid out under one ``data_dir``."""

    data_dir: Path
    tfds_data_dir: Path
    commonsense_qa_dir: Path
    ccgbank_dir: Path
    mbpp_file: Path
    code_jsonl_dir: Path
    humaneval_x_dir: Path


def _tfds(key: str) -> Callable[[Paths], seqio.DataSource]:
    return lambda p: src.PreparedTfdsDataSource(TFDS[key], p.tfds_data_dir)


def _nli(prefix: str, premise_key: str = "premise") -> Callable[..., Any]:
    return functools.partial(pp.nli, prefix=prefix, premise_key=premise_key)


def _specs() -> dict[str, TaskSpec]:
    acc = (metrics.accuracy,)
    specs = {
        "xfer_anli_plus_r1": TaskSpec(_tfds("anli_r1"), _nli("nli", "context"), acc),
        "xfer_anli_plus_r2": TaskSpec(_tfds("anli_r2"), _nli("nli", "context"), acc),
        "xfer_anli_plus_r3": TaskSpec(_tfds("anli_r3"), _nli("nli", "context"), acc),
        "xfer_anli_plus_mnli": TaskSpec(_tfds("mnli"), _nli("nli"), acc),
        "xfer_anli_plus_snli": TaskSpec(_tfds("snli"), _nli("nli"), acc),
        "xfer_mnli": TaskSpec(_tfds("mnli"), _nli("mnli"), acc),
        "xfer_qqp": TaskSpec(_tfds("qqp"), pp.sentence_pair, acc),
        "xfer_sst2": TaskSpec(_tfds("sst2"), pp.single_sentence, acc),
        "xfer_squad_v1": TaskSpec(
            _tfds("squad_v1"),
            functools.partial(pp.squad, prefix="squad"),
            (metrics.squad,),
            metrics.squad_postprocess,
        ),
        "xfer_squad_v2": TaskSpec(
            _tfds("squad_v2"),
            functools.partial(pp.squad, prefix="squad2"),
            (metrics.squad,),
            metrics.squad_postprocess,
        ),
        "xfer_hellaswag": TaskSpec(_tfds("hellaswag"), pp.hellaswag, acc),
        "xfer_cosmos_qa": TaskSpec(_tfds("cosmos_qa"), pp.cosmos_qa, acc),
        "xfer_commonsense_qa": TaskSpec(
            lambda p: src.commonsense_qa_source(p.commonsense_qa_dir), pp.commonsense_qa, acc
        ),
        "xfer_ccg": TaskSpec(
            lambda p: src.ccg_source(p.ccgbank_dir), pp.ccg, (metrics.ccg_tag_accuracy,)
        ),
        "xfer_cnn_dailymail": TaskSpec(_tfds("cnn_dailymail"), pp.summarize, (metrics.rouge,)),
        "xfer_mbpp": TaskSpec(lambda p: src.mbpp_source(p.mbpp_file), pp.code_from_description),
        "xfer_code_jsonl": TaskSpec(
            lambda p: src.code_jsonl_source(p.code_jsonl_dir), pp.code_from_description
        ),
        "xfer_mbpp_completion": TaskSpec(
            lambda p: src.mbpp_source(p.mbpp_file, completion=True), pp.code_completion
        ),
        "xfer_code_jsonl_completion": TaskSpec(
            lambda p: src.code_jsonl_source(p.code_jsonl_dir, completion=True),
            pp.code_completion,
        ),
    }
    for lang in HUMANEVAL_X_LANGUAGES:
        specs[f"xfer_humanevalx_{lang}"] = TaskSpec(
            functools.partial(
                lambda p, lang: src.humaneval_x_source(p.humaneval_x_dir, lang), lang=lang
            ),
            pp.humaneval_x,
        )
    return specs


SPECS: dict[str, TaskSpec] = _specs()


def _rate(task: str, cap: int | None) -> int:
    n = NUM_TRAIN_EXAMPLES[task]
    return n if cap is None else min(n, cap)


def _mixtures(cap: int) -> dict[str, list[tuple[str, float]]]:
    """Mixture name -> [(task or mixture name, rate)]."""
    anli_plus = [
        (f"xfer_anli_plus_{part}", _rate(f"xfer_anli_plus_{part}", None))
        for part in ANLI_PLUS_PARTS
    ]
    anli_plus_size = sum(rate for _, rate in anli_plus)
    mixes: dict[str, list[tuple[str, float]]] = {"xfer_mix_anli_plus": anli_plus}
    for name in INTERMEDIATE:
        if name != "anli_plus":
            mixes[f"xfer_mix_{name}"] = [(f"xfer_{name}", 1.0)]

    def capped(name: str) -> tuple[str, float]:
        if name == "anli_plus":
            return ("xfer_mix_anli_plus", min(anli_plus_size, cap))
        return (f"xfer_{name}", _rate(f"xfer_{name}", cap))

    mixes["xfer_mix_nlu9"] = [capped(n) for n in NLU9]
    mixes["xfer_mix_all10"] = [capped(n) for n in (*NLU9, "cnn_dailymail")]
    mixes["xfer_mix_target_mbpp"] = [("xfer_mbpp", 1.0)]
    mixes["xfer_mix_target_mbpp_completion"] = [("xfer_mbpp_completion", 1.0)]
    mixes["xfer_mix_humanevalx"] = [
        (f"xfer_humanevalx_{lang}", 1.0) for lang in HUMANEVAL_X_LANGUAGES
    ]
    return mixes


TASKS: tuple[str, ...] = tuple(SPECS)
MIXTURES: tuple[str, ...] = tuple(_mixtures(DEFAULT_MIXTURE_CAP))

_registered: tuple[Any, ...] | None = None


def default_humaneval_x_dir(data_dir: Path) -> Path:
    """``<data_dir>/humaneval-x`` if present, else as ``codeeval.data.humaneval_x_dir`` says
    ($T5X_HUMANEVAL_X_DIR, else the copy beside a development checkout, if there)."""
    from t5x_xfer.codeeval.data import SHARED_COPY, humaneval_x_dir

    own = data_dir / "humaneval-x"
    return humaneval_x_dir(
        own if own.is_dir() else None, default=SHARED_COPY if SHARED_COPY.is_dir() else own
    )


def register_all(
    vocabulary: seqio.Vocabulary,
    data_dir: str | Path,
    *,
    tfds_data_dir: str | Path | None = None,
    commonsense_qa_dir: str | Path | None = None,
    ccgbank_dir: str | Path | None = None,
    mbpp_file: str | Path | None = None,
    code_jsonl_dir: str | Path | None = None,
    humaneval_x_dir: str | Path | None = None,
    mixture_cap: int = DEFAULT_MIXTURE_CAP,
) -> Paths:
    """Register every task in ``TASKS`` and mixture in ``MIXTURES`` for ``vocabulary``.

    Data layout under ``data_dir`` unless overridden: ``tfds/`` (a TFDS data dir),
    ``commonsense_qa/`` (``save_to_disk`` of tau/commonsense_qa), ``ccgbank/`` (LDC2005T13),
    ``mbpp/mbpp.jsonl``, ``code_jsonl/{train,validation}.jsonl`` and ``humaneval-x/``. Nothing
    is read until a dataset is requested. Returns the resolved paths.
    """
    root = Path(data_dir).expanduser()
    opt = lambda value, default: Path(value).expanduser() if value is not None else default
    paths = Paths(
        data_dir=root,
        tfds_data_dir=opt(tfds_data_dir, root / "tfds"),
        commonsense_qa_dir=opt(commonsense_qa_dir, root / "commonsense_qa"),
        ccgbank_dir=opt(ccgbank_dir, root / "ccgbank"),
        mbpp_file=opt(mbpp_file, root / "mbpp" / "mbpp.jsonl"),
        code_jsonl_dir=opt(code_jsonl_dir, root / "code_jsonl"),
        humaneval_x_dir=opt(humaneval_x_dir, default_humaneval_x_dir(root)),
    )
    global _registered
    key = (vocabulary, paths, mixture_cap)
    if _registered == key:
        return paths
    ours = set(TASKS) | set(MIXTURES)
    if _registered is None:
        taken = sorted(
            ours & (set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))
        )
        if taken:
            raise ValueError(f"seqio names {taken} are already registered by someone else")
    _unregister()
    features = {
        "inputs": seqio.Feature(vocabulary, add_eos=True),
        "targets": seqio.Feature(vocabulary, add_eos=True),
    }
    for name, spec in SPECS.items():
        seqio.TaskRegistry.add(
            name,
            source=spec.source(paths),
            preprocessors=[
                spec.preprocessor,
                seqio.preprocessors.tokenize,
                seqio.CacheDatasetPlaceholder(),
                seqio.preprocessors.append_eos_after_trim,
            ],
            output_features=features,
            metric_fns=list(spec.metric_fns),
            postprocess_fn=spec.postprocess_fn,
        )
    for name, parts in _mixtures(mixture_cap).items():
        seqio.MixtureRegistry.add(name, parts)
    _registered = key
    return paths


def _unregister() -> None:
    for name in MIXTURES:
        if name in seqio.MixtureRegistry.names():
            seqio.MixtureRegistry.remove(name)
    for name in TASKS:
        if name in seqio.TaskRegistry.names():
            seqio.TaskRegistry.remove(name)


def get(name: str) -> seqio.Task | seqio.Mixture:
    """The registered task or mixture ``name``; errors list the known names."""
    if name not in TASKS and name not in MIXTURES:
        raise KeyError(
            f"unknown task or mixture {name!r}; known tasks: {', '.join(TASKS)}; "
            f"known mixtures: {', '.join(MIXTURES)}"
        )
    if _registered is None:
        raise RuntimeError(
            f"{name!r} is not registered yet: call register_all(vocabulary, data_dir)"
        )
    return seqio.get_mixture_or_task(name)
