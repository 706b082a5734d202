"""Partitioning: the device mesh, the logical-axis rules table and the shardings built from them.

Model code names axes logically (batch, length, embed, mlp, heads, kv_heads, kv, vocab,
relpos_buckets, layers); this module alone maps them onto a mesh with axes
``(data, fsdp, model)``:

- ``data``: pure data parallelism (parameters replicated);
- ``fsdp``: data parallelism with parameters and optimizer state sharded over their ``embed``
  dimension (ZeRO-3 / FSDP), gathered per layer by XLA;
- ``model``: tensor (Megatron) parallelism over heads, mlp and vocab.

The batch is split over ``data`` and ``fsdp`` together. A dimension whose size the mesh axes do
not divide is left unsharded (e.g. a 32-bucket position table on a 3-way mesh), so any model
runs on any mesh. Multi-host runs call :func:`initialize_distributed` before anything else.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

log = logging.getLogger(__name__)

MESH_AXES = ("data", "fsdp", "model")

# Logical name -> mesh axes, tried in order: a mesh axis already used by another dimension of
# the same array is skipped (flax semantics), so activations (batch, length, embed) shard the
# batch over (data, fsdp) and leave embed whole, while parameters shard embed over fsdp.
LOGICAL_AXIS_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("vocab", "model"),
    ("mlp", "model"),
    ("heads", "model"),
    ("kv_heads", "model"),
    ("embed", "fsdp"),
    ("embed", None),
    ("kv", None),
    ("length", None),
    ("relpos_buckets", None),
    ("layers", None),
)


# XLA's CPU backend hands reductions and elementwise fusions to YNNPACK by default; for the
# small tensors of CPU training that is slower (the tiny debug model's step: 36.5 -> 25.8 ms
# with dots only, measured by benchmarks/step_time.py --model tiny). Dots stay with YNNPACK.
# Decoding is faster without it (tiny model, benchmarks/decode_speed.py: 42.7k against 29.5k
# tokens/s), so only the train and eval steps use it, and only in float32: with dots only,
# XLA upcasts bfloat16 products to float32 inside the YNNPACK call, where the default runs
# them natively (CodeT5+ 220M's shapes, 2 layers, batch 4: 2.1 s against 2.8 s per step).
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


def compiler_options(dtype: str = "float32") -> dict[str, str] | None:
    """XLA options for the jitted train and eval steps of a model computing in ``dtype``."""
    if jax.default_backend() == "cpu" and dtype == "float32":
        return dict(CPU_COMPILER_OPTIONS)
    return None


def make_mesh(
    data: int = -1,
    fsdp: int = 1,
    model: int = 1,
    devices: Sequence[jax.Device] | None = None,
) -> Mesh:
    """A (data, fsdp, model) mesh over all devices; one size may be -1 (the rest of them).

    >>> make_mesh(data=-1, fsdp=1, model=1).axis_names
    ('data', 'fsdp', 'model')
    """
    devices = list(jax.devices() if devices is None else devices)
    sizes = {"data": data, "fsdp": fsdp, "model": model}
    bad = {k: v for k, v in sizes.items() if not (v == -1 or v >= 1)}
    if bad or list(sizes.values()).count(-1) > 1:
        raise ValueError(f"mesh sizes {sizes}: each must be >= 1, and at most one may be -1 (fill)")
    known = math.prod(v for v in sizes.values() if v != -1)
    if -1 in sizes.values():
        if len(devices) % known:
            raise ValueError(f"mesh sizes {sizes} do not divide the {len(devices)} devices")
        sizes = {k: (len(devices) // known if v == -1 else v) for k, v in sizes.items()}
    if math.prod(sizes.values()) != len(devices):
        raise ValueError(
            f"mesh sizes {sizes} multiply to {math.prod(sizes.values())}, "
            f"but there are {len(devices)} devices; use -1 for one axis to fill"
        )
    shape = tuple(sizes[a] for a in MESH_AXES)
    try:  # topology-aware device order (TPU ICI rings, GPU NVLink islands)
        grid = mesh_utils.create_device_mesh(shape, devices)
    except (ValueError, NotImplementedError, AssertionError):
        grid = np.asarray(devices).reshape(shape)
    return Mesh(grid, MESH_AXES)


def mesh_from_shape(shape: Sequence[int] = (-1, 1, 1)) -> Mesh:
    """:func:`make_mesh` from a (data, fsdp, model) tuple, as the run files' MESH_SHAPE gives.

    >>> mesh_from_shape((-1, 1, 1)).axis_names
    ('data', 'fsdp', 'model')
    """
    if len(shape) != len(MESH_AXES):
        raise ValueError(f"MESH_SHAPE {tuple(shape)} must have 3 sizes: (data, fsdp, model)")
    return make_mesh(*shape)


def _axis_size(mesh: Mesh, axes: Any) -> int:
    if axes is None:
        return 1
    if isinstance(axes, str):
        return mesh.shape[axes]
    return math.prod(mesh.shape[a] for a in axes)


def mesh_spec(logical: PartitionSpec, shape: Sequence[int], mesh: Mesh) -> PartitionSpec:
    """The mesh PartitionSpec of an array with logical axes, dropping non-dividing axes."""
    spec = nn.logical_to_mesh_axes(tuple(logical), LOGICAL_AXIS_RULES)
    fixed = [
        axes if axes is None or dim % _axis_size(mesh, axes) == 0 else None
        for axes, dim in zip(tuple(spec) + (None,) * (len(shape) - len(spec)), shape, strict=True)
    ]
    return PartitionSpec(*fixed)


def param_shardings(logical_axes: Any, abstract_params: Any, mesh: Mesh) -> Any:
    """NamedShardings for a param tree, from its logical PartitionSpecs and shapes."""
    return jax.tree_util.tree_map(
        lambda spec, leaf: NamedSharding(mesh, mesh_spec(spec, leaf.shape, mesh)),
        logical_axes,
        abstract_params,
        is_leaf=lambda x: isinstance(x, PartitionSpec),
    )


def _state_spec(shape: tuple[int, ...], param_spec: PartitionSpec, param_shape: tuple) -> Any:
    """Spec of one optimizer-state leaf belonging to a param.

    Same shape as the param (Adam moments): the param's spec. One dimension fewer (Adafactor's
    factored row/column statistics): the param's spec without the reduced dimension. Else
    (scalars, unfactored placeholders): replicated.
    """
    spec = tuple(param_spec) + (None,) * (len(param_shape) - len(param_spec))
    if tuple(shape) == tuple(param_shape):
        return PartitionSpec(*spec)
    if len(shape) == len(param_shape) - 1:
        for drop in range(len(param_shape)):
            rest = param_shape[:drop] + param_shape[drop + 1 :]
            if tuple(rest) == tuple(shape):
                return PartitionSpec(*(spec[:drop] + spec[drop + 1 :]))
    return PartitionSpec()


def opt_state_shardings(
    optimizer: Any, abstract_opt_state: Any, param_sharding: Any, abstract_params: Any, mesh: Mesh
) -> Any:
    """Shardings for an optax state: leaves tied to a param follow its sharding."""
    import optax

    def for_leaf(leaf: Any, sharding: NamedSharding, param: Any) -> NamedSharding:
        if not hasattr(leaf, "shape"):
            return NamedSharding(mesh, PartitionSpec())
        return NamedSharding(mesh, _state_spec(leaf.shape, sharding.spec, param.shape))

    mapped = optax.tree_utils.tree_map_params(
        optimizer,
        for_leaf,
        abstract_opt_state,
        param_sharding,
        abstract_params,
        transform_non_params=lambda _: NamedSharding(mesh, PartitionSpec()),
        is_leaf=lambda x: isinstance(x, jax.ShapeDtypeStruct),
    )
    return mapped


@contextlib.contextmanager
def activate(mesh: Mesh) -> Iterator[Mesh]:
    """Make ``mesh`` and the rules table current, so the model's logical activation
    constraints become real sharding constraints when jitted functions are traced."""
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        yield mesh


def batch_spec() -> PartitionSpec:
    """Batches are split along their first dimension over (data, fsdp)."""
    return PartitionSpec(("data", "fsdp"))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, batch_spec())


def data_parallel_size(mesh: Mesh) -> int:
    return mesh.shape["data"] * mesh.shape["fsdp"]


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble each host's slice of the batch into global arrays sharded over (data, fsdp)."""
    sharding = batch_sharding(mesh)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local.items()
    }


def initialize_distributed(
    coordinator_address: str | None = None,
    process_count: int | None = None,
    process_index: int | None = None,
) -> None:
    """``jax.distributed.initialize`` for multi-host TPU pods (all autodetected) and multi-process
    GPU jobs (coordinator and ranks given, or detected from SLURM). Call before any JAX work."""
    kwargs = {
        k: v
        for k, v in dict(
            coordinator_address=coordinator_address,
            num_processes=process_count,
            process_id=process_index,
        ).items()
        if v is not None
    }
    jax.distributed.initialize(**kwargs)
    log.info(
        "jax.distributed: process %d of %d, %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
