"""Decode prompts with a T5-family model: greedy, sampling (pass@k) or beam search.

    python -m t5x_xfer.infer --checkpoint CKPT --input in.jsonl --output out.jsonl \\
        [--method sample --num_samples 20 --temperature 0.8 --top_p 0.95] [--language python]

Input lines are {"id": ..., "prompt": "..."} or {"id": ..., "token_ids": [...]}, optionally with
"language" (a HumanEval-X language: its stop strings end decoding and its completion rule trims
the text). Output lines are {"id", "sample_index", "text", "token_ids", "score"}. Every prompt's
samples are appended as whole lines with flush + fsync, so a rerun skips ids already complete,
drops a trailing torn line and redoes ids with missing samples. The decoding settings sit next
to the output (``OUTPUT.settings.json``); resuming with different settings is refused. The model
is an orbax checkpoint (tokenizer from ``<root>/hf_assets``) or a Hugging Face directory
(``--hf_dir``); ``--tokenizer`` overrides either. Gin: ``--gin_file=F`` and
``--gin.infer.temperature=0.2`` bind arguments of ``infer`` (the binary applies them; calling
``infer`` from Python ignores gin); explicit flags win.
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

import gin
import jax
import numpy as np
from tqdm import tqdm

from t5x_xfer import checkpoints, gin_utils, hf
from t5x_xfer.codeeval import languages as L
from t5x_xfer.decoding import generated_ids
from t5x_xfer.io_utils import iter_jsonl, write_atomic, write_json_atomic
from t5x_xfer.models import EncoderDecoderModel
from t5x_xfer.models.config import DTYPES
from t5x_xfer.models.wrapper import DECODE_METHODS

if __name__ == "__main__":  # pragma: no cover
    # Run the package module so gin registers `infer` once, under t5x_xfer.infer (see train.py).
    from t5x_xfer.infer import main as _package_main

    sys.exit(_package_main())

log = logging.getLogger("t5x_xfer.infer")

# Settings that change what is decoded; a resumed run must match them.
_SETTINGS = (
    "model",
    "tokenizer",
    "method",
    "num_samples",
    "temperature",
    "top_p",
    "top_k",
    "max_length",
    "max_input_length",
    "seed",
    "beam_size",
    "length_penalty",
    "language",
    "stop_sequences",
    "add_eos",
    "dtype",
)


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


def load_vocabulary(path: str | Path) -> Any:
    """A seqio Vocabulary from ``spiece.model`` (T5, mT5) or ``tokenizer.json`` (CodeT5+).

    ``path`` is either file or a directory holding one; SentencePiece wins when both are there,
    as the T5/mT5 gin files use it.
    """
    import seqio

    from t5x_xfer.vocabularies import HuggingFaceVocabulary

    p = Path(path).expanduser()
    if p.is_dir():
        if (p / "spiece.model").is_file():
            p = p / "spiece.model"
        elif (p / "tokenizer.json").is_file():
            p = p / "tokenizer.json"
        else:
            raise FileNotFoundError(
                f"no tokenizer in {p}: expected spiece.model or tokenizer.json "
                "(give one with --tokenizer)"
            )
    if not p.is_file():
        raise FileNotFoundError(f"tokenizer {p} does not exist")
    if p.suffix == ".model":
        return seqio.SentencePieceVocabulary(str(p))
    if p.suffix == ".json":
        return HuggingFaceVocabulary(str(p))
    raise ValueError(f"tokenizer {p}: expected a SentencePiece .model or a tokenizer.json")


def _stable_hash(value: Any) -> int:
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def check_decode_args(
    *,
    method: str,
    num_samples: int,
    temperature: float,
    top_p: float,
    top_k: int,
    max_length: int,
    batch_size: int,
    max_input_length: int | None = None,
    beam_size: int = 4,
    language: str | None = None,
    dtype: str | None = None,
) -> None:
    """Every decoding argument checked before any loading, each error naming the value and
    the rule (also called by evaluate_code before it loads anything)."""
    if method not in DECODE_METHODS:
        raise ValueError(f"--method {method!r}; allowed: {list(DECODE_METHODS)}")
    for name, value in (
        ("num_samples", num_samples),
        ("max_length", max_length),
        ("batch_size", batch_size),
        ("beam_size", beam_size),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"--{name} must be an integer >= 1, got {value!r}")
    if method == "beam" and num_samples > beam_size:
        raise ValueError(
            f"--num_samples {num_samples} > --beam_size {beam_size}: beam search returns at "
            "most beam_size sequences"
        )
    if max_input_length is not None and max_input_length < 2:
        raise ValueError(f"--max_input_length must be >= 2 or unset, got {max_input_length}")
    if not temperature >= 0:
        raise ValueError(f"--temperature must be >= 0 (0 = greedy), got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"--top_p must be in (0, 1], got {top_p}")
    if not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"--top_k must be an integer >= 0 (0 = off), got {top_k!r}")
    if language is not None:
        L.check_languages([language])
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"--dtype {dtype!r}; allowed: {list(DTYPES)}")


def read_prompts(
    path: str | Path,
    vocab: Any,
    *,
    language: str | None,
    add_eos: bool,
    max_input_length: int | None,
) -> list[Prompt]:
    """Parse and tokenise the input; errors name the file and line."""
    prompts, seen = [], {}
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
            if add_eos:
                ids.append(vocab.eos_id)
        elif isinstance(record.get("token_ids"), list) and all(
            isinstance(t, int) and t >= 0 for t in record["token_ids"]
        ):
            ids = list(record["token_ids"])  # used as given
        else:
            raise ValueError(
                f'{where}: expected a string "prompt" or a list of non-negative integer "token_ids"'
            )
        if not ids:
            raise ValueError(f"{where}: the prompt has no tokens")
        if max_input_length is not None and len(ids) > max_input_length:
            # Keep the end, where the function signature sits (and the EOS, if appended).
            tail = [vocab.eos_id] if "prompt" in record and add_eos else []
            ids = ids[: len(ids) - len(tail)][-(max_input_length - len(tail)) :] + tail
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
    """Encoder lengths rounded up to a power of two (at least 16): few distinct compilations."""
    return max(16, 1 << (n - 1).bit_length())


@gin.register(denylist=["progress"])
def infer(
    *,
    input: str | Path,
    output: str | Path,
    checkpoint: str | None = None,
    hf_dir: str | None = None,
    tokenizer: str | None = None,
    method: str = "greedy",
    num_samples: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    max_length: int = 256,
    max_input_length: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    beam_size: int = 4,
    length_penalty: float = 1.0,
    language: str | None = None,
    stop_sequences: Sequence[str] = (),
    add_eos: bool = True,
    dtype: str | None = None,
    progress: bool = True,
) -> InferResult:
    """Decode every prompt of ``input`` not yet complete in ``output`` (appending to it).

    ``batch_size`` prompts are decoded together, each with ``num_samples`` samples. Sample j
    of a prompt depends only on ``seed``, the prompt's id and j, not on batching or resuming.
    ``language`` is the default for lines without one; ``stop_sequences`` apply to every line.
    ``add_eos`` appends EOS to text prompts, as the seqio tasks do for inputs.
    """
    if (checkpoint is None) == (hf_dir is None):
        raise ValueError("give exactly one of --checkpoint (orbax) or --hf_dir (Hugging Face)")
    check_decode_args(
        method=method,
        num_samples=num_samples,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        max_length=max_length,
        max_input_length=max_input_length,
        batch_size=batch_size,
        beam_size=beam_size,
        language=language,
        dtype=dtype,
    )
    if any(not isinstance(s, str) or not s for s in stop_sequences):
        raise ValueError(f"--stop_sequences must be non-empty strings, got {list(stop_sequences)}")
    if not Path(input).is_file():
        raise FileNotFoundError(f"--input {input}: no such file")
    output = Path(output)
    if checkpoint is not None:
        root, step = checkpoints.resolve(checkpoint)  # FileNotFoundError naming the path
        model_source = f"checkpoint {root / str(step)}"
        default_tokenizer: Path | None = root / hf.ASSETS_DIR
    else:
        model_source = f"hf_dir {hf_dir}"
        default_tokenizer = None
    tokenizer_path = tokenizer or default_tokenizer
    if tokenizer_path is None:
        tokenizer_path = hf.resolve_hf_dir(str(hf_dir))
    if not Path(tokenizer_path).exists():
        raise FileNotFoundError(
            f"no tokenizer: {tokenizer_path} does not exist; give --tokenizer (a tokenizer.json, "
            "a spiece.model or a directory holding one)"
        )
    vocab = load_vocabulary(tokenizer_path)
    prompts = read_prompts(
        input, vocab, language=language, add_eos=add_eos, max_input_length=max_input_length
    )

    settings = {
        "model": model_source,
        "tokenizer": str(tokenizer or "(with the model)"),
        "method": method,
        "num_samples": num_samples,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "max_length": max_length,
        "max_input_length": max_input_length,
        "seed": seed,
        "beam_size": beam_size,
        "length_penalty": length_penalty,
        "language": language,
        "stop_sequences": list(stop_sequences),
        "add_eos": add_eos,
        "dtype": dtype,
    }
    settings_path = Path(f"{output}.settings.json")
    if output.exists() and settings_path.is_file():
        before = json.loads(settings_path.read_text())
        changed = [k for k in _SETTINGS if before.get(k) != settings[k]]
        if changed:
            diffs = ", ".join(f"{k}: {before.get(k)!r} -> {settings[k]!r}" for k in changed)
            raise ValueError(
                f"{output} was decoded with other settings ({diffs}); give another --output "
                "or move the old one away"
            )
    done = _resume(output, {json.dumps(p.id) for p in prompts}, num_samples)
    pending = [p for p in prompts if json.dumps(p.id) not in done]
    log.info("%d prompts, %d already complete in %s", len(prompts), len(done), output)
    if not pending:
        return InferResult(output, len(prompts), len(done), 0, 0.0)

    if checkpoint is not None:
        cfg = checkpoints.load_config(checkpoint)
        params = checkpoints.load_params(checkpoint)
    else:
        cfg, params, _ = hf.load_hf(str(hf_dir))
    if dtype is not None:
        cfg = cfg.replace(dtype=dtype)
    if vocab.eos_id != cfg.eos_token_id:
        log.warning(
            "tokenizer EOS id %d differs from the model's %d", vocab.eos_id, cfg.eos_token_id
        )
    too_big = [p.where for p in prompts if max(p.ids) >= cfg.vocab_size]
    if too_big:
        raise ValueError(f"{too_big[0]}: token ids exceed the model's vocab_size {cfg.vocab_size}")
    model = EncoderDecoderModel(cfg)
    params = jax.device_put(params)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(settings_path, settings)

    base_key = jax.random.PRNGKey(seed)
    fold = jax.jit(jax.vmap(jax.random.fold_in, (None, 0)))
    pending.sort(key=lambda p: len(p.ids))  # similar lengths share a batch
    rows = min(batch_size, len(pending))
    bar = tqdm(total=len(pending) * num_samples, unit="sample", disable=not progress, desc="decode")
    written, start = 0, time.perf_counter()
    with open(output, "a", encoding="utf-8") as f:
        for lo in range(0, len(pending), rows):
            group = pending[lo : lo + rows]
            filled = group + [group[0]] * (rows - len(group))  # fixed shapes: one compilation
            width = _pad_length(max(len(p.ids) for p in filled))
            tokens_in = np.zeros((rows, width), np.int32)
            for i, p in enumerate(filled):
                tokens_in[i, : len(p.ids)] = p.ids
            stops = [
                tuple(L.STOP_SEQUENCES[p.language] if p.language else ()) + tuple(stop_sequences)
                for p in filled
            ]
            keys = fold(base_key, np.asarray([_stable_hash(p.id) for p in filled], np.uint32))
            tokens, scores = model.predict_batch(
                params,
                {"encoder_input_tokens": tokens_in},
                rng=keys,
                method=method,
                num_decodes=num_samples,
                max_decode_length=max_length,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                beam_size=beam_size,
                length_penalty=length_penalty,
                stop_sequences=stops if any(stops) else None,
                vocabulary=vocab,
            )
            tokens, scores = np.asarray(tokens), np.asarray(scores)
            for i, p in enumerate(group):
                lines = []
                for j in range(num_samples):
                    ids = generated_ids(tokens[i, j], cfg.eos_token_id, cfg.pad_token_id)
                    text = _cut_text(vocab.decode(ids), p.language, stop_sequences)
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
                written += num_samples
                bar.update(num_samples)
    bar.close()
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    gin_files, bindings, rest = gin_utils.split_flags(argv)
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
    parser.add_argument("--method", help=f"one of {list(DECODE_METHODS)} (default greedy)")
    parser.add_argument("--num_samples", type=int, help="samples per prompt (default 1)")
    parser.add_argument("--temperature", type=float, help="sampling temperature (default 1)")
    parser.add_argument("--top_p", type=float, help="nucleus mass in (0, 1] (default 1 = off)")
    parser.add_argument("--top_k", type=int, help="keep the k best tokens (default 0 = off)")
    parser.add_argument("--max_length", type=int, help="max decoded tokens (default 256)")
    parser.add_argument("--max_input_length", type=int, help="keep the last N prompt tokens")
    parser.add_argument("--batch_size", type=int, help="prompts decoded together (default 8)")
    parser.add_argument("--seed", type=int, help="sampling seed (default 0)")
    parser.add_argument("--beam_size", type=int, help="beams for --method beam (default 4)")
    parser.add_argument("--length_penalty", type=float, help="beam length exponent (default 1)")
    parser.add_argument("--language", choices=sorted(L.LANGUAGES), help="stop set + trimming")
    parser.add_argument("--stop_sequences", nargs="+", help="extra stop strings")
    parser.add_argument("--dtype", choices=DTYPES, help="compute dtype (default: the model's)")
    parser.add_argument(
        "--no_add_eos", action="store_true", help="do not append EOS to text prompts"
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args(rest)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    given = {
        k: v
        for k, v in vars(args).items()
        if v is not None
        and k not in ("no_progress", "no_add_eos")
        and not (k == "stop_sequences" and not v)
    }
    if args.no_add_eos:
        given["add_eos"] = False
    try:
        if gin_files or bindings:
            gin_utils.parse(gin_files, bindings, finalize=False)
        kwargs = {**(gin.get_bindings(infer) if gin_files or bindings else {}), **given}
        for name in ("input", "output"):
            if name not in kwargs:
                raise ValueError(f"--{name} is required")
        if "stop_sequences" in kwargs:
            kwargs["stop_sequences"] = tuple(kwargs["stop_sequences"])
        result = infer(**kwargs, progress=not args.no_progress)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"{result.output}: {result.samples_written} samples written, "
        f"{result.skipped} of {result.prompts} prompts already complete"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
