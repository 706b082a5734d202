"""Shared fixtures: one fake data directory and one registration per test session (TF start-up
and dataset construction are the slow parts)."""

from __future__ import annotations

from pathlib import Path

import pytest
import seqio

from t5x_xfer import tasks
from t5x_xfer.testing import task_sources as testing


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return testing.fake_data_dir(tmp_path_factory.mktemp("task_data"), n=6)


@pytest.fixture(scope="session")
def registered(data_dir: Path) -> seqio.Vocabulary:
    """Tasks registered with seqio's byte vocabulary (TF-native, so pipelines stay fast)."""
    vocabulary = seqio.ByteVocabulary()
    tasks.register_all(vocabulary, data_dir)
    return vocabulary


@pytest.fixture(scope="session")
def tfds_mock():
    with testing.mock_tfds(n=6):
        yield
