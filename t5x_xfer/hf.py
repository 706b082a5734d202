"""Hugging Face import and export (config.json + safetensors), for every model family.

The family comes from ``config.json``'s ``model_type`` (import) or from the checkpoint's family
tag (export); each family's mapping module (``t5x_xfer/models/<family>_hf.py``, reached through
the model wrapper's ``hf_mapping()``) holds its config translation and one weight table that both
directions read. Import accepts a local directory or, for real users, a hub id (downloaded
with huggingface_hub). Export writes what transformers' ``from_pretrained`` loads with no
missing or unexpected keys, plus the tokenizer files kept with the checkpoint.

A mapping module provides ``MODEL_TYPES``, ``ARCHITECTURES``, ``IGNORED`` (tensor names that
may be left over), ``TRANSFORMS`` (layout name -> (to ours, to theirs)), ``weight_table(cfg)``
(our param path, their key, layout), ``prepare_tensors``, ``config_from_hf``, ``config_to_hf``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from t5x_xfer import checkpoints
from t5x_xfer.models import BaseModel, registry

log = logging.getLogger(__name__)


def _set(tree: dict[str, Any], path: tuple[str, ...], value: np.ndarray) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _get(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def model_from_hf(hf_config: Mapping[str, Any], source: str, dtype: str = "float32") -> BaseModel:
    """The model a Hugging Face ``config.json`` dict describes; ``source`` names it in errors."""
    cls = registry.for_hf_model_type(
        hf_config.get("model_type"), hf_config.get("architectures") or [], source
    )
    return cls(cls.hf_mapping().config_from_hf(hf_config, source, dtype))


def config_to_hf(model: BaseModel) -> dict[str, Any]:
    """The ``config.json`` dict of ``model``."""
    return model.hf_mapping().config_to_hf(model.config)


def hf_to_params(tensors: Mapping[str, np.ndarray], model: BaseModel, source: str) -> dict:
    """Our param tree from Hugging Face tensors; every shape is checked against the config."""
    mapping, cfg = model.hf_mapping(), model.config
    tensors = mapping.prepare_tensors(tensors, cfg, source)
    expected = checkpoints.shape_tree(  # per layer, as the table lists them
        jax.eval_shape(lambda: model.unstack_layers(model.init_params(jax.random.PRNGKey(0))))
    )
    params: dict[str, Any] = {}
    used = set()
    for path, key, kind in mapping.weight_table(cfg):
        if key not in tensors:
            raise ValueError(f"{source}: missing tensor {key!r} required by its config.json")
        value = mapping.TRANSFORMS[kind][0](np.asarray(tensors[key], dtype=np.float32), cfg)
        want = expected["".join(f"['{p}']" for p in path)]
        if value.shape != want:
            raise ValueError(
                f"{source}: tensor {key!r} has shape {tuple(tensors[key].shape)}, which does not "
                f"match config.json (needs {want} after layout change to {'/'.join(path)})"
            )
        _set(params, path, value)
        used.add(key)
    unused = sorted(k for k in tensors if k not in used and k not in mapping.IGNORED)
    if unused:
        log.warning(
            "%s: ignoring %d tensors not used by %s: %s",
            source,
            len(unused),
            model.family,
            unused[:5],
        )
    return model.stack_layers(params)


def params_to_hf(params: Mapping[str, Any], model: BaseModel) -> dict[str, np.ndarray]:
    """Hugging Face tensors (contiguous float32) of our params."""
    mapping, cfg = model.hf_mapping(), model.config
    params = model.unstack_layers(params)
    return {
        key: np.ascontiguousarray(
            mapping.TRANSFORMS[kind][1](np.asarray(_get(params, path), np.float32))
        )
        for path, key, kind in mapping.weight_table(cfg)
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
    patterns = ["config.json", "*.safetensors", "*.safetensors.index.json"]
    patterns += list(checkpoints.TOKENIZER_FILES)
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


def load_hf(hf_dir: str, dtype: str = "float32") -> tuple[BaseModel, dict[str, Any], Path]:
    """(model, params, local dir) of a Hugging Face model dir or hub id of any family."""
    path = resolve_hf_dir(hf_dir)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} does not exist: a Hugging Face model dir needs it")
    try:
        hf_config = json.loads(config_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{config_file} is not valid JSON: {e}") from e
    model = model_from_hf(hf_config, str(config_file), dtype)
    tensors, source = _load_tensors(path)
    return model, hf_to_params(tensors, model, source), path


def save_hf(
    out: str | Path, params: Mapping[str, Any], model: BaseModel, source: str = "export"
) -> Path:
    """Write config.json + model.safetensors; ``params`` is checked against the model first."""
    from safetensors.numpy import save_file

    checkpoints.check_shapes(params, model.abstract_params(), source)
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "model.safetensors.tmp"
    save_file(params_to_hf(params, model), str(tmp), metadata={"format": "pt"})
    tmp.replace(out / "model.safetensors")
    text = json.dumps(config_to_hf(model), indent=2, sort_keys=True) + "\n"
    (out / "config.json").write_text(text)
    return out


def import_hf(*, hf_dir: str, out: str, dtype: str = "float32") -> Path:
    """Hugging Face model dir or hub id -> orbax checkpoint (step 0) with the model config."""
    model, params, local = load_hf(hf_dir, dtype)
    step_dir = checkpoints.save(out, params, model, step=0)
    assets = checkpoints.as_path(out) / checkpoints.ASSETS_DIR
    found = checkpoints.copy_tokenizer_files(local, assets)
    log.info("imported %s -> %s (tokenizer files: %s)", hf_dir, step_dir, found or "none")
    return step_dir


def export_hf(*, checkpoint: str, out: str, tokenizer_dir: str | None = None) -> Path:
    """Orbax checkpoint -> Hugging Face dir (config.json, model.safetensors, tokenizer files)."""
    root, step = checkpoints.resolve(checkpoint)
    model = checkpoints.load_model(checkpoint)
    params = checkpoints.load_params(checkpoint)
    path = save_hf(out, params, model, f"checkpoint {root / str(step)}")
    source = Path(tokenizer_dir) if tokenizer_dir else root / checkpoints.ASSETS_DIR
    if source.is_dir():
        for name in checkpoints.TOKENIZER_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, path / name)
    log.info("exported %s step %d -> %s", root, step, path)
    return path
