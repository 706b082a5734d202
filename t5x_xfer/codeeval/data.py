"""Where HumanEval-X lives, loading its problems and samples, and the known defects of the data.

Problems come from a local directory (the ``shared/data/humaneval-x`` layout or a Hugging Face
snapshot of ``THUDM/humaneval-x``, jsonl or jsonl.gz) or from the hub; which one is decided in
one place, :func:`humaneval_x_dir`, for every binary.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from t5x_xfer.codeeval import languages as L
from t5x_xfer.io_utils import iter_jsonl

HF_REPO = "THUDM/humaneval-x"
ENV_VAR = "T5X_HUMANEVAL_X_DIR"
MINIBENCH = "minibench"  # names the project's mini benchmark wherever a directory is asked for
# A development checkout's copy of the real data, beside the repository (see its README).
SHARED_COPY = Path(__file__).resolve().parents[3] / "shared" / "data" / "humaneval-x"

log = logging.getLogger(__name__)
_warned: list[str] = []
_WARNED_ENV = "T5X_XFER_MINIBENCH_WARNED"


def humaneval_x_dir(
    explicit: str | Path | None = None, *, default: str | Path | None = None
) -> Path | None:
    """Where HumanEval-X problems are read from:

    1. ``explicit`` (an argument such as ``--data_dir``), where "minibench" names the
       project's mini benchmark;
    2. else the directory in ``$T5X_HUMANEVAL_X_DIR``;
    3. else ``default``: a directory, "minibench" (logged as a warning, because its results
       are not HumanEval-X numbers), or None, meaning the Hugging Face hub (``load_problems``
       downloads it).
    """
    for choice in (explicit, os.environ.get(ENV_VAR) or None, default):
        if choice is None or str(choice) == "":
            continue
        if str(choice) != MINIBENCH:
            return Path(choice).expanduser()
        from t5x_xfer.codeeval.minibench import MINIBENCH_DIR, num_problems

        if choice is default and not _warned and not os.environ.get(_WARNED_ENV):
            # Once per run: the grid driver asks once per arm, and the stages it starts
            # inherit the environment variable.
            _warned.append(MINIBENCH)
            os.environ[_WARNED_ENV] = "1"
            log.warning(
                "No HumanEval-X directory given (argument or $%s): using the project's mini "
                "benchmark at %s (%d problems per language in HumanEval-X format). Its pass@k "
                "checks the pipeline only; these are NOT HumanEval-X numbers.",
                ENV_VAR,
                MINIBENCH_DIR,
                num_problems(),
            )
        return MINIBENCH_DIR
    return None


# Measured by executing every canonical solution (see the data README). "wrong": the canonical
# solution fails its own tests; "flaky": passes or fails from run to run; "helper": the tests
# call helpers only the canonical solution defines, so a completion must define them too.
KNOWN_DEFECTS: dict[str, tuple[str, str]] = {
    "JavaScript/112": ("wrong", "canonical solution fails its own tests"),
    "JavaScript/155": ("wrong", "canonical solution fails its own tests"),
    "Go/95": ("flaky", "canonical solution iterates a Go map: result depends on map order"),
    "Rust/10": ("helper", "tests call a helper only the canonical solution defines"),
    "Rust/38": ("helper", "tests call a helper only the canonical solution defines"),
    "Rust/50": ("helper", "tests call a helper only the canonical solution defines"),
    "Rust/137": ("helper", "tests call a helper only the canonical solution defines"),
}


@dataclasses.dataclass(frozen=True)
class Sample:
    """One generated completion; ``line`` is its 1-based line in the samples file."""

    task_id: str
    completion: str
    language: str
    line: int = 0


def _candidates(root: Path, lang: str) -> list[Path]:
    names = [f"humaneval_{lang}.jsonl", "humaneval.jsonl"]
    dirs = [root / lang, root / lang / "data", root / "data" / lang / "data", root / "data" / lang]
    return [d / (n + gz) for d in dirs for n in names for gz in (".gz", "")]


def load_problems(
    languages: Iterable[str], data_dir: str | Path | None = None
) -> dict[str, dict[str, dict]]:
    """Problems per language, keyed by task_id.

    With ``data_dir`` None the files are fetched from the Hugging Face hub (network needed).
    """
    out: dict[str, dict[str, dict]] = {}
    for lang in L.check_languages(list(languages)):
        if data_dir is None:
            path = _download(lang)
        else:
            root = Path(data_dir)
            found = [p for p in _candidates(root, lang) if p.is_file()]
            if not found:
                raise FileNotFoundError(
                    f"no HumanEval-X file for {lang!r} under {root}; looked for "
                    + ", ".join(str(p.relative_to(root)) for p in _candidates(root, lang)[:4])
                    + " (and the Hugging Face layout data/<lang>/data/humaneval.jsonl)"
                )
            path = found[0]
        records = [record for _, record in iter_jsonl(path)]
        out[lang] = {r["task_id"]: r for r in records}
    return out


def _download(lang: str) -> Path:
    from huggingface_hub import hf_hub_download

    name = L.LANGUAGES[lang].hf_name
    return Path(hf_hub_download(HF_REPO, f"data/{name}/data/humaneval.jsonl", repo_type="dataset"))


def strip_prompt(completion: str, prompt: str) -> str:
    """Some generators echo the prompt before the continuation; keep only the continuation."""
    head = prompt.rstrip()
    if head and completion.startswith(head):
        return completion[len(head) :]
    return completion


def read_samples(path: str | Path) -> list[Sample]:
    """Samples from JSONL with ``task_id`` and ``generation`` (or ``completion``).

    Raises ValueError naming the file, the line number and what is expected.
    """
    samples = []
    for where, record in iter_jsonl(path):
        if not isinstance(record.get("task_id"), str):
            raise ValueError(f'{where}: expected an object with a string "task_id"')
        text = record.get("generation", record.get("completion"))
        if not isinstance(text, str):
            raise ValueError(f'{where}: expected a string "generation" or "completion"')
        try:
            lang = L.language_of(record["task_id"])
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        samples.append(Sample(record["task_id"], text, lang, int(where.rsplit(":", 1)[1])))
    return samples


def check_samples(samples: list[Sample], problems: dict[str, dict[str, dict]]) -> None:
    """Raise on the first sample whose task_id is not in the loaded problems."""
    for s in samples:
        known = problems.get(s.language, {})
        if s.task_id not in known:
            prefix = L.LANGUAGES[s.language].task_prefix
            hint = f"known: {prefix}/0..{prefix}/{len(known) - 1}" if known else "not loaded"
            raise ValueError(f"samples line {s.line}: unknown task_id {s.task_id!r} ({hint})")


def canonical_samples(problems: dict[str, dict[str, dict]]) -> list[Sample]:
    """The dataset's own solutions as samples: the ground-truth check."""
    return [
        Sample(tid, p["canonical_solution"], lang)
        for lang, by_id in problems.items()
        for tid, p in by_id.items()
    ]
