"""The grid driver's plan: every arm x seed x stage, hand-overs through directories, launchers."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from t5x_xfer import experiments

FULL = "gin/experiments/grid_codet5p_220m.gin"


@pytest.fixture(scope="module")
def grid() -> experiments.Grid:
    return experiments.load_grid(FULL)


def test_full_grid_enumerates_arms_seeds_and_stages(grid):
    stages = experiments.stages(grid, "R")
    keys = [s.key for s in stages]
    assert len(grid.arms) == 13 and list(grid.seeds) == [0, 1, 2]
    # pretrained + per seed: baseline (target, eval, export) + 12 arms x 4 + the report
    assert len(stages) == 1 + 3 * (3 + 12 * 4) + 1
    assert keys[0] == "pretrained" and keys[-1] == "report"
    assert "baseline/seed0/intermediate" not in keys
    assert keys.index("mnli/seed1/intermediate") < keys.index("mnli/seed1/target")


def test_stages_hand_over_through_directories(grid):
    by_key = {s.key: s for s in experiments.stages(grid, "R")}
    inter = shlex.join(by_key["cnn_dailymail/seed2/intermediate"].argv)
    assert "--gin_file=gin/experiments/cnn_dailymail.gin" in inter
    assert '--gin.MODEL_DIR="R/cnn_dailymail/seed2/intermediate"' in inter
    assert '--gin.INIT_CHECKPOINT="R/pretrained"' in inter and "--gin.SEED=2" in inter
    target = shlex.join(by_key["cnn_dailymail/seed2/target"].argv)
    assert '--gin.INIT_CHECKPOINT="R/cnn_dailymail/seed2/intermediate"' in target
    base = shlex.join(by_key["baseline/seed0/target"].argv)
    assert '--gin.INIT_CHECKPOINT="R/pretrained"' in base
    ev = by_key["nlu9/seed0/eval"].argv
    assert ev[:4] == ("-m", "t5x_xfer.evaluate_code", "--checkpoint", "R/nlu9/seed0/target")
    decode = " ".join(by_key["nlu9/seed1/eval"].argv)
    assert "--method sample --num_samples 20 --temperature 0.8" in decode
    assert "--max_length 512" in decode and "--seed 1" in decode
    assert by_key["pretrained"].argv[-4:] == (
        "--hf",
        "Salesforce/codet5p-220m",
        "--out",
        "R/pretrained",
    )


def test_arm_files_set_their_mixture():
    from t5x_xfer import tasks

    assert experiments.arm_mixture("baseline") is None
    for arm in [*tasks.INTERMEDIATE, "nlu9", "all10"]:
        assert experiments.arm_mixture(arm) == f"xfer_mix_{arm}"
    with pytest.raises(ValueError, match="known arms: .*cnn_dailymail"):
        experiments.arm_mixture("nope")


def test_plan_for_tpu_wraps_train_stages(grid):
    lines = experiments.plan(grid, "gs://b/x", "tpu", "--tpu t --zone z")
    text = "\n".join(lines)
    assert "bash launch/tpu_pod.sh --tpu t --zone z -- --gin_file=gin/runs/target.gin" in text
    assert '"gs://b/x/mnli/seed0/intermediate"' in text
    assert "python -m t5x_xfer.evaluate_code --checkpoint gs://b/x/mnli/seed0/target" in text
    with pytest.raises(ValueError, match="allowed"):
        experiments.plan(grid, "R", "k8s")


def test_cli_rejects_bad_input(capsys, tmp_path):
    assert experiments.main(["plan", "--grid", "gin/experiments/nope.gin"]) == 2
    assert "nope.gin" in capsys.readouterr().err
    rc = experiments.main(["run", "--grid", FULL, "--arms", "xyz", "--root", str(tmp_path)])
    assert rc == 2 and "xyz" in capsys.readouterr().err
    assert experiments.main(["plan", "--grid", FULL, "--gin.Grid.seeds=[-1]"]) == 2
    assert "seeds" in capsys.readouterr().err


def test_decode_settings_and_their_old_spelling(caplog):
    """The grid's decoding is one DecodeSettings (--gin.DecodeSettings.X); the old Grid
    fields still work, with a message naming the new spelling."""
    import logging

    grid = experiments.load_grid(FULL, ["DecodeSettings.num_samples=4"])
    assert grid.decode.num_samples == 4 and grid.decode.method == "sample"
    with caplog.at_level(logging.WARNING):
        old = experiments.load_grid(FULL, ["Grid.num_samples=5", "Grid.temperature=0.0"])
    assert old.decode.num_samples == 5 and old.decode.method == "greedy"
    assert "DecodeSettings.num_samples/temperature" in caplog.text
    assert old.num_samples is None  # one place holds the value: grid.decode
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        experiments.load_grid(FULL, ["DecodeSettings.num_samples=0"])


def test_the_decoder_only_grid_plans_like_the_t5_grid():
    grid = experiments.load_grid("gin/experiments/grid_qwen2_5_coder_0_5b.gin")
    by_key = {s.key: s for s in experiments.stages(grid, "R")}
    assert len(by_key) == 1 + 3 * (3 + 12 * 4) + 1
    inter = shlex.join(by_key["cnn_dailymail/seed1/intermediate"].argv)
    assert "--gin_file=gin/models/qwen2_5_coder_0_5b.gin" in inter
    assert "'--gin.OPTIMIZER=\"adamw\"'" in inter and "--gin.NUM_MICROBATCHES=8" in inter
    assert by_key["pretrained"].argv[-3:] == ("Qwen/Qwen2.5-Coder-0.5B", "--out", "R/pretrained")
    assert grid.decode.num_samples == 20 and grid.decode.max_length == 512


def test_several_grids_each_get_their_own_root(capsys):
    grids = ["gin/experiments/grid_debug_cpu.gin", "gin/experiments/grid_debug_cpu_decoder.gin"]
    assert experiments.main(["plan", "--grid", *grids, "--root", "R"]) == 0
    out = capsys.readouterr().out
    assert "== grid debug_cpu ==" in out and "== grid debug_cpu_decoder ==" in out
    assert '"R/debug_cpu/baseline/seed0/target"' in out
    assert '"R/debug_cpu_decoder/baseline/seed0/target"' in out
    assert "--gin_file=gin/models/tiny_decoder.gin" in out


def test_in_process_stages_report_their_exit_status(capsys):
    """``run`` calls these binaries' main in its own process: their exit codes (argparse's 2
    included) come back as a subprocess's would."""
    for module, entry in experiments.IN_PROCESS.items():
        assert callable(importlib.import_module(entry).main), module
    assert experiments._in_process(["-m", "t5x_xfer.report", "--bogus"]) == 2
    assert "required: --root, --out" in capsys.readouterr().err


def test_each_grid_run_in_process_gets_its_own_compilation_cache(tmp_path, monkeypatch):
    """JAX opens its cache directory once; the driver reopens it for the next grid's root."""
    import jax

    for key in experiments._compilation_cache_env("x"):
        monkeypatch.delenv(key, raising=False)
    before = jax.config.jax_compilation_cache_dir
    try:
        for grid in ("a", "b"):
            experiments._use_compilation_cache(str(tmp_path / grid))
            jax.jit(lambda x, g=grid: x * len(g) + 1)(jax.numpy.ones(3)).block_until_ready()
            assert jax.config.jax_compilation_cache_dir == str(tmp_path / grid / ".jax_cache")
            assert any((tmp_path / grid / ".jax_cache").iterdir())
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
        from jax.experimental.compilation_cache import compilation_cache

        compilation_cache.reset_cache()


def test_status_shows_the_report_once_written(grid, tmp_path):
    def report_status() -> str:
        rows = experiments.status(grid, str(tmp_path))
        return next(r["status"] for r in rows if r["stage"] == "report")

    assert report_status() == "pending"
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.md").write_text("# report\n")
    assert report_status() == "done"


def test_a_failed_background_execution_stops_the_driver_naming_its_log(tmp_path, capsys):
    """An eval stage's execution runs beside the next stages; when it fails, the next check
    raises with the stage, its exit status and its log, and prints the log's tail."""
    background = experiments.Background()
    missing = tmp_path / "none.jsonl"
    argv = ["--samples", str(missing), "--out", str(tmp_path / "eval")]
    background.start(
        "[4/11] a/seed0/eval",
        "a/seed0/eval",
        str(tmp_path),
        argv,
        dict(os.environ),
        time.perf_counter(),
    )
    assert "executing the samples in the background" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match=r"stage a/seed0/eval failed \(exit 2; log .*execute"):
        background.wait()
    assert f"--samples {missing}: no such file" in capsys.readouterr().err
    assert not background.running


def test_a_deferred_report_starts_once_its_grids_executions_end(tmp_path, capsys):
    """With another grid to run, a grid's report waits in the background for the grid's
    executions instead of holding up the driver; the report fails if it starts too early."""
    background = experiments.Background()
    background.current = "gridB"  # the driver has gone on to the next grid
    env, done = dict(os.environ), tmp_path / "executed"
    execute = f"import pathlib, time; time.sleep(1); pathlib.Path({str(done)!r}).touch()"
    background._launch(
        "[10/11] a/seed0/eval",
        "a/seed0/eval",
        "gridA",
        [sys.executable, "-c", execute],
        env,
        tmp_path / "execute.log",
        time.perf_counter(),
    )
    report = f"import pathlib, sys; sys.exit(0 if pathlib.Path({str(done)!r}).exists() else 3)"
    cmd = [sys.executable, "-c", report]
    background.defer("[11/11] report", "report", "gridA", cmd, env, tmp_path / "report.log")
    assert background.has("gridA", "report") and not background.has("gridB", "report")
    background.wait("gridB")  # another grid's wait does not wait for this one
    assert background.has("gridA", "report")
    background.wait()
    out = capsys.readouterr().out
    assert "[11/11] report: deferred until the grid's executions end" in out
    finished = out.index("[10/11] a/seed0/eval (grid gridA): finished")
    assert finished < out.index("[11/11] report (grid gridA): started")
    assert "[11/11] report (grid gridA): finished" in out
    assert not background.running and not background.deferred

    fail = [sys.executable, "-c", "raise SystemExit(4)"]
    background.defer("[11/11] report", "report", "gridA", fail, env, tmp_path / "r.log")
    with pytest.raises(RuntimeError, match=r"stage report failed \(exit 4; log .*r\.log"):
        background.wait()


def _stage(
    tmp_path, key: str, kind: str, after: tuple[str, ...], script: str = ""
) -> experiments.Stage:
    """A bash stage that logs its start and end to ``tmp_path/log`` and, unless a prepare
    stage (the driver marks those) or the report, writes its completion file itself."""
    done = None if kind == "report" else str(tmp_path / "out" / f"{key}.done")
    log = tmp_path / "log"
    steps = [f"echo start {key} >> {log}", script, "sleep 0.3"]
    if kind not in ("prepare", "report"):
        steps.append(f"mkdir -p {Path(done).parent} && touch {done}")
    cmd = "; ".join([*filter(None, steps), f"echo end {key} >> {log}"])
    return experiments.Stage(key, kind, ("bash", "-c", cmd), done, after=after)


def _items(tmp_path, stages) -> list[experiments.WorkItem]:
    return [
        experiments.WorkItem(0, str(tmp_path), s, f"[g] [{i}/9] {s.key}")
        for i, s in enumerate(stages, 1)
    ]


def _dag(tmp_path) -> list[experiments.Stage]:
    return [
        _stage(tmp_path, "prepare/0", "prepare", ()),
        _stage(tmp_path, "a/target", "target", ("prepare/0",)),
        _stage(tmp_path, "b/intermediate", "intermediate", ("prepare/0",)),
        _stage(tmp_path, "b/target", "target", ("b/intermediate",)),
        _stage(tmp_path, "report", "report", ("a/target", "b/target")),
    ]


def test_workers_share_a_grids_stages_each_once_after_its_inputs(tmp_path, capsys):
    """``run --jobs``: workers take the next stage whose inputs are finished; every stage
    runs once, none before the stages it reads, and independent chains run side by side."""
    import threading

    claims = experiments.Claims(tmp_path / "claims")
    items = _items(tmp_path, _dag(tmp_path))
    ran: list[list[str]] = [[], []]
    workers = [
        threading.Thread(target=lambda i=i: ran[i].extend(experiments.work(items, claims)))
        for i in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    events = (tmp_path / "log").read_text().split("\n")[:-1]
    assert sorted(ran[0] + ran[1]) == sorted(it.label for it in items)
    assert sorted(e for e in events if e.startswith("start")) == sorted(
        f"start {it.stage.key}" for it in items
    )
    for it in items:
        for dep in it.stage.after:
            assert events.index(f"end {dep}") < events.index(f"start {it.stage.key}")
    # a/target and b/intermediate overlap: both start before either ends
    first_end = min(events.index("end a/target"), events.index("end b/intermediate"))
    assert max(events.index("start a/target"), events.index("start b/intermediate")) < first_end
    assert "[g] [5/9] report: finished in" in capsys.readouterr().out
    assert all(claims.finished(0, it.stage.key) for it in items)

    # a rerun: finished stages are skipped, the report (no completion file) runs again
    ran2 = experiments.work(items, experiments.Claims(tmp_path / "claims2"))
    assert ran2 == ["[g] [5/9] report"]
    assert "[g] [1/9] prepare/0: done, skipped" in capsys.readouterr().out


def test_a_failed_stage_stops_its_worker_and_blocks_only_what_reads_it(tmp_path, capsys):
    """The stage fails: its worker raises naming it; a stage whose worker died unfinished
    blocks the stages after it, while every other stage still runs and the worker ends."""
    stages = _dag(tmp_path)
    stages[2] = _stage(tmp_path, "b/intermediate", "intermediate", ("prepare/0",), "exit 3")
    items = _items(tmp_path, stages)
    claims = experiments.Claims(tmp_path / "claims")
    with pytest.raises(RuntimeError, match=r"stage b/intermediate failed \(exit 3\)"):
        experiments.work([items[0], items[2]], claims)
    assert not claims.finished(0, "b/intermediate")
    # the claim of a worker that died unfinished (its pid no longer runs)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / "claims" / "0" / "b__intermediate").write_text(str(gone.pid))
    ran = experiments.work(items, claims)
    assert ran == ["[g] [2/9] a/target"]  # b/target and the report are blocked
    events = (tmp_path / "log").read_text()
    assert "start b/target" not in events and "start report" not in events


def test_worker_lines_reach_the_console():
    assert experiments._CONSOLE_LINE.match("[debug_cpu] [3/11] baseline/seed0/target: python")
    assert experiments._CONSOLE_LINE.match("[3/11] baseline/seed0/target: finished in 3 s")
    assert not experiments._CONSOLE_LINE.match("[debug_cpu] train:  10%|#")


def _child(name: str, tmp_path, script: str) -> experiments.Job:
    return experiments.Job(name, [sys.executable, "-c", script], tmp_path / name / "run.log")


def test_jobs_run_side_by_side_showing_only_their_stage_lines(tmp_path, capsys):
    """``run --jobs``: each worker is a child whose whole output (progress bars included)
    goes to its log, while the console shows its stage lines; a failed child's exit status
    is kept, and the other still finishes."""
    stage = (
        "import sys, time; print('[g] [1/2] prepare/0: python -m x', flush=True); "
        "sys.stdout.write('train:  10%|#\\rtrain: 100%|##\\n'); sys.stdout.flush(); "
        "time.sleep(0.5); print('2026 INFO library line'); print('[g] [1/2] prepare/0: finished')"
    )
    jobs = [_child("a", tmp_path, stage), _child("b", tmp_path, "raise SystemExit(3)")]
    ticks = []
    experiments.run_jobs(jobs, at_once=2, env=dict(os.environ), tick=ticks.append)
    out = capsys.readouterr().out
    assert [job.code for job in jobs] == [0, 3] and ticks
    assert "[g] [1/2] prepare/0: python -m x" in out and "[g] [1/2] prepare/0: finished" in out
    assert "train:" not in out and "library line" not in out
    assert re.search(r"== b: failed \(exit 3\) in \d+ s ==", out)
    # both started before either ended: side by side
    assert out.index("== b: started") < out.index("== a: finished")
    log = (tmp_path / "a" / "run.log").read_text()
    assert "train: 100%" in log and "library line" in log


def test_jobs_beyond_the_limit_wait_for_a_free_slot(tmp_path, capsys):
    jobs = [_child(n, tmp_path, "import time; time.sleep(0.3)") for n in ("a", "b")]
    experiments.run_jobs(jobs, at_once=1, env=dict(os.environ))
    out = capsys.readouterr().out
    assert out.index("== a: finished") < out.index("== b: started")


def test_a_worker_gets_the_drivers_settings(capsys):
    """A worker gets the parent's grids, root, arms, seeds and gin bindings, the run's
    claims, and its share of the cores for XLA's threads unless the user chose a number;
    --jobs and --xla_cpu_threads below 1 are refused before any work."""
    grids = ["gin/experiments/grid_debug_cpu.gin", "gin/experiments/grid_debug_cpu_decoder.gin"]
    parent = ["run", "--grid", *grids, "--root", "R", "--arms", "mnli", "--seeds", "0"]
    args = argparse.Namespace(
        grid=grids,
        root="R",
        arms=["mnli"],
        seeds=[0],
        isolate=False,
        verbose=True,
        jobs=2,
        xla_cpu_threads=None,
    )
    bindings = ["DecodeSettings.num_samples=4"]
    job = experiments._worker_job(args, 1, Path("C"), Path("R/run-worker1.log"), bindings)
    assert job.argv[1:] == [
        "-m",
        "t5x_xfer.experiments",
        "run",
        "--grid",
        *grids,
        "--root",
        "R",
        "--arms",
        "mnli",
        "--seeds",
        "0",
        "--verbose",
        "--xla_cpu_threads",
        str(max(1, len(os.sched_getaffinity(0)) // 2)),
        "--worker",
        "C",
        "--gin.DecodeSettings.num_samples=4",
    ]
    args.xla_cpu_threads = 3
    job = experiments._worker_job(args, 2, Path("C"), Path("R/w.log"), bindings)
    assert job.argv[job.argv.index("--xla_cpu_threads") + 1] == "3" and job.name == "worker 2"
    with pytest.raises(SystemExit):
        experiments.main([*parent, "--jobs", "0"])
    assert "--jobs must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        experiments.main([*parent, "--xla_cpu_threads", "0"])
    assert "--xla_cpu_threads must be >= 1, got 0" in capsys.readouterr().err
    remote = ["run", "--grid", *grids, "--root", "gs://bucket/r", "--jobs", "2"]
    assert experiments.main(remote) == 2  # refused before any child starts
    assert "root gs://bucket/r/debug_cpu is remote" in capsys.readouterr().err


def test_work_items_label_their_grid_and_read_only_selected_stages(tmp_path, capsys):
    """A worker's stages: every grid's, each labelled with its grid and its place in it; with
    --arms, the report reads only the chosen arm's evaluation."""
    grids = [
        experiments.load_grid(f"gin/experiments/grid_debug_cpu{s}.gin") for s in ("", "_decoder")
    ]
    roots = [str(tmp_path / g.name) for g in grids]
    items = experiments.work_items(grids, roots, arms=["mnli"])
    by_label = {it.label: it for it in items}
    assert list(by_label)[:2] == ["[debug_cpu] [1/6] prepare/0", "[debug_cpu] [2/6] pretrained"]
    report = by_label["[debug_cpu_decoder] [6/6] report"]
    assert report.grid == 1 and report.base == roots[1]
    assert report.stage.after == ("mnli/seed0/eval",)
    assert by_label["[debug_cpu] [3/6] mnli/seed0/intermediate"].stage.after == ("pretrained",)
    with pytest.raises(SystemExit):
        experiments.main(["plan", "--grid", "gin/experiments/grid_debug_cpu.gin", "--worker", "C"])
    assert "--worker is run --jobs's own flag" in capsys.readouterr().err
