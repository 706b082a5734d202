"""Where a training run starts: the train state's shapes and shardings, and restore precedence.

Restore precedence, implemented once (:func:`restore_source`):
  1. MODEL_DIR's latest checkpoint: params, optimizer state, step and data-iterator position
     (an interrupted run continues exactly);
  2. else INIT_CHECKPOINT: params only, optimizer fresh, step 0 (the previous stage's
     checkpoint, an imported Hugging Face checkpoint, or a Hugging Face directory);
  3. else HF_CHECKPOINT (the model gin file's pretrained weights: a hub id or directory);
  4. else random initialisation from SEED.

:class:`TrainStateInitializer` (T5X's name) builds the abstract state (no memory), its
shardings over the mesh, and the concrete state from whichever source applies; initial
parameters are checked (family, shapes, config) before any training or writing starts.
"""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax

from t5x_xfer import checkpoints, partitioning
from t5x_xfer.models import BaseModel
from t5x_xfer.trainer import TrainState

log = logging.getLogger("t5x_xfer.train")

SOURCES = ("resume", "init", "hf", "random")


def restore_source(
    manager: Any, init_checkpoint: str | None, hf_checkpoint: str | None
) -> tuple[str, Any]:
    """Where the run's starting point comes from: ("resume", step), ("init", path),
    ("hf", id_or_dir) or ("random", None). See the module docstring."""
    latest = manager.latest_step()
    if latest is not None:
        return "resume", latest
    if init_checkpoint:
        return "init", init_checkpoint
    if hf_checkpoint:
        return "hf", hf_checkpoint
    return "random", None


def _with_shardings(tree: Any, shardings: Any) -> Any:
    return jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree, shardings
    )


class TrainStateInitializer:
    """The abstract train state of ``model`` + ``optimizer`` sharded over ``mesh``, and the
    concrete state from a checkpoint, initial parameters or a random init."""

    def __init__(
        self, model: BaseModel, optimizer: optax.GradientTransformation, mesh: jax.sharding.Mesh
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        abstract = model.abstract_params()
        p_shardings = partitioning.param_shardings(model.logical_axes(), abstract, mesh)
        abstract_opt = jax.eval_shape(optimizer.init, abstract)
        o_shardings = partitioning.opt_state_shardings(
            optimizer, abstract_opt, p_shardings, abstract, mesh
        )
        self.param_shardings = p_shardings
        self.opt_shardings = o_shardings
        self.abstract_params = _with_shardings(abstract, p_shardings)
        self.abstract_opt_state = _with_shardings(abstract_opt, o_shardings)
        self.replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        self.state_shardings = TrainState(
            step=self.replicated, params=p_shardings, opt_state=o_shardings
        )

    def _check_family(self, other: BaseModel, where: str) -> None:
        if other.family != self.model.family:
            raise ValueError(
                f"{where} holds a {other.family!r}-family model ({type(other).__name__}), but "
                f"the gin model file builds a {self.model.family!r}-family model "
                f"({type(self.model).__name__}); give a checkpoint of the same family"
            )

    def load_init_params(self, source: str, path: str) -> Any:
        """Params from an orbax checkpoint or a Hugging Face dir/hub id, checked against the
        model (family, shapes, and for Hugging Face the config) and sharded."""
        from t5x_xfer import hf

        local = Path(path).expanduser()
        if source == "hf" or (local / "config.json").is_file():
            where = f"Hugging Face checkpoint {path}"
            hf_model, params, _ = hf.load_hf(path)
            self._check_family(hf_model, where)
            checkpoints.check_shapes(params, self.abstract_params, where)
            differs = self.model.config_differences(hf_model.config)
            if differs:
                raise ValueError(f"{path}: config differs from the model's: {differs}")
            return jax.tree.map(
                lambda x, a: jax.device_put(x, a.sharding), params, self.abstract_params
            )
        self._check_family(checkpoints.load_model(path), f"INIT_CHECKPOINT {path}")
        return checkpoints.load_params(path, target=self.abstract_params)

    def check_stored_model(self, stored: BaseModel, where: str) -> None:
        """Fail in one line when ``where`` (a checkpoint in MODEL_DIR) holds another model,
        naming each differing config field; called before anything is written."""
        self._check_family(stored, where)
        differs = self.model.config_differences(stored.config)
        if differs:
            fields = ", ".join(
                f"{k} {a!r} there but {b!r} in the gin config" for k, (a, b) in differs.items()
            )
            raise ValueError(
                f"{where} holds a checkpoint of another model config ({fields}); give another "
                "MODEL_DIR, or the model settings that run was trained with"
            )

    def resume(self, manager: Any, model_dir: str) -> tuple[TrainState, dict[str, Any]]:
        """The run's latest readable step, after checking its stored model config.

        A step that cannot be read (a truncated array file, a damaged JSON item) is skipped
        for the one before it; once an earlier step restores, each skipped step is moved to
        ``<step>.corrupt`` (kept for inspection, never deleted) with a warning naming it, so
        the run can save that step again. When no step restores, nothing is moved and the
        error names the latest step and what to do.
        """
        root = checkpoints.as_path(model_dir)
        steps = sorted(manager.all_steps(), reverse=True)
        bad: list[tuple[int, str]] = []  # (step, first line of its error)
        for step in steps:
            where = f"MODEL_DIR {model_dir} (step {step})"
            try:
                stored = checkpoints.load_model(root / str(step))
            except Exception as e:  # unreadable model_config: a damaged step
                bad.append((step, _why(e)))
                continue
            self.check_stored_model(stored, where)
            try:
                state, meta = self.from_checkpoint(manager, step)
            except Exception as e:  # tensorstore / OS errors of damaged array files
                bad.append((step, _why(e)))
            if bad and bad[-1][0] == step:
                _collect_quietly()  # after the except block has released the error's frames
                continue
            if bad:
                _set_aside(manager, root, bad, step)
            return state, meta
        step, error = bad[0]
        raise ValueError(
            f"MODEL_DIR {model_dir}: checkpoint step {step} cannot be read "
            f"({error})"
            + (f" and neither can steps {[s for s, _ in bad[1:]]}" if len(bad) > 1 else "")
            + f"; if their files are damaged, move those step directories out of {model_dir} "
            "(the run then starts from INIT_CHECKPOINT or scratch); if the run's optimizer "
            "settings changed, give another MODEL_DIR"
        )

    def from_checkpoint(self, manager: Any, step: int) -> tuple[TrainState, dict[str, Any]]:
        """The run's own step ``step`` (params, optimizer state) and its metadata."""
        params, opt_state, meta = checkpoints.restore_train_state(
            manager, step, self.abstract_params, self.abstract_opt_state
        )
        return self._state(int(meta["step"]), params, opt_state), meta

    def from_params(self, params: Any | None, seed: int) -> TrainState:
        """Step 0 with ``params`` (or a random init from ``seed``) and a fresh optimizer."""
        if params is None:
            init_fn = jax.jit(self.model.init_params, out_shardings=self.param_shardings)
            params = init_fn(jax.random.PRNGKey(seed))
        opt_state = jax.jit(self.optimizer.init, out_shardings=self.opt_shardings)(params)
        return self._state(0, params, opt_state)

    def _state(self, step: int, params: Any, opt_state: Any) -> TrainState:
        state = TrainState(step=jnp.asarray(step, jnp.int32), params=params, opt_state=opt_state)
        return jax.device_put(state, self.state_shardings)


def _why(error: BaseException) -> str:
    return f"{type(error).__name__}: {checkpoints.first_line(error)}"


def _collect_quietly() -> None:
    """Collect the reads orbax left pending when one array failed, without the page of
    "Exception ignored in coroutine" each would print at exit."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook


def _set_aside(manager: Any, root: Any, bad: list[tuple[int, str]], good: int) -> None:
    """Move unreadable steps to ``<step>.corrupt`` (process 0) and warn naming them; the
    manager forgets them, so the resumed run saves those steps anew."""
    for step, error in bad:
        dest = root / f"{step}.corrupt"
        n = 1
        while dest.exists():
            dest, n = root / f"{step}.corrupt{n}", n + 1
        if jax.process_index() == 0:
            (root / str(step)).rename(dest)
        log.warning(
            "checkpoint step %d in %s cannot be read (%s); resuming from step %d instead (the "
            "damaged step is kept as %s: delete it once inspected)",
            step,
            root,
            error,
            good,
            dest,
        )
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("t5x_xfer: damaged steps set aside")
    manager.reload()
