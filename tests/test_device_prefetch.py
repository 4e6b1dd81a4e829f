"""The background device prefetch (bsgap/device_prefetch.py): batches in step order, never more
than ``depth`` made ahead of the consumer, errors raised at their step, and a clean stop."""
import threading
import time

import pytest

from bsgap.device_prefetch import DevicePrefetcher


def test_order_look_ahead_errors_and_close():
    made, lock = [], threading.Lock()

    def make(step):
        with lock:
            made.append(step)
        return {"step": step, "value": step * step}

    with DevicePrefetcher(make, 3, 10, depth=2) as prefetch:
        for step in range(3, 10):
            time.sleep(0.02)                  # the thread runs ahead while we "compute"
            assert len(made) <= (step - 3) + 2, made   # taken so far + depth
            assert prefetch.get(step) == {"step": step, "value": step * step}
        with pytest.raises(ValueError, match="serves step 10 next"):
            prefetch.get(10)
    assert made == list(range(3, 10))

    def failing(step):
        if step == 2:
            raise OSError("disk gone")
        return step

    with DevicePrefetcher(failing, 0, 5, depth=3) as prefetch:
        assert [prefetch.get(0), prefetch.get(1)] == [0, 1]
        with pytest.raises(OSError, match="disk gone"):
            prefetch.get(2)
    # Closed while the thread waits for a free slot (nothing taken): it stops at once.
    prefetch = DevicePrefetcher(lambda s: s, 0, 1000, depth=2)
    time.sleep(0.05)
    prefetch.close()
    assert not prefetch._thread.is_alive()
