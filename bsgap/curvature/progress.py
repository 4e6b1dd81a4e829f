"""Progress reports from inside the curvature library, for CLIs that draw progress bars.

The facade functions run long host loops (one full-dataset pass per HVP, gradient or loss
evaluation) that the caller cannot see into. Instead of a `progress=` argument on every function,
`DatasetObjective` (and the per-example pass of `gradient_noise`) call `report(kind, count)` after
each evaluation, and a caller that wants to know wraps its call in

    with progress.on_evaluation(lambda kind, count: ...):
        curvature.top_eigenvalues(...)

Kinds: 'hvp' (count = full-dataset Hessian-vector products), 'grad' (full-dataset gradients),
'loss' (full-dataset losses), 'examples' (examples whose per-example gradients were taken).
Callbacks are held in a process-wide stack; with none registered `report` costs one list check.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Callback = Callable[[str, int], None]
KINDS = ("hvp", "grad", "loss", "examples")
_callbacks: list[Callback] = []


@contextlib.contextmanager
def on_evaluation(callback: Callback) -> Iterator[None]:
    """Call `callback(kind, count)` after every evaluation the library makes inside the block."""
    _callbacks.append(callback)
    try:
        yield
    finally:
        _callbacks.remove(callback)


def report(kind: str, count: int = 1) -> None:
    """Tell every registered callback that `count` evaluations of `kind` just finished."""
    for callback in tuple(_callbacks):
        callback(kind, count)
