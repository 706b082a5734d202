"""How to decode, said once: the settings that infer, evaluate_code, the grid and the model
wrappers share, validated on construction, with one meaning of greedy (``method="greedy"``).

Command-line binaries add the same flags (:func:`add_flags`) and read them back
(:func:`from_flags`), so a flag means the same thing everywhere; :meth:`DecodeSettings.flags`
writes them for a child process (the grid driver and evaluate_code call the infer binary).

    >>> DecodeSettings(method="sample", num_samples=20, temperature=0.8, top_p=0.95).num_samples
    20
    >>> DecodeSettings(method="sample", temperature=0.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: DecodeSettings.temperature must be > 0 for method 'sample', got 0.0; ...
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

METHODS = ("greedy", "sample", "beam")


def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    """The low-level rule of the pure sampler (temperature 0 there is its argmax)."""
    if not temperature >= 0.0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature!r}")
    if not (isinstance(top_k, int) and top_k >= 0):
        raise ValueError(f"top_k must be an integer >= 0 (0 keeps every token), got {top_k!r}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (1 keeps every token), got {top_p!r}")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"DecodeSettings.{name} must be an integer >= 1, got {value!r}")


@dataclasses.dataclass(frozen=True)
class DecodeSettings:
    """One decoding configuration.

    ``method``: "greedy" (argmax; ``temperature``, ``top_k`` and ``top_p`` are unused),
    "sample" (``temperature`` > 0, then the ``top_k`` best tokens (0 = all), then the nucleus of
    mass ``top_p``) or "beam" (``beam_size`` beams, scores divided by length**``length_penalty``;
    ``num_samples`` <= ``beam_size`` best beams are returned). ``num_samples`` outputs per
    prompt (greedy decodes once and repeats), at most ``max_length`` new tokens (None: the
    length of the batch's target features, as in T5X's predict_batch). ``stop_sequences`` end
    a sample once its text holds one (besides EOS and any per-prompt stops, such as a
    language's). ``seed`` fixes sampling: sample j of a prompt depends only on the seed, the
    prompt and j.
    """

    method: str = "greedy"
    num_samples: int = 1
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    beam_size: int = 4
    length_penalty: float = 1.0
    max_length: int | None = 256
    stop_sequences: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(
                f"DecodeSettings.method={self.method!r} unknown; allowed: {list(METHODS)}"
            )
        _positive_int("num_samples", self.num_samples)
        _positive_int("beam_size", self.beam_size)
        if self.max_length is not None:
            _positive_int("max_length", self.max_length)
        if self.method == "sample" and not self.temperature > 0:
            raise ValueError(
                f"DecodeSettings.temperature must be > 0 for method 'sample', got "
                f"{self.temperature!r}; greedy decoding is method='greedy'"
            )
        if not self.temperature >= 0:
            raise ValueError(f"DecodeSettings.temperature must be > 0, got {self.temperature!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(
                f"DecodeSettings.top_k must be an integer >= 0 (0 = off), got {self.top_k!r}"
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"DecodeSettings.top_p must be in (0, 1], got {self.top_p!r}")
        if self.method == "beam" and self.num_samples > self.beam_size:
            raise ValueError(
                f"DecodeSettings.num_samples={self.num_samples} > beam_size={self.beam_size}: "
                "beam search returns at most beam_size sequences"
            )
        if isinstance(self.stop_sequences, str):
            raise ValueError(
                f"DecodeSettings.stop_sequences must be a sequence of strings, got the string "
                f"{self.stop_sequences!r}"
            )
        stops = tuple(self.stop_sequences)
        if any(not isinstance(s, str) or not s for s in stops):
            raise ValueError(
                f"DecodeSettings.stop_sequences must be non-empty strings, got {list(stops)}"
            )
        object.__setattr__(self, "stop_sequences", stops)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"DecodeSettings.seed must be an integer, got {self.seed!r}")

    @property
    def rows_per_example(self) -> int:
        """Sequences actually decoded per prompt: one for greedy (it is repeated)."""
        return 1 if self.method == "greedy" else self.num_samples

    def replace(self, **changes: Any) -> DecodeSettings:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (stop sequences as a list), e.g. for a settings file."""
        out = dataclasses.asdict(self)
        out["stop_sequences"] = list(self.stop_sequences)
        return out

    def flags(self) -> list[str]:
        """The command-line flags that give these settings to a binary (see add_flags)."""
        out = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "stop_sequences":
                out += ["--stop_sequences", *value] if value else []
            elif value is not None:
                out += [f"--{field.name}", str(value)]
        return out


# The default of predict_batch and the seqio-metrics decodes.
GREEDY = DecodeSettings()


def legacy(settings: DecodeSettings | None = None, **fields: Any) -> DecodeSettings:
    """Settings from the old spelling where ``temperature=0`` meant greedy decoding.

    Method "sample" with temperature 0 becomes method "greedy", with a message saying so;
    greedy's unused temperature is reset to the default, so one decoding has one spelling.

    >>> legacy(method="sample", temperature=0.0).method
    'greedy'
    """
    base = settings or DecodeSettings()
    if fields.get("temperature", base.temperature) == 0:
        if fields.get("method", base.method) == "sample":
            log.warning("temperature 0 is read as method 'greedy' (the old spelling of greedy)")
            fields = {**fields, "method": "greedy"}
        if fields.get("method", base.method) == "greedy":
            fields = {**fields, "temperature": DecodeSettings.temperature}
    return dataclasses.replace(base, **fields)


def add_flags(parser: argparse.ArgumentParser, defaults: DecodeSettings) -> None:
    """Add one flag per DecodeSettings field, defaulting to None (= ``defaults``)."""
    d = defaults
    group = parser.add_argument_group("decoding")
    group.add_argument("--method", help=f"one of {list(METHODS)} (default {d.method})")
    group.add_argument("--num_samples", type=int, help=f"per prompt (default {d.num_samples})")
    group.add_argument(
        "--temperature",
        type=float,
        help=f"sampling temperature (default {d.temperature}); 0 is the old spelling of "
        "--method greedy",
    )
    group.add_argument("--top_k", type=int, help=f"keep the k best tokens (default {d.top_k})")
    group.add_argument("--top_p", type=float, help=f"nucleus mass in (0, 1] (default {d.top_p})")
    group.add_argument("--beam_size", type=int, help=f"beams (default {d.beam_size})")
    group.add_argument("--length_penalty", type=float, help=f"default {d.length_penalty}")
    group.add_argument("--max_length", type=int, help=f"new tokens (default {d.max_length})")
    group.add_argument("--stop_sequences", nargs="+", help="extra stop strings")
    group.add_argument("--seed", type=int, help=f"sampling seed (default {d.seed})")


def from_flags(args: argparse.Namespace, defaults: DecodeSettings) -> DecodeSettings:
    """The settings the parsed flags give (flags not given keep ``defaults``).

    Without ``--method``, a temperature above 0 means sampling and 0 means greedy, as the
    old flags did.
    """
    names = [f.name for f in dataclasses.fields(DecodeSettings)]
    given = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    if "stop_sequences" in given:
        given["stop_sequences"] = tuple(given["stop_sequences"])
    try:
        return override(defaults, **given)
    except ValueError as e:  # name the flag, not the field
        raise ValueError(str(e).replace("DecodeSettings.", "--")) from None


def override(defaults: DecodeSettings, **given: Any) -> DecodeSettings:
    """``defaults`` with the ``given`` fields changed, read as the old flags were: without a
    method, a temperature above 0 means sampling and 0 means greedy.

    >>> override(DecodeSettings(), temperature=0.8).method
    'sample'
    """
    if "method" not in given and given.get("temperature", 0) > 0:
        given["method"] = "sample"
    return legacy(defaults, **given)


def stops_per_example(
    stop_sequences: Sequence[str] | Sequence[Sequence[str]] | None,
    batch_size: int,
    extra: Sequence[str] = (),
) -> list[tuple[str, ...]] | None:
    """One tuple of stop strings per example (its own, then ``extra``), or None when there
    are none at all.

    >>> stops_per_example([["\\n\\n"], []], 2, extra=("END",))
    [('\\n\\n', 'END'), ('END',)]
    """
    if not stop_sequences:
        per = [()] * batch_size
    elif all(isinstance(s, str) for s in stop_sequences):
        per = [tuple(stop_sequences)] * batch_size
    else:
        per = [(s,) if isinstance(s, str) else tuple(s) for s in stop_sequences]
        if len(per) != batch_size:
            raise ValueError(
                f"stop_sequences has {len(per)} entries for {batch_size} examples; give one "
                "sequence of strings per example or one sequence of strings for all"
            )
    per = [group + tuple(extra) for group in per]
    if any(not s for group in per for s in group):
        raise ValueError("stop_sequences must not contain the empty string")
    return per if any(per) else None
