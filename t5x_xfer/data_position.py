"""The training data's position, saved with each checkpoint so that a resumed run continues
the input pipeline where it stopped instead of replaying it (T5X saves the tf.data iterator
with each checkpoint the same way).

``MODEL_DIR/data_state/<step>/process_<i>`` holds process i's tf.data iterator checkpoint
(shuffle buffers, mixture sampling and packing state included) at step ``step``. It is written
before the model checkpoint of that step, so a committed model checkpoint always has its data
state; states of steps no longer kept are deleted. Only pipelines of TensorFlow ops can be saved:
a task tokenized on the fly calls Python (``tf.numpy_function``), so those runs are resumed by
replaying the pipeline instead (cache the tasks: ``TASK_CACHE_DIR``).
"""

from __future__ import annotations

import logging
import posixpath
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

log = logging.getLogger("t5x_xfer.train")

DIRNAME = "data_state"


def _step_dir(model_dir: str, step: int) -> str:
    return posixpath.join(model_dir.rstrip("/"), DIRNAME, str(step))


def _prefix(model_dir: str, step: int, process_index: int) -> str:
    return posixpath.join(_step_dir(model_dir, step), f"process_{process_index}")


class DataIterator:
    """Batches from a tf.data pipeline (each mapped by ``convert``), whose position can be
    saved at a step and restored. ``saveable``: the pipeline is TensorFlow ops only."""

    def __init__(
        self,
        ds: Any,  # tf.data.Dataset (TensorFlow is imported by the binaries after logs.setup)
        convert: Callable[[Any], Any],
        model_dir: str,
        process_index: int,
        saveable: bool,
    ) -> None:
        self._it = iter(ds)
        self._convert = convert
        self.model_dir = model_dir
        self.process_index = process_index
        self.saveable = saveable

    def __iter__(self) -> Iterator[Any]:
        return self

    def close(self) -> None:
        """Drop the pipeline on a thread of its own. Its tf.data threads may be inside an
        element when training ends, and TensorFlow waits for them where the iterator is
        deleted: seconds (up to 10 s measured after a tiny model's 200 steps) that the next
        stage of an in-process driver need not wait for. The interpreter joins the thread
        before it exits."""
        if self._it is None:
            return
        box, self._it = [self._it], None  # the thread's clear() drops the last reference
        threading.Thread(target=box.clear, name="drop tf.data iterator").start()

    def __next__(self) -> Any:
        return self._convert(next(self._it))

    def _checkpoint(self) -> Any:
        import tensorflow as tf

        return tf.train.Checkpoint(iterator=self._it)

    def has_state(self, step: int) -> bool:
        import tensorflow as tf

        return self.saveable and tf.io.gfile.exists(
            _prefix(self.model_dir, step, self.process_index) + ".index"
        )

    def restore(self, step: int) -> None:
        """Continue from the position saved at ``step`` (``has_state(step)`` must hold)."""
        import tensorflow as tf

        prefix = _prefix(self.model_dir, step, self.process_index)
        try:
            self._checkpoint().read(prefix).assert_consumed()
        except (tf.errors.OpError, AssertionError, ValueError) as e:
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            raise ValueError(
                f"the data position saved at step {step} ({prefix}) does not fit this run's "
                "input pipeline (another mixture, batch size, feature lengths or seed?): "
                f"{first}. Resume with the run's own settings, or delete "
                f"{_step_dir(self.model_dir, step)} to replay the pipeline instead"
            ) from None

    def skip(self, batches: int) -> None:
        """Move forward by drawing and dropping ``batches`` batches (no saved state)."""
        for _ in range(batches):
            next(self._it)

    def save(self, step: int, keep: Iterable[int]) -> None:
        """Write the position at ``step``; delete the states of steps not in ``keep``."""
        if not self.saveable:
            return
        import tensorflow as tf

        self._checkpoint().write(_prefix(self.model_dir, step, self.process_index))
        if self.process_index != 0:
            return
        root = posixpath.join(self.model_dir.rstrip("/"), DIRNAME)
        keep = {str(s) for s in keep} | {str(step)}
        for name in tf.io.gfile.listdir(root):
            name = name.rstrip("/")
            if name.isdigit() and name not in keep:
                tf.io.gfile.rmtree(posixpath.join(root, name))


def start_at(batches: DataIterator, start: int) -> str:
    """Position ``batches`` at step ``start`` (restore when saved, else replay); says how."""
    if not start:
        return "start"
    if batches.has_state(start):
        batches.restore(start)
        return "restored"
    log.info("replaying the data pipeline past %d batches (no saved data position)", start)
    batches.skip(start)
    return "replayed"
