"""Crash safety: a run SIGKILLed halfway resumes without re-executing finished programs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from t5x_xfer import evaluate_code as cli
from t5x_xfer.codeeval import data as D
from tests.codeeval import fakes

SLOW_ONCE = (
    "    if not globals().get('_slept'):\n"
    "        globals()['_slept'] = True\n"
    "        import time\n"
    "        time.sleep(0.5)\n"
)


def test_resume_after_sigkill(tmp_path: Path) -> None:
    data = fakes.require_data()
    fakes.require_sandbox()
    fakes.require_languages("python")
    problems = D.load_problems(["python"], data)["python"]
    records = [
        {
            "task_id": f"Python/{i}",
            "generation": SLOW_ONCE + problems[f"Python/{i}"]["canonical_solution"],
        }
        for i in range(40)
    ]
    samples = fakes.write_samples(tmp_path / "samples.jsonl", records)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "t5x_xfer.evaluate_code", "--samples", str(samples)]
    argv += ["--out", str(out), "--data_dir", str(data), "--workers", "2", "--no_progress"]
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(list(out.glob("cache/*/*.json"))) < 8:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no results appeared"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.stem for p in out.glob("cache/*/*.json")}
    assert 8 <= len(finished) < 40
    assert not (out / "summary.json").exists()

    resumed = cli.evaluate_code(samples=samples, out=out, data_dir=data, workers=2, progress=False)
    assert finished.isdisjoint(resumed.executed)
    assert resumed.summary["programs"] == {
        "unique": 40,
        "from_cache": len(finished),
        "executed": 40 - len(finished),
    }
    assert all(row["passed"] for row in resumed.rows)

    again = cli.evaluate_code(samples=samples, out=out, data_dir=data, workers=2, progress=False)
    assert again.executed == []
    strip = lambda s: {k: v for k, v in s.items() if k != "programs"}
    assert strip(again.summary) == strip(resumed.summary)
    assert [r["status"] for r in again.rows] == [r["status"] for r in resumed.rows]
