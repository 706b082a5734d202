"""Every binary, given a bad input, prints one line naming it and what to do, exits with 2
and writes nothing (issue 15's table): run as a user would, as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from t5x_xfer import vocabularies
from t5x_xfer.testing import task_sources

REPO = Path(__file__).resolve().parents[1]
# A directory nobody may create entries in, root included (sysfs refuses mkdir and creat).
UNWRITABLE = "/sys/t5x_xfer_test/run"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_inputs")
    data = task_sources.fake_data_dir(root / "data", n=8)
    texts = (data / "mbpp" / "mbpp.jsonl").read_text().splitlines() * 3
    tok = vocabularies.train_byte_level_bpe(texts, root / "tokenizer.json", vocab_size=300)
    a_file = root / "a_file"
    a_file.write_text("not a directory\n")
    prompts = root / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": 0, "prompt": "x"}) + "\n")
    return {"data": data, "tok": tok, "file": a_file, "prompts": prompts, "root": root}


def _train(f: dict[str, Path], *extra: str, tokenizer: bool = True) -> list[str]:
    argv = ["t5x_xfer.train", "--gin_file=runs/debug_cpu.gin", "--gin_file=models/tiny.gin"]
    argv += [f'--gin.DATA_DIR="{f["data"]}"', '--gin.MIXTURE_OR_TASK_NAME="xfer_mix_target_mbpp"']
    if tokenizer:
        argv.append(f'--gin.TOKENIZER="{f["tok"]}"')
    return [*argv, "--gin.TRAIN_STEPS=1", "--no_progress", *extra]


def _cases(f: dict[str, Path], out: Path) -> list[tuple[str, list[str], str]]:
    """(name, ``python -m`` arguments, what the one line must say); ``out`` is a fresh path."""
    run = f'--gin.MODEL_DIR="{out}"'
    grid = "--grid=gin/experiments/grid_debug_cpu.gin"
    return [
        ("train MODEL_DIR a file", _train(f, f'--gin.MODEL_DIR="{f["file"]}"'), "existing file"),
        ("train MODEL_DIR unwritable", _train(f, f'--gin.MODEL_DIR="{UNWRITABLE}"'), "writable"),
        (
            "train TOKENIZER missing file",
            _train(f, run, f'--gin.TOKENIZER="{out}/tokenizer.json"', tokenizer=False),
            f"no tokenizer at {out}/tokenizer.json",
        ),
        ("train TOKENIZER not given", _train(f, run, tokenizer=False), "macro TOKENIZER"),
        ("train unquoted string", _train(f, f"--gin.MODEL_DIR={out}"), f"""='"{out}"'"""),
        ("train misspelled macro", _train(f, run, "--gin.TRAIN_STEP=3"), "mean TRAIN_STEPS?"),
        (
            "infer output a directory",
            [
                "t5x_xfer.infer",
                "--hf_dir",
                str(out),
                "--input",
                str(f["prompts"]),
                "--output",
                str(f["root"]),
            ],
            "is a directory",
        ),  # fmt: skip
        (
            "infer misspelled macro",
            ["t5x_xfer.infer", "--gin.TEMPRATURE=0.2", "--input", str(f["prompts"])],
            "no loaded gin file uses a macro TEMPRATURE",
        ),
        (
            "evaluate_code out a file",
            ["t5x_xfer.evaluate_code", "--samples", str(f["prompts"]), "--out", str(f["file"])],
            "existing file",
        ),
        (
            "convert out unwritable",
            ["t5x_xfer.convert", "export_hf", "--checkpoint", str(out), "--out", UNWRITABLE],
            "writable",
        ),
        (
            "experiments root a file",
            ["t5x_xfer.experiments", "run", grid, "--root", str(f["file"])],
            "existing file",
        ),  # fmt: skip
        (
            "experiments misspelled macro",
            ["t5x_xfer.experiments", "plan", grid, "--gin.SEEDS=[1]"],
            "no loaded gin file uses a macro SEEDS",
        ),
        (
            "report out a file",
            ["t5x_xfer.report", "--root", str(f["root"]), "--out", str(f["file"])],
            "existing file",
        ),
        (
            "smoke_data out a file",
            ["t5x_xfer.testing.smoke_data", "--out", str(f["file"])],
            "existing file",
        ),  # fmt: skip
        (
            "tasks.inspect TOKENIZER not given",
            [
                "t5x_xfer.tasks.inspect",
                "--task",
                "xfer_mbpp",
                "--gin_file=models/tiny.gin",
                "--data_dir",
                str(f["data"]),
            ],
            "macro TOKENIZER",
        ),  # fmt: skip
        (
            "tasks.inspect unquoted string",
            [
                "t5x_xfer.tasks.inspect",
                "--task",
                "xfer_mbpp",
                "--gin_file=models/tiny.gin",
                f"--gin.TOKENIZER={f['tok']}",
                "--data_dir",
                str(f["data"]),
            ],
            "quotes",
        ),  # fmt: skip
    ]


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_bad_inputs_fail_in_one_line_with_exit_2_and_write_nothing(files, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "T5X_XFER_VERBOSE"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    cases = _cases(files, tmp_path / "out")
    before = _listing(files["root"])

    def run(case: tuple[str, list[str], str]) -> str | None:
        name, argv, expected = case
        proc = subprocess.run(
            [sys.executable, "-m", *argv],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        if proc.returncode != 2 or len(lines) != 1 or not lines[0].startswith("error: "):
            return f"{name}: exit {proc.returncode}, stderr:\n{proc.stderr[-1500:]}"
        if expected not in lines[0]:
            return f"{name}: {expected!r} not in {lines[0]!r}"
        print(f"{name}: {lines[0]}")
        return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        problems = [p for p in pool.map(run, cases) if p]
    assert not problems, "\n\n".join(problems)
    assert not (tmp_path / "out").exists()  # nothing written
    assert _listing(files["root"]) == before
