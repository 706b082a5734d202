"""Model families by name: the one table from a checkpoint's family tag, a config object or a
Hugging Face ``model_type`` to the model wrapper that serves it.

A checkpoint stores its model as ``{"family": "t5", "config": {...}}`` (:func:`to_json`), so
any stage rebuilds the right model from the directory alone (:func:`from_json`). Checkpoints
written before family tags existed hold the bare T5 config dict; they load as the T5 family.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from t5x_xfer.models.base import BaseModel

_FAMILIES: dict[str, type[BaseModel]] = {}
LEGACY_FAMILY = "t5"  # what an untagged (pre-seam) checkpoint config is


def register(cls: type[BaseModel]) -> type[BaseModel]:
    """Add a family (a BaseModel subclass with ``family`` and ``config_cls``); usable as a
    class decorator. A second family under the same name is an error."""
    name = cls.family
    if name in _FAMILIES and _FAMILIES[name] is not cls:
        raise ValueError(
            f"model family {name!r} is already registered ({_FAMILIES[name].__name__}); "
            f"known families: {families()}"
        )
    _FAMILIES[name] = cls
    return cls


def families() -> list[str]:
    return sorted(_FAMILIES)


def get(family: str) -> type[BaseModel]:
    """The wrapper class of ``family``; unknown names fail listing the known ones."""
    if family not in _FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known families: {families()}")
    return _FAMILIES[family]


def for_config(config: Any) -> BaseModel:
    """The model for a config object of any registered family."""
    for cls in _FAMILIES.values():
        if isinstance(config, cls.config_cls):
            return cls(config)
    known = {name: cls.config_cls.__name__ for name, cls in sorted(_FAMILIES.items())}
    raise TypeError(f"{type(config).__name__} is not the config of a known family: {known}")


def to_json(model: BaseModel) -> dict[str, Any]:
    """What a checkpoint stores of its model: the family tag and the config's fields."""
    return {"family": model.family, "config": model.config.to_dict()}


def from_json(data: Mapping[str, Any], source: str) -> BaseModel:
    """The model a checkpoint's stored config describes (``source`` names it in errors)."""
    if "family" not in data:  # written before the family seam: a bare T5Config dict
        family, fields = LEGACY_FAMILY, dict(data)
    else:
        family, fields = data["family"], dict(data.get("config") or {})
    try:
        cls = get(family)
        return cls(cls.config_cls.from_dict(fields))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{source}: {e}") from e


def for_hf_model_type(model_type: Any, architectures: Any, source: str) -> type[BaseModel]:
    """The family whose Hugging Face mapping reads this ``config.json`` model_type."""
    supported = {}
    for cls in _FAMILIES.values():
        mapping = cls.hf_mapping()
        supported[cls.family] = list(mapping.MODEL_TYPES)
        if model_type in mapping.MODEL_TYPES:
            return cls
    raise ValueError(
        f"{source}: unsupported architecture (model_type={model_type!r}, "
        f"architectures={architectures}); supported model_type values by family: {supported}"
    )
