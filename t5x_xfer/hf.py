"""Hugging Face import and export for the T5 family (config.json + safetensors).

One table (``_weight_table``) lists every parameter with its Hugging Face name and layout
transform; import and export both read it, so the two directions cannot drift apart. Import
accepts a local directory or, for real users, a hub id (downloaded with huggingface_hub).
Export writes what ``transformers.T5ForConditionalGeneration.from_pretrained`` loads with no
missing or unexpected keys, plus the tokenizer files that came with the import.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from t5x_xfer import checkpoints
from t5x_xfer.models import EncoderDecoderModel, T5Config

log = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("t5", "mt5")
SUPPORTED_ARCHITECTURES = ("T5ForConditionalGeneration", "MT5ForConditionalGeneration")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "spiece.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)
ASSETS_DIR = "hf_assets"

# Layout transforms between our arrays and Hugging Face's torch (out, in) tensors.
_Transform = tuple[Callable[[np.ndarray, T5Config], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def _qkv(w: np.ndarray, c: T5Config) -> np.ndarray:  # [H*K, D] -> [D, H, K]
    return w.T.reshape(c.d_model, c.num_heads, c.d_kv)


def _out(w: np.ndarray, c: T5Config) -> np.ndarray:  # [D, H*K] -> [H, K, D]
    return w.T.reshape(c.num_heads, c.d_kv, c.d_model)


def _transpose(w: np.ndarray, c: T5Config) -> np.ndarray:
    return w.T


def _copy(w: np.ndarray, c: T5Config) -> np.ndarray:
    return w


_TRANSFORMS: dict[str, _Transform] = {
    "copy": (_copy, lambda a: a),
    "transpose": (_transpose, lambda a: a.T),
    "qkv": (_qkv, lambda a: a.reshape(a.shape[0], -1).T),
    "out": (_out, lambda a: a.reshape(-1, a.shape[-1]).T),
}


def _weight_table(cfg: T5Config) -> Iterator[tuple[tuple[str, ...], str, str]]:
    """(our param path, Hugging Face key, transform) for every parameter of ``cfg``."""
    yield ("token_embedder", "embedding"), "shared.weight", "copy"
    mlp = ("wi_0", "wi_1", "wo") if cfg.is_gated else ("wi", "wo")

    def attention(ours: tuple[str, ...], theirs: str) -> Iterator[tuple[tuple[str, ...], str, str]]:
        for name, short, kind in (
            ("query", "q", "qkv"),
            ("key", "k", "qkv"),
            ("value", "v", "qkv"),
            ("out", "o", "out"),
        ):
            yield (*ours, name), f"{theirs}.{short}.weight", kind

    for stack, n_layers, blocks in (
        ("encoder", cfg.num_layers, (("attention", "SelfAttention"), ("mlp", None))),
        (
            "decoder",
            cfg.num_decoder_layers,
            (
                ("self_attention", "SelfAttention"),
                ("encoder_decoder_attention", "EncDecAttention"),
                ("mlp", None),
            ),
        ),
    ):
        yield (
            (stack, "relpos_bias", "rel_embedding"),
            f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            "transpose",
        )
        norms = (
            ("pre_attention_layer_norm", "pre_mlp_layer_norm")
            if stack == "encoder"
            else (
                "pre_self_attention_layer_norm",
                "pre_cross_attention_layer_norm",
                "pre_mlp_layer_norm",
            )
        )
        for i in range(n_layers):
            prefix = f"{stack}.block.{i}.layer"
            for j, ((block, hf_block), norm) in enumerate(zip(blocks, norms, strict=True)):
                yield (
                    (stack, f"layers_{i}", norm, "scale"),
                    f"{prefix}.{j}.layer_norm.weight",
                    "copy",
                )
                if hf_block is None:
                    for w in mlp:
                        yield (
                            (stack, f"layers_{i}", "mlp", w),
                            f"{prefix}.{j}.DenseReluDense.{w}.weight",
                            "transpose",
                        )
                else:
                    yield from attention((stack, f"layers_{i}", block), f"{prefix}.{j}.{hf_block}")
        norm_name = "encoder_norm" if stack == "encoder" else "decoder_norm"
        yield (stack, norm_name, "scale"), f"{stack}.final_layer_norm.weight", "copy"
    if not cfg.tie_word_embeddings:
        yield ("decoder", "logits_dense"), "lm_head.weight", "transpose"


def config_from_hf(hf: Mapping[str, Any], source: str, dtype: str = "float32") -> T5Config:
    """Our config from a Hugging Face ``config.json`` dict; ``source`` names it in errors."""
    model_type = hf.get("model_type")
    archs = hf.get("architectures") or []
    bad_arch = [a for a in archs if a not in SUPPORTED_ARCHITECTURES]
    if model_type not in SUPPORTED_MODEL_TYPES or bad_arch:
        raise ValueError(
            f"{source}: unsupported architecture (model_type={model_type!r}, "
            f"architectures={archs}); supported: model_type in {list(SUPPORTED_MODEL_TYPES)} "
            f"with architectures {list(SUPPORTED_ARCHITECTURES)}"
        )
    required = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads")
    missing = [k for k in required if k not in hf]
    if missing:
        raise ValueError(f"{source}: missing required fields {missing}")
    # transformers >= 5 records the output rescale as scale_decoder_outputs; before, it was
    # implied by tie_word_embeddings (True for T5 and CodeT5+, False for T5 v1.1 and mT5).
    scale = hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings", True))
    try:
        return T5Config(
            vocab_size=hf["vocab_size"],
            d_model=hf["d_model"],
            d_kv=hf["d_kv"],
            d_ff=hf["d_ff"],
            num_layers=hf["num_layers"],
            num_decoder_layers=hf.get("num_decoder_layers"),
            num_heads=hf["num_heads"],
            relative_attention_num_buckets=hf.get("relative_attention_num_buckets", 32),
            relative_attention_max_distance=hf.get("relative_attention_max_distance", 128),
            dropout_rate=hf.get("dropout_rate", 0.1),
            layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-6),
            feed_forward_proj=hf.get("feed_forward_proj", "relu"),
            tie_word_embeddings=bool(scale),
            pad_token_id=hf.get("pad_token_id", 0),
            eos_token_id=hf.get("eos_token_id", 1),
            decoder_start_token_id=hf.get("decoder_start_token_id", 0),
            dtype=dtype,
        )
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from e


def config_to_hf(cfg: T5Config) -> dict[str, Any]:
    return {
        "architectures": ["T5ForConditionalGeneration"],
        "model_type": "t5",
        "vocab_size": cfg.vocab_size,
        "d_model": cfg.d_model,
        "d_kv": cfg.d_kv,
        "d_ff": cfg.d_ff,
        "num_layers": cfg.num_layers,
        "num_decoder_layers": cfg.num_decoder_layers,
        "num_heads": cfg.num_heads,
        "relative_attention_num_buckets": cfg.relative_attention_num_buckets,
        "relative_attention_max_distance": cfg.relative_attention_max_distance,
        "dropout_rate": cfg.dropout_rate,
        "layer_norm_epsilon": cfg.layer_norm_epsilon,
        "feed_forward_proj": cfg.feed_forward_proj,
        "initializer_factor": 1.0,
        "is_encoder_decoder": True,
        "use_cache": True,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "scale_decoder_outputs": cfg.tie_word_embeddings,
        "pad_token_id": cfg.pad_token_id,
        "eos_token_id": cfg.eos_token_id,
        "decoder_start_token_id": cfg.decoder_start_token_id,
    }


def _set(tree: dict[str, Any], path: tuple[str, ...], value: np.ndarray) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _get(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def hf_to_params(tensors: Mapping[str, np.ndarray], cfg: T5Config, source: str) -> dict[str, Any]:
    """Our param tree from Hugging Face tensors; every shape is checked against ``cfg``."""
    tensors = dict(tensors)
    lm_head = tensors.pop("lm_head.weight", None)
    if not cfg.tie_word_embeddings and lm_head is None:
        # transformers >= 5 ties lm_head to shared even without the rescale (T5 v1.1).
        lm_head = tensors.get("shared.weight")
    if lm_head is not None and not cfg.tie_word_embeddings:
        tensors["lm_head.weight"] = lm_head
    elif lm_head is not None and not np.array_equal(lm_head, tensors.get("shared.weight")):
        raise ValueError(
            f"{source}: lm_head.weight differs from shared.weight, but the config rescales the "
            "decoder output (tied embeddings); set tie_word_embeddings=false in config.json if "
            "the checkpoint is untied"
        )
    expected = checkpoints.shape_tree(EncoderDecoderModel(cfg).abstract_params())
    params: dict[str, Any] = {}
    used = set()
    for path, key, kind in _weight_table(cfg):
        if key not in tensors:
            raise ValueError(f"{source}: missing tensor {key!r} required by its config.json")
        value = _TRANSFORMS[kind][0](np.asarray(tensors[key], dtype=np.float32), cfg)
        want = expected["".join(f"['{p}']" for p in path)]
        if value.shape != want:
            raise ValueError(
                f"{source}: tensor {key!r} has shape {tuple(tensors[key].shape)}, which does not "
                f"match config.json (needs {want} after layout change to {'/'.join(path)})"
            )
        _set(params, path, value)
        used.add(key)
    ignorable = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
    unused = sorted(k for k in tensors if k not in used and k not in ignorable)
    if unused:
        log.warning("%s: ignoring %d tensors not used by T5: %s", source, len(unused), unused[:5])
    return params


def params_to_hf(params: Mapping[str, Any], cfg: T5Config) -> dict[str, np.ndarray]:
    return {
        key: np.ascontiguousarray(_TRANSFORMS[kind][1](np.asarray(_get(params, path), np.float32)))
        for path, key, kind in _weight_table(cfg)
    }


def resolve_hf_dir(hf_dir: str) -> Path:
    """A local directory as is; anything else is taken as a hub id and downloaded."""
    path = Path(hf_dir).expanduser()
    if path.exists():
        if not path.is_dir():
            raise NotADirectoryError(
                f"{path} is not a directory (expected a Hugging Face model dir)"
            )
        return path
    if hf_dir.count("/") != 1 or hf_dir.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"{hf_dir} is neither a local directory nor a hub id of the form 'org/name'"
        )
    from huggingface_hub import snapshot_download

    log.info("downloading %s from the Hugging Face hub", hf_dir)
    patterns = ["config.json", "*.safetensors", "*.safetensors.index.json", *TOKENIZER_FILES]
    local = snapshot_download(hf_dir, allow_patterns=patterns)
    if not any(Path(local).glob("*.safetensors")):
        local = snapshot_download(hf_dir, allow_patterns=[*patterns, "pytorch_model*.bin*"])
    return Path(local)


def _load_tensors(hf_dir: Path) -> tuple[dict[str, np.ndarray], str]:
    """All tensors of a model dir as float32 numpy, and the file name(s) they came from."""
    single = hf_dir / "model.safetensors"
    index = hf_dir / "model.safetensors.index.json"
    if single.is_file() or index.is_file():
        from safetensors import safe_open

        files = (
            [single]
            if single.is_file()
            else sorted({hf_dir / f for f in json.loads(index.read_text())["weight_map"].values()})
        )
        tensors = {}
        for f in files:
            with safe_open(f, framework="flax") as reader:  # flax reads bfloat16 too
                for key in reader.keys():  # noqa: SIM118 (not iterable)
                    tensors[key] = np.asarray(reader.get_tensor(key), dtype=np.float32)
        return tensors, ", ".join(str(f) for f in files)
    bins = sorted(hf_dir.glob("pytorch_model*.bin"))
    if bins:
        try:
            import torch
        except ImportError as e:
            raise ImportError(
                f"{bins[0]} is a PyTorch pickle: reading it needs torch (pip install torch), "
                "or convert the model to safetensors first"
            ) from e
        tensors = {}
        for f in bins:
            state = torch.load(f, map_location="cpu", weights_only=True)
            tensors.update({k: v.float().numpy() for k, v in state.items()})
        return tensors, ", ".join(str(f) for f in bins)
    raise FileNotFoundError(
        f"{hf_dir}: no weights found (expected model.safetensors, "
        "model.safetensors.index.json or pytorch_model.bin)"
    )


def load_hf(hf_dir: str, dtype: str = "float32") -> tuple[T5Config, dict[str, Any], Path]:
    """(config, params, local dir) of a Hugging Face T5 model dir or hub id."""
    path = resolve_hf_dir(hf_dir)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} does not exist: a Hugging Face model dir needs it")
    try:
        hf_config = json.loads(config_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{config_file} is not valid JSON: {e}") from e
    cfg = config_from_hf(hf_config, str(config_file), dtype)
    tensors, source = _load_tensors(path)
    return cfg, hf_to_params(tensors, cfg, source), path


def save_hf(
    out: str | Path, params: Mapping[str, Any], cfg: T5Config, source: str = "export"
) -> Path:
    """Write config.json + model.safetensors; ``params`` is checked against ``cfg`` first."""
    from safetensors.numpy import save_file

    checkpoints.check_shapes(params, EncoderDecoderModel(cfg).abstract_params(), source)
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "model.safetensors.tmp"
    save_file(params_to_hf(params, cfg), str(tmp), metadata={"format": "pt"})
    tmp.replace(out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(config_to_hf(cfg), indent=2, sort_keys=True) + "\n")
    return out


def import_hf(*, hf_dir: str, out: str, dtype: str = "float32") -> Path:
    """Hugging Face model dir or hub id -> orbax checkpoint (step 0) with the model config."""
    cfg, params, local = load_hf(hf_dir, dtype)
    step_dir = checkpoints.save(out, params, cfg, step=0)
    assets = checkpoints.as_path(out) / ASSETS_DIR
    found = [name for name in TOKENIZER_FILES if (local / name).is_file()]
    if found:
        assets.mkdir(exist_ok=True)
        for name in found:  # byte copies work for local dirs and gs:// alike
            (assets / name).write_bytes((local / name).read_bytes())
    log.info("imported %s -> %s (tokenizer files: %s)", hf_dir, step_dir, found or "none")
    return step_dir


def export_hf(*, checkpoint: str, out: str, tokenizer_dir: str | None = None) -> Path:
    """Orbax checkpoint -> Hugging Face dir (config.json, model.safetensors, tokenizer files)."""
    root, step = checkpoints.resolve(checkpoint)
    cfg = checkpoints.load_config(checkpoint)
    params = checkpoints.load_params(checkpoint)
    path = save_hf(out, params, cfg, f"checkpoint {root / str(step)}")
    source = Path(tokenizer_dir) if tokenizer_dir else root / ASSETS_DIR
    if source.is_dir():
        for name in TOKENIZER_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, path / name)
    log.info("exported %s step %d -> %s", root, step, path)
    return path
