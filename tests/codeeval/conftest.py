"""Session fixtures: the ground-truth runs over canonical solutions, each executed once."""

from __future__ import annotations

import os

import pytest

from t5x_xfer.codeeval import data as D
from t5x_xfer.codeeval.evaluate import Evaluation, evaluate
from tests.codeeval import fakes

EVERY = 8  # the default run checks every 8th problem (21 per language) plus the known defects


def _canonical(tmp_path_factory: pytest.TempPathFactory, every: int) -> Evaluation:
    data = fakes.require_data()
    fakes.require_sandbox()
    languages = fakes.ready_languages()
    if not languages:
        pytest.skip("no language toolchain is ready (run launch/install_toolchains.sh)")
    problems = D.load_problems(languages, data)
    samples = [
        s
        for s in D.canonical_samples(problems)
        if int(s.task_id.split("/")[1]) % every == 0 or s.task_id in D.KNOWN_DEFECTS
    ]
    return evaluate(
        samples,
        problems,
        out_dir=tmp_path_factory.mktemp(f"canonical_every{every}"),
        workers=os.cpu_count() or 2,
        progress=False,
    )


@pytest.fixture(scope="session")
def canonical_sample_eval(tmp_path_factory: pytest.TempPathFactory) -> Evaluation:
    """Every 8th canonical program of every ready language and the known defects, sandboxed."""
    return _canonical(tmp_path_factory, EVERY)


@pytest.fixture(scope="session")
def canonical_eval(tmp_path_factory: pytest.TempPathFactory) -> Evaluation:
    """All 164 canonical programs of every ready language (``pytest -m slow``)."""
    return _canonical(tmp_path_factory, 1)
