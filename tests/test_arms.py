"""The arm catalogue: one source for the names, consistent with the tasks that train each arm."""

from __future__ import annotations

from t5x_xfer import arms


def test_orderings_are_consistent() -> None:
    assert len(set(arms.ARM_ORDER)) == len(arms.ARM_ORDER)
    assert set(arms.EXPECTED_ARMS) < set(arms.ARM_ORDER)
    assert set(arms.NLU_ARMS) < set(arms.EXPECTED_ARMS)
    assert arms.ARM_ORDER[0] == arms.BASELINE and len(arms.NLU9) == 9
    assert arms.SST2 not in arms.EXPECTED_ARMS  # an extra, not part of the grid


def test_tasks_take_nlu9_from_the_catalogue() -> None:
    from t5x_xfer import tasks

    assert tasks.NLU9 is arms.NLU9
    # every single-task arm of the catalogue is an intermediate task (and vice versa)
    assert set(tasks.INTERMEDIATE) == {*arms.NLU9, arms.SST2, arms.CNN}
