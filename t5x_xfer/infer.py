"""Decode prompts with any model family: greedy, sampling (pass@k) or beam search.

    python -m t5x_xfer.infer --checkpoint CKPT --input in.jsonl --output out.jsonl \\
        [--method sample --num_samples 20 --temperature 0.8 --top_p 0.95] [--language python]

Input lines are {"id": ..., "prompt": "..."} or {"id": ..., "token_ids": [...]}, optionally with
"language" (a HumanEval-X language: its stop strings end decoding and its completion rule trims
the text). Output lines are {"id", "sample_index", "text", "token_ids", "score"}. Every prompt's
samples are appended as whole lines with flush + fsync, so a rerun skips ids already complete,
drops a trailing torn line and redoes ids with missing samples. The decoding settings sit next
to the output (``OUTPUT.settings.json``); resuming with different settings is refused. The model
is an orbax checkpoint (its family and config read from it, the tokenizer from
``<root>/hf_assets``) or a Hugging Face directory (``--hf_dir``); ``--tokenizer`` overrides
either. The decoding flags are :class:`t5x_xfer.decoding.DecodeSettings`' fields. Gin:
``--gin_file=F``, ``--gin.DecodeSettings.temperature=0.2`` and ``--gin.infer.batch_size=4``
bind the settings and ``infer``'s arguments (the binary attaches gin; calling ``infer`` from
Python ignores it); explicit flags win.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from t5x_xfer import checkpoints, decoding, gin_utils, host, logs
from t5x_xfer.codeeval import languages as L
from t5x_xfer.decoding import DecodeSettings
from t5x_xfer.io_utils import check_output_file, iter_jsonl, write_atomic, write_json_atomic
from t5x_xfer.models import DTYPES

log = logging.getLogger("t5x_xfer.infer")


@dataclasses.dataclass(frozen=True)
class Prompt:
    id: Any
    ids: list[int]
    language: str | None
    where: str


@dataclasses.dataclass(frozen=True)
class InferResult:
    output: Path
    prompts: int  # in the input
    skipped: int  # complete in the output already
    samples_written: int
    seconds: float

    @property
    def samples_per_second(self) -> float:
        return self.samples_written / self.seconds if self.seconds > 0 else 0.0


def _stable_hash(value: Any) -> int:
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def check_arguments(
    *,
    batch_size: int,
    max_input_length: int | None = None,
    language: str | None = None,
    dtype: str | None = None,
) -> None:
    """The arguments besides the decode settings, checked before any loading (also called by
    evaluate_code), each error naming the value and the rule."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"--batch_size must be an integer >= 1, got {batch_size!r}")
    if max_input_length is not None and max_input_length < 2:
        raise ValueError(f"--max_input_length must be >= 2 or unset, got {max_input_length}")
    if language is not None:
        L.check_languages([language])
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"--dtype {dtype!r}; allowed: {list(DTYPES)}")


def read_prompts(
    path: str | Path,
    vocab: Any,
    *,
    model: Any,
    language: str | None,
    add_eos: bool,
    max_input_length: int | None,
) -> list[Prompt]:
    """Parse and tokenise the input; errors name the file and line. A text prompt becomes the
    ids its model family decodes from (``model.encode_prompt``: T5 appends EOS when
    ``add_eos``, a decoder-only model puts its start token first); ``token_ids`` are used as
    given. Prompts longer than ``max_input_length`` keep their end, where the signature sits."""
    prompts, seen = [], {}
    special = len(model.encode_prompt([], add_eos))
    for where, record in iter_jsonl(path, "input"):
        if "id" not in record or not isinstance(record["id"], (str, int)):
            raise ValueError(f'{where}: expected an "id" (string or integer)')
        key = json.dumps(record["id"])
        if key in seen:
            raise ValueError(f"{where}: id {record['id']!r} repeats {seen[key]}")
        seen[key] = where
        lang = record.get("language", language)
        if lang is not None and lang not in L.LANGUAGES:
            raise ValueError(f"{where}: language {lang!r} unknown; allowed: {sorted(L.LANGUAGES)}")
        if isinstance(record.get("prompt"), str):
            ids = list(vocab.encode(record["prompt"]))
            if max_input_length is not None and len(ids) + special > max_input_length:
                ids = ids[len(ids) + special - max_input_length :]
            ids = model.encode_prompt(ids, add_eos)
        elif isinstance(record.get("token_ids"), list) and all(
            isinstance(t, int) and t >= 0 for t in record["token_ids"]
        ):
            ids = list(record["token_ids"])  # used as given
            if max_input_length is not None:
                ids = ids[-max_input_length:]
        else:
            raise ValueError(
                f'{where}: expected a string "prompt" or a list of non-negative integer "token_ids"'
            )
        if not ids:
            raise ValueError(f"{where}: the prompt has no tokens")
        prompts.append(Prompt(record["id"], ids, lang, where))
    if not prompts:
        raise ValueError(f"input {path}: no prompts")
    return prompts


def _resume(output: Path, ids: set[str], num_samples: int) -> set[str]:
    """Ids (json-encoded) already complete; the file is repaired so appends are clean."""
    if not output.exists():
        return set()
    data = output.read_bytes()
    if data and not data.endswith(b"\n"):  # a torn last line from a crash: drop it
        keep = data.rfind(b"\n") + 1
        log.warning("%s: dropping a torn last line (%d bytes)", output, len(data) - keep)
        with open(output, "r+b") as f:
            f.truncate(keep)
        data = data[:keep]
    lines = data.decode("utf-8").splitlines(keepends=True)
    samples: dict[str, set[int]] = {}
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
            key, index = json.dumps(record["id"]), int(record["sample_index"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"output {output}:{number} is not a line this binary writes ({e}); "
                "move the file away to start over"
            ) from None
        samples.setdefault(key, set()).add(index)
    done = {k for k, got in samples.items() if got >= set(range(num_samples))}
    partial = {k for k in samples if k not in done}
    if partial:  # some samples of these ids were lost in a crash: redo them whole
        kept = [line for line in lines if json.dumps(json.loads(line)["id"]) not in partial]
        write_atomic(output, "".join(kept))
    return done & ids


def _cut_text(text: str, language: str | None, stops: Sequence[str]) -> str:
    if language is not None:
        return L.truncate_completion(language, text)
    cuts = [text.find(s) for s in stops if s in text]
    return text[: min(cuts)] if cuts else text


def _pad_length(n: int) -> int:
    """Prompt lengths rounded up to a power of two (at least 16): few distinct compilations."""
    return max(16, 1 << (n - 1).bit_length())


def _sources(
    checkpoint: str | None, hf_dir: str | None, tokenizer: str | None
) -> tuple[str, Path | str]:
    """(what the settings file records as the model, where the tokenizer is)."""
    if (checkpoint is None) == (hf_dir is None):
        raise ValueError("give exactly one of --checkpoint (orbax) or --hf_dir (Hugging Face)")
    if checkpoint is not None:
        root, step = checkpoints.resolve(checkpoint)  # FileNotFoundError naming the path
        model_source, default_tokenizer = (
            f"checkpoint {root / str(step)}",
            root / checkpoints.ASSETS_DIR,
        )
    else:
        from t5x_xfer import hf

        model_source, default_tokenizer = f"hf_dir {hf_dir}", None
    tokenizer_path = tokenizer or default_tokenizer or hf.resolve_hf_dir(str(hf_dir))
    if not Path(tokenizer_path).exists():
        raise FileNotFoundError(
            f"no tokenizer: {tokenizer_path} does not exist; give --tokenizer (a tokenizer.json, "
            "a spiece.model or a directory holding one)"
        )
    return model_source, tokenizer_path


def _check_settings(output: Path, settings: dict[str, Any]) -> Path:
    """The settings file beside ``output``; resuming under other settings is refused."""
    settings_path = Path(f"{output}.settings.json")
    if output.exists() and settings_path.is_file():
        before = json.loads(settings_path.read_text())
        changed = [k for k in settings if before.get(k) != settings[k]]
        if changed:
            diffs = ", ".join(f"{k}: {before.get(k)!r} -> {settings[k]!r}" for k in changed)
            raise ValueError(
                f"{output} was decoded with other settings ({diffs}); give another --output "
                "or move the old one away"
            )
    return settings_path


def _model_of(checkpoint: str | None, hf_dir: str | None, dtype: str | None) -> Any:
    """The model (family and config, no parameters) of the checkpoint or Hugging Face dir."""
    if checkpoint is not None:
        model = checkpoints.load_model(checkpoint)
    else:
        from t5x_xfer import hf

        path = hf.resolve_hf_dir(str(hf_dir)) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: a Hugging Face model dir needs it")
        model = hf.model_from_hf(json.loads(path.read_text()), str(path))
    return model if dtype is None else model.replace(dtype=dtype)


def _load_params(
    model: Any, checkpoint: str | None, hf_dir: str | None, vocab: Any, prompts: list
) -> Any:
    """The parameters on the device, once the tokenizer and prompts are checked against the
    model."""
    if vocab.eos_id != model.eos_id:
        log.warning("tokenizer EOS id %d differs from the model's %d", vocab.eos_id, model.eos_id)
    too_big = [p.where for p in prompts if max(p.ids) >= model.vocab_size]
    if too_big:
        raise ValueError(
            f"{too_big[0]}: token ids exceed the model's vocab_size {model.vocab_size}"
        )
    if checkpoint is not None:
        params = checkpoints.load_params(checkpoint)
    else:
        from t5x_xfer import hf

        _, params, _ = hf.load_hf(str(hf_dir))
    return jax.device_put(params)


def infer(
    *,
    input: str | Path,
    output: str | Path,
    checkpoint: str | None = None,
    hf_dir: str | None = None,
    tokenizer: str | None = None,
    decode: DecodeSettings = decoding.GREEDY,
    max_input_length: int | None = None,
    batch_size: int = 8,
    language: str | None = None,
    add_eos: bool = True,
    dtype: str | None = None,
    progress: bool = True,
) -> InferResult:
    """Decode every prompt of ``input`` not yet complete in ``output`` (appending to it).

    ``batch_size`` prompts are decoded together, each with ``decode.num_samples`` samples.
    Sample j of a prompt depends only on ``decode.seed``, the prompt's id and j, not on
    batching or resuming. ``language`` is the default for lines without one;
    ``decode.stop_sequences`` apply to every line. ``add_eos`` appends EOS to text prompts of
    encoder-decoder models, as the seqio tasks do for inputs; a decoder-only model continues
    a prompt, which starts with its start token and gets no EOS.
    """
    check_arguments(
        batch_size=batch_size, max_input_length=max_input_length, language=language, dtype=dtype
    )
    if not Path(input).is_file():
        raise FileNotFoundError(f"--input {input}: no such file")
    check_output_file(output, "--output")
    output = Path(output)
    model_source, tokenizer_path = _sources(checkpoint, hf_dir, tokenizer)
    from t5x_xfer.vocabularies import load_vocabulary  # seqio and TensorFlow: load late

    vocab = load_vocabulary(tokenizer_path)
    model = _model_of(checkpoint, hf_dir, dtype)
    prompts = read_prompts(
        input,
        vocab,
        model=model,
        language=language,
        add_eos=add_eos,
        max_input_length=max_input_length,
    )
    settings = {
        "model": model_source,
        "tokenizer": str(tokenizer or "(with the model)"),
        **decode.to_json(),
        "max_input_length": max_input_length,
        "language": language,
        "add_eos": add_eos,
        "dtype": dtype,
    }
    settings_path = _check_settings(output, settings)
    done = _resume(output, {json.dumps(p.id) for p in prompts}, decode.num_samples)
    pending = [p for p in prompts if json.dumps(p.id) not in done]
    log.info("%d prompts, %d already complete in %s", len(prompts), len(done), output)
    if not pending:
        return InferResult(output, len(prompts), len(done), 0, 0.0)
    params = _load_params(model, checkpoint, hf_dir, vocab, prompts)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(settings_path, settings)
    start = time.perf_counter()
    written = _decode_all(model, params, vocab, pending, decode, batch_size, output, progress)
    seconds = time.perf_counter() - start
    result = InferResult(output, len(prompts), len(done), written, seconds)
    log.info(
        "wrote %d samples in %.1fs (%.2f samples/s) to %s",
        written,
        seconds,
        result.samples_per_second,
        output,
    )
    return result


def _decode_all(
    model: Any,
    params: Any,
    vocab: Any,
    pending: list[Prompt],
    decode: DecodeSettings,
    batch_size: int,
    output: Path,
    progress: bool,
) -> int:
    """Decode ``pending`` in batches of similar length, appending each prompt's samples to
    ``output`` as whole lines; returns the number of samples written."""
    base_key = jax.random.PRNGKey(decode.seed)
    fold = jax.jit(jax.vmap(jax.random.fold_in, (None, 0)))
    pending = sorted(pending, key=lambda p: len(p.ids))  # similar lengths share a batch
    rows = min(batch_size, len(pending))
    n = decode.num_samples
    bar = tqdm(total=len(pending) * n, unit="sample", disable=not progress, desc="decode")
    written = 0
    with open(output, "a", encoding="utf-8") as f:
        for lo in range(0, len(pending), rows):
            group = pending[lo : lo + rows]
            filled = group + [group[0]] * (rows - len(group))  # fixed shapes: one compilation
            width = _pad_length(max(len(p.ids) for p in filled))
            batch = model.prompt_batch([p.ids for p in filled], width)
            stops = [tuple(L.STOP_SEQUENCES[p.language]) if p.language else () for p in filled]
            keys = fold(base_key, np.asarray([_stable_hash(p.id) for p in filled], np.uint32))
            tokens, scores = model.predict_batch(
                params, batch, decode, rng=keys, stop_sequences=stops, vocabulary=vocab
            )
            tokens, scores = np.asarray(tokens), np.asarray(scores)
            for i, p in enumerate(group):
                lines = []
                for j in range(n):
                    ids = decoding.generated_ids(tokens[i, j], model.eos_id, model.pad_id)
                    text = _cut_text(vocab.decode(ids), p.language, decode.stop_sequences)
                    record = {
                        "id": p.id,
                        "sample_index": j,
                        "text": text,
                        "token_ids": ids,
                        "score": round(float(scores[i, j]), 6),
                    }
                    lines.append(json.dumps(record, ensure_ascii=False) + "\n")
                f.write("".join(lines))
                f.flush()
                os.fsync(f.fileno())
                written += n
                bar.update(n)
    bar.close()
    return written


# --------------------------------------------------------------------------------------------
# CLI

_FLAGS = ("checkpoint", "hf_dir", "tokenizer", "input", "output", "max_input_length")
_FLAGS += ("batch_size", "language", "dtype")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m t5x_xfer.infer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", help="orbax checkpoint root or step directory")
    parser.add_argument("--hf_dir", help="Hugging Face model directory (instead of --checkpoint)")
    parser.add_argument("--tokenizer", help="tokenizer.json, spiece.model or a dir with one")
    parser.add_argument("--input", help="JSONL of {id, prompt | token_ids[, language]}")
    parser.add_argument("--output", help="JSONL to append {id, sample_index, text, ...} to")
    parser.add_argument("--max_input_length", type=int, help="keep the last N prompt tokens")
    parser.add_argument("--batch_size", type=int, help="prompts decoded together (default 8)")
    parser.add_argument("--language", choices=sorted(L.LANGUAGES), help="stop set + trimming")
    parser.add_argument("--dtype", choices=DTYPES, help="compute dtype (default: the model's)")
    parser.add_argument(
        "--no_add_eos", action="store_true", help="do not append EOS to text prompts"
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    decoding.add_flags(parser, decoding.GREEDY)
    logs.add_verbose_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    gin_files, bindings, rest = gin_utils.split_flags(argv)
    args = _parser().parse_args(rest)
    logs.setup(args.verbose, tensorflow=True)
    host.keep_freed_memory()
    given = {k: getattr(args, k) for k in _FLAGS if getattr(args, k) is not None}
    if args.no_add_eos:
        given["add_eos"] = False
    try:
        infer_using_gin = gin_utils.configurable_entry(infer)
        settings_using_gin = gin_utils.configurable_settings(DecodeSettings, "t5x_xfer.decoding")
        if gin_files or bindings:
            gin_utils.parse(gin_files, bindings, finalize=False)
        decode = decoding.from_flags(args, settings_using_gin())
        for name in ("input", "output"):
            if name not in given and name not in gin_utils.bound_parameters(infer_using_gin):
                raise ValueError(f"--{name} is required")
        result = infer_using_gin(**given, decode=decode, progress=not args.no_progress)
    except (ValueError, OSError) as e:
        print(f"error: {gin_utils.error_line(e)}", file=sys.stderr)
        return 2
    print(
        f"{result.output}: {result.samples_written} samples written, "
        f"{result.skipped} of {result.prompts} prompts already complete"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
