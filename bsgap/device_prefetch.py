"""Global batches made ahead, in a background thread, so the step never waits on the host.

Each training step needs this process's rows of the global batch (a tf.data ``next()`` or a numpy
gather) assembled into device arrays (``jax.make_array_from_process_local_data``). Done in the
loop, that host work runs between dispatches, on the same thread as the dispatch and the logging.
``DevicePrefetcher`` does it for the next ``depth`` steps in a thread of its own, as big_vision's
device prefetch does: the batches are functions of the step, so the numbers do not change. At most
``depth`` batches made and not yet taken exist at any time (the memory budget counts
``bsgap.memory.QUEUED_INPUT_BATCHES`` of them, the default depth).
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable


class DevicePrefetcher:
    """``get(step)`` for steps ``start, start + 1, ... < end`` in order; ``make(step)`` runs in a
    background thread at most ``depth`` steps ahead of the consumer. An exception in ``make`` is
    raised by the ``get`` of that step. ``close()`` (or the context manager) stops the thread."""

    def __init__(self, make: Callable[[int], Any], start: int, end: int, depth: int = 2):
        if depth < 1:
            raise ValueError(f"depth={depth} must be >= 1")
        self._next, self._end = start, end
        self._slots = threading.Semaphore(depth)     # made and not yet taken
        self._ready: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(make, start, end),
                                        name="bsgap-device-prefetch", daemon=True)
        self._thread.start()

    def _produce(self, make, start: int, end: int) -> None:
        for step in range(start, end):
            while not self._slots.acquire(timeout=0.1):
                if self._stop.is_set():
                    return
            if self._stop.is_set():
                return
            try:
                item = (step, make(step), None)
            except BaseException as err:   # handed to the consumer, which raises it
                self._ready.put((step, None, err))
                return
            self._ready.put(item)

    def get(self, step: int):
        if step != self._next or step >= self._end:
            raise ValueError(f"step {step} asked for; the prefetcher serves step {self._next} "
                             f"next (of steps before {self._end}), in order")
        made, item, err = self._ready.get()
        self._slots.release()
        self._next += 1
        if err is not None:
            raise err
        assert made == step, (made, step)
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)   # a make() under way finishes first

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
