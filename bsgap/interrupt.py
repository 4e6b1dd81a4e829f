"""Stop a run cleanly on SIGINT / SIGTERM (Ctrl-C, SLURM or TPU preemption, the sweep runner).

Inside ``stop_on_signals()``, the first SIGINT or SIGTERM only sets ``requested`` (the signal
number); the training loop checks it after every step, saves a checkpoint at that step, writes
its logs and raises ``Interrupted``, which ``bsgap.train`` turns into one line and exit status
128 + signal (130 for SIGINT, 143 for SIGTERM). The same signal a second time aborts at once
(exit 128 + signal, no checkpoint); a different one meanwhile (e.g. the sweep runner's SIGTERM
after the terminal's Ctrl-C reached both) is ignored, so the checkpoint is not cut short.
Outside the main thread signals cannot be caught and nothing is installed. Each process handles
its own signals: on a multi-host run every process must receive it (SLURM and TPU preemption
signal every task).
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """The run stopped at ``step`` on ``signum`` after saving a checkpoint there."""

    def __init__(self, signum: int, step: int):
        self.signum, self.step = signum, step
        super().__init__(f"interrupted at step {step} by {signal.Signals(signum).name}; "
                         "checkpoint saved; rerun the same command to resume")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    requested: int | None = None


@contextlib.contextmanager
def stop_on_signals():
    """Yields an object whose ``requested`` is the first signal received, else None."""
    state = _State()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, frame):
        if state.requested is None:
            state.requested = signum
            print(f"\n[bsgap] {signal.Signals(signum).name}: stopping after this step and "
                  "saving a checkpoint (the same signal again aborts at once)", file=sys.stderr,
                  flush=True)
        elif signum == state.requested:
            os._exit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield state
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
