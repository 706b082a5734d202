"""The data position saved with a checkpoint: restored exactly, pruned with the checkpoints,
and a clear error when the run's pipeline is not the one that saved it."""

from __future__ import annotations

import pytest
import tensorflow as tf

from t5x_xfer import data_position


def _batches(model_dir, batch: int = 4, saveable: bool = True) -> data_position.DataIterator:
    ds = tf.data.Dataset.range(1000).shuffle(50, seed=0).repeat().batch(batch).prefetch(2)
    return data_position.DataIterator(ds, lambda b: b.numpy().tolist(), str(model_dir), 0, saveable)


def test_a_restored_position_continues_exactly_and_old_states_are_pruned(tmp_path):
    whole = _batches(tmp_path / "whole")
    expected = [next(whole) for _ in range(12)]
    run = _batches(tmp_path / "run")
    for step in range(1, 8):
        next(run)
        if step % 2 == 0:
            run.save(step, keep=[step - 2])  # the checkpoints kept beside this one
    assert sorted(p.name for p in (tmp_path / "run" / "data_state").iterdir()) == ["4", "6"]
    resumed = _batches(tmp_path / "run")
    assert data_position.start_at(resumed, 6) == "restored"
    assert [next(resumed) for _ in range(6)] == expected[6:]
    replayed = _batches(tmp_path / "other")
    assert data_position.start_at(replayed, 6) == "replayed"
    assert [next(replayed) for _ in range(6)] == expected[6:]


def test_an_unsaveable_pipeline_writes_nothing(tmp_path):
    run = _batches(tmp_path, saveable=False)
    next(run)
    run.save(1, keep=[])
    assert not (tmp_path / "data_state").exists() and not run.has_state(1)


def test_another_pipeline_fails_in_one_line_naming_the_state(tmp_path):
    run = _batches(tmp_path)
    next(run)
    run.save(1, keep=[])
    ds = tf.data.Dataset.range(10).map(lambda x: (x, x)).batch(8)
    other = data_position.DataIterator(ds, lambda b: b, str(tmp_path), 0, saveable=True)
    with pytest.raises(ValueError, match="does not fit this run's input pipeline") as e:
        other.restore(1)
    assert str(tmp_path / "data_state" / "1") in str(e.value)


def test_close_drops_the_pipeline_on_a_thread_of_its_own(tmp_path):
    """TensorFlow waits for the pipeline's threads where the iterator is deleted; close()
    has that happen on another thread, and the caller holds no reference to it."""
    import threading

    deleted_on = []
    done = threading.Event()

    class Iterator:
        def __next__(self):
            return 1

        def __del__(self):
            deleted_on.append(threading.current_thread().name)
            done.set()

    class Source:
        def __iter__(self):
            return Iterator()

    batches = data_position.DataIterator(Source(), lambda b: b, str(tmp_path), 0, False)
    assert next(batches) == 1
    batches.close()
    assert done.wait(10)
    assert deleted_on == ["drop tf.data iterator"]
    batches.close()  # a second close does nothing
