"""Orbax checkpoints and the run directory: the one on-disk format stages hand over through.

A checkpoint directory is an orbax ``CheckpointManager`` root with numbered step directories;
each step holds the item ``params`` (the model parameters) and ``model_config`` (the model's
family tag and config as JSON, ``{"family": "t5", "config": {...}}``; checkpoints written before
family tags hold the bare T5 config and load as T5), so any stage rebuilds the model from the
directory alone (:func:`load_model`). Trainer steps add further items (optimizer state, step
metadata) beside these; readers of params never need them. Anywhere a checkpoint is expected,
either the root (latest step) or one step directory may be given.

A run directory (a training stage's MODEL_DIR, or an imported checkpoint) also holds
``hf_assets/`` (the tokenizer files, so that infer and export need nothing else), and, for
training runs, ``config.gin``, ``summary.json`` and the metrics files. Paths may be local or
``gs://`` (TPU pods); :func:`write_text` writes either, atomically where the filesystem allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from t5x_xfer.io_utils import write_atomic
from t5x_xfer.models import BaseModel, registry

PARAMS = "params"
MODEL_CONFIG = "model_config"
ASSETS_DIR = "hf_assets"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "spiece.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)


def is_remote(path: str | Path) -> bool:
    return "://" in str(path)


def as_path(path: str | Path) -> Any:
    """A local path (resolved) or, for ``gs://`` and other URLs, an etils ``epath.Path``, so
    checkpoints can live on GCS for TPU pods."""
    if is_remote(path):
        from etils import epath

        return epath.Path(str(path))
    return Path(path).expanduser().resolve()


def local_dir(path: str | Path) -> Path | None:
    """The resolved local path, or None for a remote one (no local files to append to)."""
    return None if is_remote(path) else Path(path).expanduser().resolve()


def write_text(path: str | Path, text: str) -> None:
    """Write a run-directory file: atomically on a local disk, as one object on ``gs://``."""
    if is_remote(path):
        as_path(path).write_text(text)
    else:
        write_atomic(Path(path).expanduser(), text)


def copy_tokenizer_files(source: Any, dest: Any) -> list[str]:
    """Copy the tokenizer files found in directory ``source`` into ``dest`` (made only when
    there is something to copy); byte copies, so local dirs and ``gs://`` alike."""
    found = [name for name in TOKENIZER_FILES if (source / name).is_file()]
    if found:
        dest.mkdir(parents=True, exist_ok=True)
        for name in found:
            (dest / name).write_bytes((source / name).read_bytes())
    return found


def copy_assets(
    model_dir: str | Path, sources: Sequence[str | None], vocabulary: Any | None = None
) -> None:
    """Put the tokenizer files in ``model_dir/hf_assets`` so later stages need only the dir.

    Candidates, first found: each of ``sources``' hf_assets (of the checkpoint root, or of the
    root above a step directory) or the source itself (a Hugging Face dir), then the
    vocabulary's own file (tokenizer.json or SentencePiece model). Kept if already there.
    """
    out = as_path(model_dir)
    dest = out / ASSETS_DIR
    if dest.exists():
        return
    candidates = []
    for source in sources:
        if source:
            root = as_path(source)
            candidates += [root / ASSETS_DIR, root.parent / ASSETS_DIR, root]
    for attr in ("_source", "sentencepiece_model_file"):
        path = getattr(vocabulary, attr, None)
        if isinstance(path, str) and path:
            candidates.append(as_path(path))
    for cand in candidates:
        if not cand.exists():
            continue
        if cand.is_dir():
            files = {f: f.name for f in (cand / n for n in TOKENIZER_FILES) if f.exists()}
        else:
            files = {cand: "spiece.model" if cand.suffix == ".model" else "tokenizer.json"}
        if files:
            tmp = out / (ASSETS_DIR + ".tmp")
            tmp.mkdir(parents=True, exist_ok=True)
            for f, name in files.items():
                (tmp / name).write_bytes(f.read_bytes())
            tmp.rename(dest)
            return


def shape_tree(tree: Any) -> dict[str, tuple[int, ...]]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): tuple(leaf.shape) for path, leaf in flat}


def check_shapes(actual: Any, expected: Any, where: str) -> None:
    """Raise naming ``where`` and every mismatching parameter when two param trees differ."""
    got, want = shape_tree(actual), shape_tree(expected)
    problems = [f"missing {k} (expected shape {want[k]})" for k in sorted(set(want) - set(got))]
    problems += [f"unexpected {k} (shape {got[k]})" for k in sorted(set(got) - set(want))]
    problems += [
        f"{k}: shape {got[k]} but the model config needs {want[k]}"
        for k in sorted(set(got) & set(want))
        if got[k] != want[k]
    ]
    if problems:
        shown = "; ".join(problems[:8]) + (
            f"; ... {len(problems) - 8} more" if len(problems) > 8 else ""
        )
        raise ValueError(f"{where}: parameters do not match the model config: {shown}")


def resolve(path: str | Path) -> tuple[Path, int]:
    """(manager root, step) for a checkpoint root (latest step) or a step directory."""
    path = as_path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if (path / PARAMS).is_dir() and path.name.isdigit():
        return path.parent, int(path.name)
    steps = sorted(
        int(p.name) for p in path.iterdir() if p.name.isdigit() and (p / PARAMS).is_dir()
    )
    if not steps:
        raise FileNotFoundError(
            f"{path} is not a t5x_xfer checkpoint: expected numbered step directories holding "
            f"'{PARAMS}/' (e.g. {path}/0/{PARAMS}) or a step directory itself"
        )
    return path, steps[-1]


def save(directory: str | Path, params: Any, model: BaseModel, step: int = 0) -> Path:
    """Write params and the model's family and config as step ``step`` of ``directory``;
    returns the step dir."""
    directory = as_path(directory)
    with ocp.CheckpointManager(
        directory, options=ocp.CheckpointManagerOptions(create=True)
    ) as manager:
        manager.save(
            step,
            args=ocp.args.Composite(
                **{
                    PARAMS: ocp.args.StandardSave(params),
                    MODEL_CONFIG: ocp.args.JsonSave(registry.to_json(model)),
                }
            ),
        )
        manager.wait_until_finished()
    return directory / str(step)


def load_model(path: str | Path) -> BaseModel:
    """The model (family and config) a checkpoint was saved with."""
    root, step = resolve(path)
    with ocp.CheckpointManager(root) as manager:
        restored = manager.restore(
            step, args=ocp.args.Composite(**{MODEL_CONFIG: ocp.args.JsonRestore()})
        )
    return registry.from_json(restored[MODEL_CONFIG], f"checkpoint {root / str(step)}")


def _params_metadata(root: Any, step: int) -> Any:
    """The stored params tree of shapes and dtypes (orbax ArrayMetadata leaves)."""
    meta = ocp.StandardCheckpointer().metadata(root / str(step) / PARAMS)
    meta = getattr(meta, "item_metadata", meta)
    return getattr(meta, "tree", meta)


def load_params(path: str | Path, target: Any | None = None) -> Any:
    """Restore params onto the current topology, whatever topology wrote them.

    ``target`` (arrays or ShapeDtypeStructs with shardings) shards them over the current
    devices; without one they come back as host numpy arrays (orbax restore args with
    ``restore_type=np.ndarray``), never onto the writer's shardings, so a checkpoint written
    on a pod (e.g. a (2, 2, 2) mesh) is exported and decoded on one host. Shapes are checked
    against ``target`` when given, and the error names the checkpoint. An unreadable step
    fails in one line naming it (:class:`CorruptCheckpointError`).
    """
    root, step = resolve(path)
    where = root / str(step)
    try:
        meta = _params_metadata(root, step)
        if target is not None:
            check_shapes(meta, target, f"checkpoint {where}")
            restore = ocp.args.StandardRestore(target)
        else:
            args = jax.tree.map(
                lambda m: ocp.RestoreArgs(restore_type=np.ndarray, dtype=m.dtype), meta
            )
            restore = ocp.args.PyTreeRestore(restore_args=args)
        with ocp.CheckpointManager(root) as manager:
            restored = manager.restore(step, args=ocp.args.Composite(**{PARAMS: restore}))
    except ValueError as e:
        if "do not match the model config" in str(e):
            raise
        raise CorruptCheckpointError(where, e) from None
    except Exception as e:  # tensorstore / OS errors of damaged files
        raise CorruptCheckpointError(where, e) from None
    params = restored[PARAMS]
    if target is None:
        params = jax.tree_util.tree_map(np.asarray, params)
    return params


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an error's message (library errors span pages), for one-line errors."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    line = line.split(" See full TensorStore details")[0]  # followed by a page of spec
    return line if len(line) <= limit else line[:limit] + "..."


class CorruptCheckpointError(ValueError):
    """A checkpoint step that cannot be read (truncated or missing files): one line naming the
    step, the cause and what to do."""

    def __init__(self, step_dir: Any, cause: BaseException) -> None:
        self.step_dir = step_dir
        super().__init__(
            f"checkpoint step {step_dir} cannot be read ({type(cause).__name__}: "
            f"{first_line(cause)}); it is damaged or incomplete: give an earlier step "
            f"directory of {Path(str(step_dir)).parent}, or move this one away"
        )


# --------------------------------------------------------------------------------------------
# Training checkpoints: params + optimizer state + the step (which fixes the data position).

OPT_STATE = "opt_state"
TRAIN_META = "train_meta"


def train_manager(
    model_dir: str | Path,
    *,
    keep: int | None = 3,
    keep_best: int = 0,
    best_metric: str | None = None,
    best_mode: str = "min",
    async_save: bool = True,
) -> ocp.CheckpointManager:
    """The training run's CheckpointManager: the last ``keep`` steps plus the ``keep_best``
    best by ``best_metric`` (an eval metric given at save time, ``best_mode`` min or max)."""
    if best_mode not in ("min", "max"):
        raise ValueError(f"best_mode {best_mode!r} unknown; allowed: ['min', 'max']")
    if keep_best and not best_metric:
        raise ValueError("keep_best needs best_metric (e.g. 'eval/loss')")
    policies: list[Any] = [ocp.checkpoint_managers.LatestN(keep)]
    if keep_best:
        policies.append(
            ocp.checkpoint_managers.BestN(
                get_metric_fn=lambda m: m[best_metric],
                reverse=best_mode == "min",
                n=keep_best,
                keep_checkpoints_without_metrics=False,
            )
        )
    options = ocp.CheckpointManagerOptions(
        create=True,
        enable_async_checkpointing=async_save,
        preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
    )
    return ocp.CheckpointManager(as_path(model_dir), options=options)


def save_train_state(
    manager: ocp.CheckpointManager,
    step: int,
    params: Any,
    opt_state: Any,
    model: BaseModel,
    meta: dict[str, Any],
    metrics: dict[str, float] | None = None,
) -> None:
    """Save one training step (asynchronously when the manager allows). ``meta`` holds the
    step and the number of batches drawn, from which the data position is restored."""
    items = {
        PARAMS: ocp.args.StandardSave(params),
        OPT_STATE: ocp.args.StandardSave(opt_state),
        MODEL_CONFIG: ocp.args.JsonSave(registry.to_json(model)),
        TRAIN_META: ocp.args.JsonSave(meta),
    }
    manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=True)


def restore_train_state(
    manager: ocp.CheckpointManager,
    step: int,
    abstract_params: Any,
    abstract_opt_state: Any,
) -> tuple[Any, Any, dict[str, Any]]:
    """(params, opt_state, meta) of ``step``, sharded like the abstract targets."""
    items = {
        PARAMS: ocp.args.StandardRestore(abstract_params),
        OPT_STATE: ocp.args.StandardRestore(abstract_opt_state),
        TRAIN_META: ocp.args.JsonRestore(),
    }
    restored = manager.restore(step, args=ocp.args.Composite(**items))
    return restored[PARAMS], restored[OPT_STATE], restored[TRAIN_META]


class TrainCheckpointer:
    """A training run's saves: params, optimizer state, the model, and the step metadata
    (``step`` = batches drawn, from which the data position is restored, plus ``meta``)."""

    def __init__(
        self,
        manager: ocp.CheckpointManager,
        model: BaseModel,
        meta: dict[str, Any],
        data: Any = None,
    ) -> None:
        self.manager = manager
        self.model = model
        self.meta = dict(meta)
        self.data = data  # a t5x_xfer.data_position.DataIterator, saved first

    def save(
        self,
        step: int,
        state: Any,
        metrics: dict[str, float] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Save ``state`` (a TrainState) as ``step``; ``metrics`` feed keep-best retention;
        ``extra`` joins the step metadata; the data position (when given) first, so a
        committed step always has it."""
        if self.data is not None:
            self.data.save(step, keep=self.manager.all_steps())
        save_train_state(
            self.manager,
            step,
            state.params,
            state.opt_state,
            self.model,
            {"step": step, "batches_drawn": step, **self.meta, **(extra or {})},
            metrics=metrics,
        )

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
