"""A sweep trial dies with its runner: ``BSGAP_PARENT_PID`` (set by launch/runner.py) asks for it.

At start-up ``bsgap.train`` calls ``die_with_parent()``: on Linux, when the variable names this
process's parent, ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` makes the kernel send SIGTERM when that
parent dies, even by SIGKILL, so no orphan trial keeps running beside a rerun of the sweep (the
run-directory lock would refuse the rerun's trial anyway). SIGTERM stops the trial with a
checkpoint (bsgap/interrupt.py). Done in the child itself rather than in a ``preexec_fn``, which
would fork a multithreaded (JAX) runner unsafely. Elsewhere, or without the variable: nothing.
"""
from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    parent = os.environ.get("BSGAP_PARENT_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    if str(os.getppid()) != parent:
        if os.getppid() == 1:   # the runner is already gone
            os.kill(os.getpid(), signal.SIGTERM)
        return   # started by something else that inherited the variable
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if str(os.getppid()) != parent:   # it died between the check and prctl
        os.kill(os.getpid(), signal.SIGTERM)
