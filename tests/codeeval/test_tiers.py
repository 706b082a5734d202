"""Every sandbox tier this machine offers runs programs and leaves no process behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from t5x_xfer.codeeval import data as D
from t5x_xfer.codeeval import sandbox as sb
from t5x_xfer.codeeval.evaluate import evaluate
from tests.codeeval import fakes

MARK = "4343.5"
SLEEPER = (
    "    import subprocess\n"
    f"    subprocess.Popen(['sleep', '{MARK}'], start_new_session=True)\n"
    "    return None\n"
)


@pytest.mark.parametrize("tier", sb.TIERS)
def test_tier(tier: str, tmp_path: Path) -> None:
    data = fakes.require_data()
    fakes.require_languages("python")
    try:
        sb.probe(tier)
    except sb.SandboxRefused as e:
        pytest.skip(str(e))
    problems = D.load_problems(["python"], data)
    samples = [
        D.Sample("Python/1", problems["python"]["Python/1"]["canonical_solution"], "python"),
        D.Sample("Python/0", SLEEPER, "python"),
        D.Sample("Python/2", "    while True:\n        pass\n", "python"),
    ]
    result = evaluate(
        samples,
        problems,
        out_dir=tmp_path,
        workers=1,
        progress=False,
        sandbox_tier=tier,
        unsafe=tier == "none",
        timeout_scale=0.2,
    )
    assert [r["status"] for r in result.rows] == ["passed", "failed", "timeout"]
    assert result.summary["sandbox"]["tier"] == tier
    assert tier in (tmp_path / "report.md").read_text()
    assert not [p for p in fakes.processes() if MARK in p[2]]
