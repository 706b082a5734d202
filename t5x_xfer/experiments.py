"""The grid driver: every arm x seed x stage of the experiment, planned, run, tracked, reported.

    python -m t5x_xfer.experiments plan   --grid gin/experiments/grid_codet5p_220m.gin
        [--launcher local|tpu|slurm] [--root DIR]
    python -m t5x_xfer.experiments plan   --grid ... --power [--pass_rate 0.2] [--seed_sd 1]
        [--pilot RUNS/baseline/seed*/eval]   (the smallest detectable pass@1 difference)
    python -m t5x_xfer.experiments run    --grid ... [--arms baseline mnli] [--seeds 0]
    python -m t5x_xfer.experiments run    --grid A.gin B.gin --jobs 2   (2 stages at a time)
    python -m t5x_xfer.experiments status --grid ...
    python -m t5x_xfer.experiments report --grid ...

A grid file binds :class:`Grid` (model, arms, seeds, run files, decoding and evaluation
settings). An arm is a gin file ``gin/experiments/<arm>.gin`` that sets the intermediate
stage's MIXTURE_OR_TASK_NAME (``None`` for the baseline, which has no intermediate stage).
Per arm and seed the stages are::

    <root>/pretrained                        (shared: HF import, or a seeded random init)
    <root>/<arm>/seed<S>/intermediate        python -m t5x_xfer.train  (run file + model + arm)
    <root>/<arm>/seed<S>/target              python -m t5x_xfer.train  (INIT_CHECKPOINT above)
    <root>/<arm>/seed<S>/eval                python -m t5x_xfer.evaluate_code --checkpoint
    <root>/<arm>/seed<S>/hf                  python -m t5x_xfer.convert export_hf (if asked)
    <root>/report                            t5x_xfer.report.write_report

Stages hand over only through these directories. ``run`` executes the unfinished ones in order,
the exact commands ``plan`` prints: data preparation, training, the decoding of each evaluation
and the report inside the driver's own process (imports and JAX's start-up paid once per grid,
not once per stage), the execution of the samples as a child process (its sandbox forks, and
must not share a process with JAX's threads) that runs beside the next stages, its output in
``eval/execute.log`` (one at a time; a grid's report waits for them); ``run --isolate`` starts
every stage as its own process, one after the other. ``run --jobs N`` starts N worker
drivers that share the stages of every grid, each stage once its inputs are finished
(:func:`work`). A stage is finished when its completion file exists (``summary.json`` of
train and evaluate_code, ``config.json`` of an export), and an interrupted stage resumes from
its own checkpoint or cache when run again.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import os
import posixpath
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gin

from t5x_xfer import gin_utils, host, logs
from t5x_xfer.codeeval.data import MINIBENCH, humaneval_x_dir
from t5x_xfer.decoding.settings import DecodeSettings, override
from t5x_xfer.io_utils import check_output_dir

log = logging.getLogger("t5x_xfer.experiments")

LAUNCHERS = ("local", "tpu", "slurm")
# Binaries ``run`` calls in its own process (module of ``python -m`` -> its main function).
IN_PROCESS = {
    "t5x_xfer.train": "t5x_xfer.train",
    "t5x_xfer.testing.smoke_data": "t5x_xfer.testing.smoke_data",
    "t5x_xfer.report": "t5x_xfer.report.write",
}
J = posixpath.join  # stage paths are strings: local paths or gs:// URLs alike


# The decoding of a real grid: 20 samples per problem at T=0.8, top-p 0.95 (pass@1, pass@10).
GRID_DECODE = DecodeSettings(
    method="sample", num_samples=20, temperature=0.8, top_p=0.95, max_length=512
)
# Old spellings of decode's fields as Grid fields; still read, with a message.
_OLD_DECODE_FIELDS = ("num_samples", "temperature", "top_p", "max_length")


@dataclasses.dataclass(frozen=True)
class Grid:
    """One experiment grid (bind it in a gin/experiments/grid_*.gin file).

    ``pretrained``: a Hugging Face hub id or directory imported once as every arm's starting
    point, or None for a seeded random init (the tiny debug model). ``prepare``: commands run
    first (e.g. writing the smoke data and training its tokenizer); ``{root}`` in them and in
    ``train_bindings`` is replaced by the grid's root. ``eval_data_dir`` is the HumanEval-X
    directory (None: $T5X_HUMANEVAL_X_DIR, else the hub; "minibench": $T5X_HUMANEVAL_X_DIR,
    else the project's mini benchmark). ``decode``: how every arm's target checkpoint is
    decoded (the seed is each run's); ``num_samples``, ``temperature``, ``top_p`` and
    ``max_length`` are the old spellings of its fields, still accepted.
    """

    name: str
    model_gin: str
    arms: Sequence[str]
    seeds: Sequence[int] = (0,)
    root: str | None = None
    pretrained: str | None = None
    prepare: Sequence[str] = ()
    intermediate_gin: str = "gin/runs/intermediate.gin"
    target_gin: str = "gin/runs/target.gin"
    train_bindings: Sequence[str] = ()
    intermediate_bindings: Sequence[str] = ()
    target_bindings: Sequence[str] = ()
    eval_languages: Sequence[str] = ("cpp", "go", "java", "js", "python", "rust")
    eval_data_dir: str | None = None
    decode: DecodeSettings = GRID_DECODE
    decode_batch_size: int = 16
    eval_workers: int | None = None
    export_hf: bool = False
    report_ks: Sequence[int] = (1, 10)
    num_samples: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_length: int | None = None

    def __post_init__(self) -> None:
        old = {k: getattr(self, k) for k in _OLD_DECODE_FIELDS if getattr(self, k) is not None}
        if old:
            log.warning(
                "Grid.%s: the old spelling of the decode settings' fields; use "
                "DecodeSettings.%s (Grid.decode) instead",
                "/".join(old),
                "/".join(old),
            )
            object.__setattr__(self, "decode", override(self.decode, **old))
            for k in old:
                object.__setattr__(self, k, None)
        if not self.arms:
            raise ValueError(f"grid {self.name!r}: arms is empty")
        if len(set(self.arms)) != len(self.arms):
            raise ValueError(f"grid {self.name!r}: duplicate arms in {list(self.arms)}")
        if not self.seeds or any(not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"grid {self.name!r}: seeds must be integers >= 0, got {self.seeds}")
        if not isinstance(self.decode, DecodeSettings):
            raise ValueError(
                f"grid {self.name!r}: decode must be a DecodeSettings, got {self.decode!r}"
            )


@dataclasses.dataclass(frozen=True)
class Stage:
    """One command of the grid and the file that says it finished."""

    key: str  # e.g. "mnli/seed0/target"
    kind: str  # prepare | pretrained | intermediate | target | eval | export | report
    argv: tuple[str, ...]  # without the python executable
    done: str | None  # local path or URL (gs://...)
    arm: str | None = None
    seed: int | None = None
    after: tuple[str, ...] = ()  # the keys of the stages whose outputs it reads

    def is_done(self) -> bool:
        return self.done is not None and _exists(self.done)

    def is_started(self) -> bool:
        return self.done is not None and _exists(posixpath.dirname(self.done))

    def shell(self, python: str = "python") -> str:
        if self.argv and self.argv[0] == "bash":
            return shlex.join(self.argv)
        return shlex.join([python, *self.argv])


def load_grid(path: str, bindings: Sequence[str] = ()) -> Grid:
    """Parse a grid gin file and build its :class:`Grid` (gin attached here, at the edge)."""
    grid_using_gin = gin_utils.configurable_entry(Grid)
    gin_utils.parse([path], list(bindings))
    try:
        grid = grid_using_gin()
    except TypeError as e:
        raise ValueError(f"{path}: incomplete Grid binding: {e}") from None
    gin.clear_config()
    return grid


def arm_mixture(arm: str) -> str | None:
    """The intermediate mixture an arm's gin file sets (None: no intermediate stage)."""
    path = f"gin/experiments/{arm}.gin"
    gin.clear_config()
    try:
        gin_utils.parse([path], finalize=False)
    except FileNotFoundError:
        known = sorted(p.stem for p in (gin_utils.REPO_ROOT / "gin" / "experiments").glob("*.gin"))
        known = [k for k in known if not k.startswith("grid_")]
        raise ValueError(
            f"arm {arm!r} has no gin file gin/experiments/{arm}.gin; known arms: {known}"
        ) from None
    try:
        return gin.query_parameter("%MIXTURE_OR_TASK_NAME")
    except ValueError:
        raise ValueError(f"gin/experiments/{arm}.gin does not set MIXTURE_OR_TASK_NAME") from None
    finally:
        gin.clear_config()


def _root(grid: Grid, root: str | None) -> str:
    return (root or grid.root or f"runs/{grid.name}").rstrip("/")


def _local_root(grid: Grid, root: str | None) -> str:
    """The grid's root, for ``run``: a local directory we may write."""
    base = _root(grid, root)
    if "://" in base:
        raise ValueError(f"run executes locally; root {base} is remote: use plan and launch/")
    check_output_dir(base, "--root")
    return base


def _log_tail(log: Path, lines: int = 20) -> str:
    """The last non-blank lines of a child's log (a progress bar's redraws split apart)."""
    text = re.split(r"[\r\n]", log.read_text(errors="replace"))
    return "\n".join([t for t in text if t.strip()][-lines:])


def _exists(path: str) -> bool:
    if "://" in path:
        from etils import epath

        return epath.Path(path).exists()
    return Path(path).exists()


def _fill(items: Sequence[str], root: str) -> list[str]:
    return [s.replace("{root}", root) for s in items]


def _problems_dir(value: str, root: str) -> str:
    """ "minibench": $T5X_HUMANEVAL_X_DIR when set, else the project's mini benchmark."""
    if value == MINIBENCH:
        return str(humaneval_x_dir(None, default=MINIBENCH))
    return _fill([value], root)[0]


def _train_argv(
    grid: Grid, run_gin: str, extra_gin: Sequence[str], bindings: Sequence[str]
) -> tuple[str, ...]:
    files = [f"--gin_file={f}" for f in (run_gin, grid.model_gin, *extra_gin)]
    return ("-m", "t5x_xfer.train", *files, *(f"--gin.{b}" for b in bindings))


def _q(value: Any) -> str:
    """A gin literal for a command-line binding."""
    return json.dumps(str(value)) if isinstance(value, (str, Path)) else repr(value)


def stages(grid: Grid, root: str | None = None) -> list[Stage]:
    """Every stage of the grid, in an order that respects the hand-overs."""
    base = _root(grid, root)
    out = _prepare_stages(grid, base)
    out.append(_pretrained_stage(grid, base))
    for arm in grid.arms:
        mixture = arm_mixture(arm)
        for seed in grid.seeds:
            out += _run_stages(grid, base, arm, mixture, seed)
    argv = ("-m", "t5x_xfer.report", "--root", base, "--out", J(base, "report"))
    argv += ("--arms", *grid.arms, "--ks", *(str(k) for k in grid.report_ks))
    out.append(Stage("report", "report", argv, None))
    return _with_dependencies(out)


def _with_dependencies(todo: Sequence[Stage]) -> list[Stage]:
    """Each stage with the keys of those it reads (``after``): prepare commands in order,
    then the shared pretrained stage, each arm and seed's chain from it (eval and export
    read the target stage), the report every eval and export: what ``run --jobs`` may
    run side by side.

    >>> keys = ["prepare/0", "pretrained", "a/seed0/intermediate", "a/seed0/target"]
    >>> keys += ["a/seed0/eval", "a/seed0/export", "report"]
    >>> kinds = ["prepare", "pretrained", "intermediate", "target", "eval", "export", "report"]
    >>> dag = _with_dependencies([Stage(k, t, (), None) for k, t in zip(keys, kinds)])
    >>> {s.key: s.after for s in dag}  # doctest: +NORMALIZE_WHITESPACE
    {'prepare/0': (), 'pretrained': ('prepare/0',), 'a/seed0/intermediate': ('pretrained',),
     'a/seed0/target': ('a/seed0/intermediate',), 'a/seed0/eval': ('a/seed0/target',),
     'a/seed0/export': ('a/seed0/target',), 'report': ('a/seed0/eval', 'a/seed0/export')}
    """
    prepares = tuple(s.key for s in todo if s.kind == "prepare")
    out, last = [], {}  # (arm, seed) -> its latest training stage
    for s in todo:
        if s.kind == "prepare":
            after = prepares[: prepares.index(s.key)][-1:]
        elif s.kind == "pretrained":
            after = prepares
        elif s.kind == "report":
            after = tuple(t.key for t in todo if t.kind in ("eval", "export"))
        else:
            after = (last.get((s.arm, s.seed), "pretrained"),)
            if s.kind in ("intermediate", "target"):
                last[(s.arm, s.seed)] = s.key
        out.append(dataclasses.replace(s, after=after))
    return out


def _prepare_stages(grid: Grid, base: str) -> list[Stage]:
    out = []
    for i, cmd in enumerate(grid.prepare):
        argv = tuple(shlex.split(_fill([cmd], base)[0]))
        if argv[:1] == ("python",):
            argv = argv[1:]
        out.append(Stage(f"prepare/{i}", "prepare", argv, J(base, "prepared", f"{i}.done")))
    return out


def _pretrained_stage(grid: Grid, base: str) -> Stage:
    """Every arm's starting point: a Hugging Face import, or a seeded random init saved by
    the train binary at step 0."""
    pretrained = J(base, "pretrained")
    if grid.pretrained:
        argv = ("-m", "t5x_xfer.convert", "import_hf", "--hf", grid.pretrained)
        return Stage("pretrained", "pretrained", (*argv, "--out", pretrained), J(pretrained, "0"))
    bindings = [*_fill(grid.train_bindings, base), *_fill(grid.target_bindings, base)]
    bindings += [f"MODEL_DIR={_q(pretrained)}", "TRAIN_STEPS=0", "SEED=0", "HF_CHECKPOINT=None"]
    argv = _train_argv(grid, grid.target_gin, (), bindings)
    return Stage("pretrained", "pretrained", argv, J(pretrained, "summary.json"))


def _run_stages(grid: Grid, base: str, arm: str, mixture: str | None, seed: int) -> list[Stage]:
    """One arm and seed: intermediate stage (unless the baseline), target stage, evaluation,
    and the Hugging Face export when the grid asks for it."""
    run, common = J(base, arm, f"seed{seed}"), _fill(grid.train_bindings, base)
    init, out = J(base, "pretrained"), []

    def stage(kind: str, argv: tuple[str, ...], done: str | None) -> None:
        out.append(Stage(f"{arm}/seed{seed}/{kind}", kind, argv, done, arm, seed))

    if mixture is not None:
        inter = J(run, "intermediate")
        bindings = [*common, *_fill(grid.intermediate_bindings, base)]
        bindings += [f"MODEL_DIR={_q(inter)}", f"INIT_CHECKPOINT={_q(init)}", f"SEED={seed}"]
        arm_gin = (f"gin/experiments/{arm}.gin",)
        argv = _train_argv(grid, grid.intermediate_gin, arm_gin, bindings)
        stage("intermediate", argv, J(inter, "summary.json"))
        init = inter
    target = J(run, "target")
    bindings = [*common, *_fill(grid.target_bindings, base)]
    bindings += [f"MODEL_DIR={_q(target)}", f"INIT_CHECKPOINT={_q(init)}", f"SEED={seed}"]
    stage("target", _train_argv(grid, grid.target_gin, (), bindings), J(target, "summary.json"))
    ev = J(run, "eval")
    argv = ("-m", "t5x_xfer.evaluate_code", "--checkpoint", target, "--out", ev)
    argv += ("--languages", *grid.eval_languages, *grid.decode.replace(seed=seed).flags())
    argv += ("--batch_size", str(grid.decode_batch_size))
    if grid.eval_data_dir:
        argv += ("--data_dir", _problems_dir(grid.eval_data_dir, base))
    if grid.eval_workers:
        argv += ("--workers", str(grid.eval_workers))
    stage("eval", argv, J(ev, "summary.json"))
    if grid.export_hf:
        hf = J(run, "hf")
        argv = ("-m", "t5x_xfer.convert", "export_hf", "--checkpoint", target, "--out", hf)
        stage("export", argv, J(hf, "config.json"))
    return out


def select(
    all_stages: Sequence[Stage], arms: Sequence[str] | None, seeds: Sequence[int] | None
) -> list[Stage]:
    """Stages of the chosen arms and seeds (shared stages always kept)."""
    return [
        s
        for s in all_stages
        if (s.arm is None or not arms or s.arm in arms)
        and (s.seed is None or not seeds or s.seed in seeds)
    ]


def plan(
    grid: Grid, root: str | None = None, launcher: str = "local", launcher_args: str = ""
) -> list[str]:
    """The exact commands, one per stage; train stages wrapped in a launch script when asked."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher {launcher!r} unknown; allowed: {list(LAUNCHERS)}")
    lines = []
    for stage in stages(grid, root):
        cmd = stage.shell()
        if launcher != "local" and stage.kind in ("intermediate", "target", "pretrained"):
            script = {"tpu": "launch/tpu_pod.sh", "slurm": "launch/gpu_slurm.sh"}[launcher]
            train_args = shlex.join(stage.argv[2:])  # drop "-m t5x_xfer.train"
            if stage.argv[1] == "t5x_xfer.train":
                cmd = f"bash {script} {launcher_args} -- {train_args}".replace("  ", " ")
        lines.append(f"# {stage.key}\n{cmd}")
    return lines


def _compilation_cache_env(base: str) -> dict[str, str]:
    """JAX's persistent compilation cache under the root, shared by every stage and rerun
    (stages of one grid compile the same programs; the user's own settings win)."""
    return {
        "JAX_COMPILATION_CACHE_DIR": str(Path(base) / ".jax_cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def _stage_env(base: str) -> dict[str, str]:
    """The environment of the grid's child processes: its compilation cache (the user's
    settings win), malloc on huge pages (``host.with_huge_pages``), unbuffered output."""
    env = {**_compilation_cache_env(base), **host.with_huge_pages(os.environ)}
    return {**env, "PYTHONUNBUFFERED": "1"}


def _use_compilation_cache(base: str) -> None:
    """The grid's cache for the stages run in this process (the user's environment wins).
    JAX opens its cache directory once, so a new grid's directory resets it."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    for key, value in _compilation_cache_env(base).items():
        name = key.lower()
        current = getattr(jax.config, name)
        typed = value if current is None else type(current)(value)
        if key in os.environ or current == typed:
            continue
        jax.config.update(name, typed)
        if name == "jax_compilation_cache_dir":
            compilation_cache.reset_cache()


def _in_process(argv: Sequence[str]) -> int:
    """Exit status of ``python -m MODULE ARGS`` run as ``MODULE.main(ARGS)`` in this process."""
    main = importlib.import_module(IN_PROCESS[argv[1]]).main
    try:
        return int(main(list(argv[2:])) or 0)
    except SystemExit as e:  # argparse errors, SIGTERM's 143
        return e.code if isinstance(e.code, int) else int(e.code is not None)
    except Exception:  # the stage's own traceback, then the driver's one-line error
        import traceback

        traceback.print_exc()
        return 1


def _decode(argv: Sequence[str]) -> list[str] | int:
    """An eval stage's decoding, in this process (the model and JAX are loaded already):
    the arguments of the ``evaluate_code --samples`` run that executes the samples (its
    outputs equal ``evaluate_code --checkpoint``'s), or an exit status."""
    from t5x_xfer import evaluate_code, infer

    try:
        return evaluate_code.decode_then_execute_argv(argv[2:], infer.main)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


@dataclasses.dataclass
class _Execution:
    label: str  # "[i/n] key"
    key: str
    base: str
    proc: subprocess.Popen
    log: Path
    t0: float


@dataclasses.dataclass
class _Deferred:
    label: str
    key: str
    base: str
    cmd: list[str]
    env: dict[str, str]
    log: Path


class Background:
    """The executions of eval stages' samples, each a child process (its sandbox forks, and
    must not share a process with JAX's threads) that runs while the driver goes on with the
    next stages: training leaves CPU idle that compiling and running programs use (the debug
    grid: 13.6 s of execution beside a 28.7 s train stage took 0.9 s longer than the stage
    alone). One child at a time; a grid's report waits for its own executions, or, when
    another grid follows, is deferred: it runs as a child once they have ended, while the
    driver trains the next grid."""

    def __init__(self) -> None:
        self.running: list[_Execution] = []
        self.deferred: list[_Deferred] = []
        # the base of the grid the driver runs now (None: labels name their grid already)
        self.current: str | None = None

    def _name(self, label: str, base: str) -> str:
        """``label``, naming its grid when the driver has gone on to another one."""
        if self.current is None or base == self.current:
            return label
        return f"{label} (grid {posixpath.basename(base)})"

    def start(
        self, label: str, key: str, base: str, argv: list[str], env: dict[str, str], t0: float
    ) -> None:
        self.wait()
        log = Path(argv[argv.index("--out") + 1]) / "execute.log"
        child = [sys.executable, "-m", "t5x_xfer.evaluate_code", *argv]
        if "--no_progress" not in child:
            child.append("--no_progress")
        self._launch(label, key, base, child, env, log, t0)
        print(f"{label}: decoded; executing the samples in the background (log: {log})", flush=True)

    def defer(
        self, label: str, key: str, base: str, cmd: list[str], env: dict[str, str], log: Path
    ) -> None:
        """Run ``cmd`` (a grid's report) as a child once this grid's executions have ended."""
        self.deferred.append(_Deferred(label, key, base, cmd, env, log))
        print(f"{label}: deferred until the grid's executions end (log: {log})", flush=True)
        self.poll()

    def has(self, base: str, key: str) -> bool:
        """Whether the grid at ``base``'s stage ``key`` is running or deferred here."""
        return any(j.base == base and j.key == key for j in [*self.running, *self.deferred])

    def _launch(
        self,
        label: str,
        key: str,
        base: str,
        cmd: list[str],
        env: dict[str, str],
        log: Path,
        t0: float,
    ) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.running.append(_Execution(label, key, base, proc, log, t0))

    def poll(self) -> None:
        """Report the children that ended (a failed one stops the driver), then start the
        first deferred report whose grid has nothing left running."""
        for job in [j for j in self.running if j.proc.poll() is not None]:
            self.running.remove(job)
            rc = job.proc.returncode
            if rc != 0:
                print(_log_tail(job.log), file=sys.stderr)
                raise RuntimeError(
                    f"stage {job.key} failed (exit {rc}; log {job.log}); fix and rerun: "
                    "finished stages are skipped"
                )
            elapsed = time.perf_counter() - job.t0
            print(f"{self._name(job.label, job.base)}: finished in {elapsed:.0f} s", flush=True)
        if self.deferred and not self.running:
            d = self.deferred.pop(0)
            print(f"{self._name(d.label, d.base)}: started in the background", flush=True)
            self._launch(d.label, d.key, d.base, d.cmd, d.env, d.log, time.perf_counter())

    def wait(self, base: str | None = None) -> None:
        """Until the children (of the grid at ``base``, or all), deferred ones included,
        have ended."""

        def mine(job: _Execution | _Deferred) -> bool:
            return base is None or job.base == base

        while any(map(mine, self.running)) or any(map(mine, self.deferred)):
            # a deferred child of this grid waits for whatever runs before it
            blocking = [j for j in self.running if mine(j)] or self.running
            if blocking:
                blocking[0].proc.wait()
            self.poll()

    def stop(self) -> None:
        """Terminate what still runs (the driver failed or was interrupted): its results
        cache keeps finished programs, so the rerun resumes the stage."""
        self.deferred.clear()
        for job in self.running:
            job.proc.terminate()
        for job in self.running:
            try:
                job.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                job.proc.kill()
        self.running.clear()


def run(
    grid: Grid,
    root: str | None = None,
    arms: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    isolate: bool = False,
    background: Background | None = None,
    defer_report: bool = False,
) -> list[str]:
    """Run every unfinished stage in order; returns the keys of the stages it ran.
    ``isolate``: every stage as a child process, else the ``IN_PROCESS`` binaries and the
    decoding of eval stages in this one, and the execution of the samples in a child that
    runs beside the next stages (in ``background``, which the caller then waits for; by
    default this call waits before it returns). ``defer_report`` (another grid follows, in
    the same ``background``): the report, if executions still run, becomes a child that
    starts when they end, so this call returns at once."""
    base = _local_root(grid, root)
    todo = select(stages(grid, root), arms, seeds)
    Path(base).mkdir(parents=True, exist_ok=True)
    ran = []
    env = _stage_env(base)
    own = background is None
    bg = Background() if background is None else background
    bg.current = base
    try:
        for i, stage in enumerate(todo, 1):
            bg.poll()
            label = f"[{i}/{len(todo)}] {stage.key}"
            deferrable = stage.kind == "report" and defer_report and not own and not isolate
            if deferrable and any(job.base == base for job in bg.running):
                log = Path(base) / "report" / "report.log"
                bg.defer(label, stage.key, base, [sys.executable, *stage.argv], env, log)
                ran.append(stage.key)
                continue
            if stage.kind == "report":
                bg.wait(base)
            if _run_stage(label, stage, base, env, bg, isolate) != "skipped":
                ran.append(stage.key)
        if own:
            bg.wait()
    except BaseException:
        bg.stop()
        raise
    return ran


def _run_stage(
    label: str, stage: Stage, base: str, env: dict[str, str], bg: Background, isolate: bool
) -> str:
    """Run one stage of the grid rooted at ``base``: "skipped" (finished before), "ran", or
    "background" (an eval stage decoded here, its samples executing in ``bg``)."""
    if stage.is_done():
        print(f"{label}: done, skipped", flush=True)
        return "skipped"
    resumed = " (resuming)" if stage.is_started() else ""
    print(f"{label}{resumed}: {stage.shell()}", flush=True)
    argv = list(stage.argv)
    t0 = time.perf_counter()
    if not isolate and argv[0] == "-m" and argv[1] in IN_PROCESS:
        _use_compilation_cache(base)
        rc = _in_process(argv)
    elif not isolate and stage.kind == "eval":
        _use_compilation_cache(base)
        child = _decode(argv)
        if isinstance(child, list):
            bg.start(label, stage.key, base, child, env, t0)
            return "background"
        rc = child
    else:
        if argv[0] != "bash":
            argv = [sys.executable, *argv]
        rc = subprocess.run(argv, env=env).returncode
    if rc != 0:
        raise RuntimeError(
            f"stage {stage.key} failed (exit {rc}); fix and rerun: finished stages are skipped"
        )
    if stage.kind == "prepare" and stage.done is not None:
        Path(stage.done).parent.mkdir(parents=True, exist_ok=True)
        Path(stage.done).write_text("ok\n")
    print(f"{label}: finished in {time.perf_counter() - t0:.0f} s", flush=True)
    return "ran"


class Claims:
    """Which worker driver of ``run --jobs`` took which stage: a file per stage in a directory
    the parent made for this run, created exclusively (``O_EXCL``) by the worker that takes
    the stage and holding its pid, and ``<file>.ok`` once the stage finished. A stage whose
    worker died before finishing it blocks the stages after it (a rerun does them)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, grid: int, key: str) -> Path:
        return self.root / str(grid) / key.replace("/", "__")

    def take(self, grid: int, key: str) -> bool:
        """Whether this process took the stage (False: another one had)."""
        path = self._path(grid, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True

    def taken(self, grid: int, key: str) -> bool:
        return self._path(grid, key).exists()

    def _ok(self, grid: int, key: str) -> Path:
        path = self._path(grid, key)
        return path.with_name(path.name + ".ok")

    def finish(self, grid: int, key: str) -> None:
        self._ok(grid, key).write_text("ok\n")

    def finished(self, grid: int, key: str) -> bool:
        return self._ok(grid, key).exists()

    def alive(self, grid: int, key: str) -> bool:
        """Whether the worker that took the stage still runs (a pid not yet written: yes)."""
        text = self._path(grid, key).read_text().strip()
        if not text:
            return True
        try:
            os.kill(int(text), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@dataclasses.dataclass(frozen=True)
class WorkItem:
    """A stage of one of the grids a worker driver serves."""

    grid: int  # its index in the worker's --grid list
    base: str  # the grid's root
    stage: Stage
    label: str  # "[grid] [i/n] key"


def work_items(
    grids: Sequence[Grid],
    roots: Sequence[str | None],
    arms: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
) -> list[WorkItem]:
    """Every selected stage of every grid, grid after grid, each in its grid's order."""
    items = []
    for g, (grid, root) in enumerate(zip(grids, roots, strict=True)):
        base = _local_root(grid, root)
        todo = select(stages(grid, root), arms, seeds)
        keys = {s.key for s in todo}
        for i, s in enumerate(todo, 1):
            s = dataclasses.replace(s, after=tuple(k for k in s.after if k in keys))
            items.append(WorkItem(g, base, s, f"[{grid.name}] [{i}/{len(todo)}] {s.key}"))
    return items


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def work(items: Sequence[WorkItem], claims: Claims, isolate: bool = False) -> list[str]:
    """A worker driver of ``run --jobs N``: takes the first stage, in ``items``' order, that
    no worker took and whose inputs are finished, runs it as ``run`` would (training and
    decoding in this process, the samples' execution beside the next stages), and again,
    until every stage is taken or blocked by a failed one; returns the labels it ran.

    Why: N such workers share the stages of all grids (and the arms of one), so every core
    stays busy until the last stage; with a driver per grid, one core idled once the shorter
    grid ended. A stage that fails stops this worker (its error and log on stderr); the
    others go on with every stage that does not need its output."""
    bg = Background()
    ran: list[str] = []
    if threading.current_thread() is threading.main_thread():
        # the parent's SIGTERM (it was interrupted) ends this worker through the cleanup
        # below, whose executions would otherwise outlive it (a train stage saves first)
        signal.signal(signal.SIGTERM, _exit_on_signal)
    envs = {it.base: _stage_env(it.base) for it in items}
    for base in envs:
        Path(base).mkdir(parents=True, exist_ok=True)
    try:
        while True:
            bg.poll()
            state: dict[tuple[int, str], str] = {}
            pick = None
            for it in items:
                k = (it.grid, it.stage.key)
                if claims.taken(*k):
                    done = claims.finished(*k) or it.stage.is_done()
                    state[k] = "done" if done else "running" if claims.alive(*k) else "blocked"
                    continue
                deps = [state[(it.grid, d)] for d in it.stage.after]
                if "blocked" in deps:
                    state[k] = "blocked"
                elif any(d != "done" for d in deps):
                    state[k] = "waiting"
                elif claims.take(*k):
                    pick = it
                    break
                else:
                    state[k] = "running"
            if pick is None:
                if "waiting" not in state.values() and not bg.running:
                    break
                time.sleep(0.2)
                continue
            if pick.stage.kind == "report":
                bg.wait(pick.base)
            outcome = _run_stage(pick.label, pick.stage, pick.base, envs[pick.base], bg, isolate)
            if outcome != "background":
                claims.finish(pick.grid, pick.stage.key)
            if outcome != "skipped":
                ran.append(pick.label)
    except BaseException:
        bg.stop()
        raise
    return ran


# The lines of a worker driver (``run --jobs``) that its parent shows: stage progress and
# problems; the rest (progress bars, library logs) stays in the worker's log.
_CONSOLE_LINE = re.compile(
    r"^((\[[^\]\s]+\] )?\[\d+/\d+\] |error|Traceback|\S+Error|WARNING|ERROR)"
)


@dataclasses.dataclass
class Job:
    """A child driver of ``run --jobs``: its name, command and log."""

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen | None = None
    relay: threading.Thread | None = None
    code: int | None = None  # its exit status, once ended
    t0: float = 0.0  # when it started (time.perf_counter)


def _relay(job: Job, lock: threading.Lock) -> None:
    """Copy the child's output to its log; show its progress lines."""
    assert job.proc is not None and job.proc.stdout is not None
    pending = b""
    with open(job.log, "wb") as out:
        for chunk in iter(lambda: job.proc.stdout.read1(1 << 16), b""):
            out.write(chunk)
            out.flush()
            *lines, pending = re.split(rb"[\r\n]", pending + chunk)
            shown = [
                t for t in (x.decode(errors="replace") for x in lines) if _CONSOLE_LINE.match(t)
            ]
            if shown:
                with lock:
                    print("".join(f"{t}\n" for t in shown), end="", flush=True)


def run_jobs(
    jobs: Sequence[Job],
    at_once: int,
    env: dict[str, str],
    tick: Callable[[Callable[[str], None]], None] | None = None,
) -> None:
    """Run the child drivers, ``at_once`` at a time, each job's ``code`` set when done;
    ``tick(say)`` every 0.2 s (``say`` prints a line between the children's lines).

    Interrupted (or failing here), the children are terminated: each saves what it can,
    and a rerun resumes them."""
    lock = threading.Lock()
    waiting, running = list(jobs), []

    def say(line: str) -> None:
        with lock:
            print(line, flush=True)

    try:
        while waiting or running:
            while waiting and len(running) < at_once:
                job = waiting.pop(0)
                job.log.parent.mkdir(parents=True, exist_ok=True)
                job.t0 = time.perf_counter()
                job.proc = subprocess.Popen(
                    job.argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
                )
                job.relay = threading.Thread(target=_relay, args=(job, lock), daemon=True)
                job.relay.start()
                say(f"== {job.name}: started (log: {job.log}) ==")
                running.append(job)
            time.sleep(0.2)
            if tick is not None:
                tick(say)
            for job in [j for j in running if j.proc.poll() is not None]:
                running.remove(job)
                job.relay.join()
                job.code = job.proc.returncode
                state = "finished" if job.code == 0 else f"failed (exit {job.code})"
                say(f"== {job.name}: {state} in {_minutes(time.perf_counter() - job.t0)} ==")
        if tick is not None:
            tick(say)
    except BaseException:
        for job in running:
            job.proc.terminate()
        for job in running:
            try:
                job.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                job.proc.kill()
        raise


def _worker_job(
    args: argparse.Namespace, i: int, claims: Path, log: Path, bindings: Sequence[str]
) -> Job:
    """Worker ``i`` of ``run --jobs``: the parent's grids, root, selection and gin
    ``bindings``, its share of the cores for XLA's threads, and the run's claims."""
    argv = [sys.executable, "-m", "t5x_xfer.experiments", "run", "--grid", *args.grid]
    argv += ["--root", args.root] if args.root else []
    argv += ["--arms", *args.arms] if args.arms else []
    argv += ["--seeds", *map(str, args.seeds)] if args.seeds else []
    argv += ["--isolate"] if args.isolate else []
    argv += ["--verbose"] if args.verbose else []
    # Workers side by side share the cores: XLA's threads too (host.limit_xla_cpu_threads).
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = args.xla_cpu_threads or max(1, (cores or 1) // args.jobs)
    argv += ["--xla_cpu_threads", str(threads), "--worker", str(claims)]
    argv += [f"--gin.{b}" for b in bindings]
    return Job(f"worker {i}", argv, log)


def _run_jobs(
    args: argparse.Namespace,
    grids: Sequence[Grid],
    roots: Sequence[str | None],
    bindings: Sequence[str],
) -> int:
    """``run --jobs N``: N worker drivers share the stages of every grid (:func:`work`);
    then each finished grid's report, in order, or the failed workers' log tails."""
    bases = [_local_root(g, r) for g, r in zip(grids, roots, strict=True)]  # before any child
    try:
        common = os.path.commonpath(bases)  # the workers' logs: in the grids' common root
    except ValueError:  # relative and absolute roots
        common = ""
    logs_dir = Path(common if common not in ("", os.sep) else bases[0])
    claims_dir = Path(tempfile.mkdtemp(prefix="t5x_xfer-run-"))
    claims = Claims(claims_dir)
    jobs = [
        _worker_job(args, i, claims_dir, logs_dir / f"run-worker{i}.log", bindings)
        for i in range(1, args.jobs + 1)
    ]
    reported = set()
    t0 = time.perf_counter()

    def tick(say: Callable[[str], None]) -> None:
        for g, grid in enumerate(grids):
            if g not in reported and claims.finished(g, "report"):
                reported.add(g)
                say(f"== grid {grid.name}: finished in {_minutes(time.perf_counter() - t0)} ==")

    env = {**host.with_huge_pages(os.environ), "PYTHONUNBUFFERED": "1"}
    try:
        run_jobs(jobs, args.jobs, env, tick)
    finally:
        shutil.rmtree(claims_dir, ignore_errors=True)
    failed = [job for job in jobs if job.code != 0]
    for job in failed:
        print(_log_tail(job.log), file=sys.stderr)
        print(f"error: {job.name} failed (exit {job.code}; log {job.log})", file=sys.stderr)
    for g, (grid, base) in enumerate(zip(grids, bases, strict=True)):
        if g not in reported:
            print(
                f"error: grid {grid.name} did not finish; fix and rerun: finished stages are "
                "skipped",
                file=sys.stderr,
            )
        elif not args.arms and not args.seeds:
            print(f"== grid {grid.name}: report ==", flush=True)
            print((Path(base) / "report" / "report.md").read_text(), end="")
    return 2 if failed or len(reported) < len(grids) else 0


def status(grid: Grid, root: str | None = None) -> list[dict[str, Any]]:
    """Per stage: done, started (a partial run to resume) or pending."""
    rows = []
    for stage in stages(grid, root):
        if stage.kind == "report":  # rerun by every run; done once its report exists
            done = _exists(J(_root(grid, root), "report", "report.md"))
            state = "done" if done else "pending"
        elif stage.done is None:
            state = "-"
        elif stage.is_done():
            state = "done"
        elif stage.is_started():
            state = "started"
        else:
            state = "pending"
        rows.append({"stage": stage.key, "status": state})
    return rows


def report(grid: Grid, root: str | None = None) -> dict[str, Any]:
    from t5x_xfer import report as report_lib

    base = Path(_root(grid, root))
    check_output_dir(base / "report", "--root")
    return report_lib.write_report(
        base, base / "report", arms=list(grid.arms), ks=tuple(grid.report_ks)
    )


def power(grid: Grid, args: argparse.Namespace) -> str:
    """``plan --power``: per language, the smallest pass@1 difference between two arms the
    grid detects (t5x_xfer.report.power), with its assumptions."""
    from t5x_xfer.report import power as power_lib

    languages = list(grid.eval_languages)
    rates = power_lib.parse_pass_rates(args.pass_rate or [], languages)
    for d in args.pilot or ():
        if not (Path(d) / "results.jsonl").is_file():
            raise FileNotFoundError(f"--pilot {d}: no results.jsonl (an evaluate_code output?)")
    table = power_lib.power_table(
        languages=languages,
        seeds=len(grid.seeds),
        samples=grid.decode.num_samples,
        problems=args.problems,
        pass_rates=rates if args.pass_rate or not args.pilot else None,
        seed_sd=None if args.seed_sd is None else args.seed_sd / 100,
        pilot=[Path(d) for d in args.pilot or ()],
    )
    return power_lib.format_power(table, grid.name)


def _command(
    args: argparse.Namespace,
    grid: Grid,
    root: str | None,
    background: Background,
    more: bool = False,
) -> Path | None:
    """One of plan, run, status, report for one grid (``more``: another grid follows); a
    deferred report's file, for the caller to print once the background has ended."""
    if args.command == "plan" and args.power:
        print(power(grid, args))
    elif args.command == "plan":
        print("\n".join(plan(grid, root, args.launcher, args.launcher_args)))
    elif args.command == "run":
        run(
            grid,
            root,
            args.arms,
            args.seeds,
            isolate=args.isolate,
            background=background,
            defer_report=more,
        )
        if not args.arms and not args.seeds:
            base = _root(grid, root)
            report_md = Path(base) / "report" / "report.md"
            if background.has(base, "report"):
                return report_md
            print(report_md.read_text(), end="")
    elif args.command == "status":
        rows = status(grid, root)
        width = max(len(r["stage"]) for r in rows)
        for r in rows:
            print(f"{r['stage']:<{width}}  {r['status']}")
    else:
        report(grid, root)
        print((Path(_root(grid, root)) / "report" / "report.md").read_text(), end="")


def _minutes(seconds: float) -> str:
    """
    >>> _minutes(201.4), _minutes(42.0)
    ('3 min 21 s', '42 s')
    """
    m, sec = divmod(round(seconds), 60)
    return f"{m} min {sec} s" if m else f"{sec} s"


def _time_used(t0: float, times0: os.times_result) -> str:
    """Wall and CPU time since ``t0`` / ``times0``, this process and its finished children.
    CPU time is the steadier figure on a shared machine, whose speed varies between runs."""
    now = os.times()
    user = now.user + now.children_user - times0.user - times0.children_user
    system = now.system + now.children_system - times0.system - times0.children_system
    return (
        f"run: {_minutes(time.perf_counter() - t0)} wall, {_minutes(user + system)} CPU "
        f"(user {_minutes(user)}, system {_minutes(system)}; this process and its stages)"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _, bindings, rest = gin_utils.split_flags(argv)
    parser = argparse.ArgumentParser(
        prog="python -m t5x_xfer.experiments",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["plan", "run", "status", "report"])
    parser.add_argument(
        "--grid",
        required=True,
        nargs="+",
        help="gin/experiments/grid_*.gin files, done one after the other (see --jobs)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="run: this many worker drivers, each a process of its own, share the stages of "
        "every grid: any stage whose inputs are finished runs on the next free worker "
        "(their output in <root>/run-worker<i>.log; the console shows their stage lines); "
        "1: one stage after the other, in this process",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # run --jobs: its claims directory
    parser.add_argument(
        "--xla_cpu_threads",
        type=int,
        default=None,
        help="run: worker threads of JAX's CPU backend for the stages run in this process "
        "(default: one per core; with --jobs N, cores / N for each worker)",
    )
    parser.add_argument(
        "--root", help="experiment directory (default: the grid's; with several grids, ROOT/<name>)"
    )
    parser.add_argument("--arms", nargs="+", help="only these arms (run)")
    parser.add_argument("--seeds", nargs="+", type=int, help="only these seeds (run)")
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="run: every stage as its own process (default: training, data and report stages "
        "inside this one)",
    )
    parser.add_argument("--launcher", default="local", choices=LAUNCHERS, help="for plan")
    parser.add_argument(
        "--launcher_args", default="", help='for plan, e.g. "--tpu NAME --zone ZONE"'
    )
    power_flags = parser.add_argument_group("plan --power (t5x_xfer.report.power)")
    power_flags.add_argument(
        "--power",
        action="store_true",
        help="plan: print per language the smallest pass@1 difference the grid detects",
    )
    power_flags.add_argument(
        "--pass_rate", nargs="+", help="assumed pass@1: 0.2 for all, or python=0.35 go=0.1"
    )
    power_flags.add_argument(
        "--seed_sd", type=float, help="assumed sd of a run's pass@1 between seeds, pp"
    )
    power_flags.add_argument("--pilot", nargs="+", help="evaluate_code outputs of one arm")
    power_flags.add_argument("--problems", type=int, default=164, help="per language")
    logs.add_verbose_flag(parser)
    args = parser.parse_args(rest)
    if args.seed_sd is not None and not 0 <= args.seed_sd <= 100:
        parser.error(f"--seed_sd must be in [0, 100] pp, got {args.seed_sd}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.worker and args.command != "run":
        parser.error("--worker is run --jobs's own flag")
    if args.xla_cpu_threads is not None and args.xla_cpu_threads < 1:
        parser.error(f"--xla_cpu_threads must be >= 1, got {args.xla_cpu_threads}")
    if args.problems < 2:
        parser.error(f"--problems must be >= 2, got {args.problems}")
    if args.power and args.command != "plan":
        parser.error(f"--power goes with plan, not {args.command}")
    extra = [f for f in ("pass_rate", "seed_sd", "pilot") if getattr(args, f) is not None]
    if extra and not args.power:
        parser.error(f"--{extra[0]} is a --power flag: use plan --power --{extra[0]} ...")
    logs.setup(args.verbose)
    started = (time.perf_counter(), os.times())
    try:
        grids = [load_grid(path, bindings) for path in args.grid]  # all checked before work
        roots = [
            posixpath.join(args.root.rstrip("/"), g.name)
            if args.root and len(grids) > 1
            else args.root
            for g in grids
        ]
        for grid in grids:
            for name in args.arms or ():
                if name not in grid.arms:
                    raise ValueError(
                        f"--arms {name!r} is not in grid {grid.name}'s arms {list(grid.arms)}"
                    )
        if args.command == "run" and args.jobs > 1 and not args.worker:
            rc = _run_jobs(args, grids, roots, bindings)
            print(_time_used(*started), flush=True)
            return rc
        if args.command == "run" and args.xla_cpu_threads and not args.isolate:
            host.limit_xla_cpu_threads(args.xla_cpu_threads)
        if args.worker:
            items = work_items(grids, roots, args.arms, args.seeds)
            work(items, Claims(Path(args.worker)), args.isolate)
            return 0
        background = Background()
        later = []
        for i, (grid, root) in enumerate(zip(grids, roots, strict=True)):
            if len(grids) > 1:
                print(f"== grid {grid.name} ==", flush=True)
            report_md = _command(args, grid, root, background, more=i + 1 < len(grids))
            if report_md is not None:
                later.append((grid.name, report_md))
        background.wait()
        for name, report_md in later:
            print(f"== grid {name}: report ==", flush=True)
            print(report_md.read_text(), end="")
        if args.command == "run":
            print(_time_used(*started), flush=True)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"error: {gin_utils.error_line(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
