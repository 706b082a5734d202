"""Session fixtures: the ground-truth run over every canonical solution, executed once."""

from __future__ import annotations

import os

import pytest

from t5x_xfer.codeeval import data as D
from t5x_xfer.codeeval.evaluate import Evaluation, evaluate
from tests.codeeval import fakes


@pytest.fixture(scope="session")
def canonical_eval(tmp_path_factory: pytest.TempPathFactory) -> Evaluation:
    """All canonical programs of every ready language, sandboxed, with parallel workers."""
    data = fakes.require_data()
    fakes.require_sandbox()
    languages = fakes.ready_languages()
    if not languages:
        pytest.skip("no language toolchain is ready (run launch/install_toolchains.sh)")
    problems = D.load_problems(languages, data)
    return evaluate(
        D.canonical_samples(problems),
        problems,
        out_dir=tmp_path_factory.mktemp("canonical"),
        workers=os.cpu_count() or 2,
        progress=False,
    )
