"""The model smoke run (the README's main job until the end-to-end run exists)."""

from __future__ import annotations

import json

import pytest

from t5x_xfer import checkpoints, smoke


def test_smoke_run_learns_exports_and_skips_when_done(tmp_path):
    summary = smoke.run(out=str(tmp_path), steps=120, batch_size=8)
    assert summary["final_loss"] < 0.5 * summary["first_loss"]
    assert summary["export_reimport_max_logit_diff"] <= 1e-5
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert "| final_loss |" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    assert (tmp_path / "hf" / "tokenizer.json").is_file()
    assert checkpoints.resolve(tmp_path / "checkpoint")[1] == 120
    (tmp_path / "summary.md").unlink()
    assert smoke.run(out=str(tmp_path), steps=120, batch_size=8) == summary  # skipped
    assert not (tmp_path / "summary.md").exists()


def test_smoke_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="need steps >= 1.*got 0"):
        smoke.run(out=str(tmp_path), steps=0)
    assert not any(tmp_path.iterdir())
