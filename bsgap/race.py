"""K trials of one program racing to a common target accuracy (the advisor's pilot lr search).

At the first evaluation where a trial has reached the target, the trials still running have not
reached it in as many steps, so none of them can be the fastest: they are stopped there
(``early_stopped``, with a ``stop_reason`` naming the winner) and the program ends, instead of
training every trial to its own crossing. Trials that cross at the same evaluation all keep
``target_reached``. ``Trainer.for_trials(specs, race_to_target=True)``.
"""
from __future__ import annotations

import os

from bsgap.run_config import ConfigError


def check_race(specs) -> None:
    """A race needs every trial to stop at one target, evaluated at the same steps."""
    if not specs:
        return   # the Trainer refuses an empty program itself
    keys = {(c.get("target_accuracy"), bool(c.get("stop_at_target")), c.get("eval_every_steps"))
            for c, _ in specs}
    target, stops, _ = next(iter(keys))
    if len(keys) != 1 or target is None or not stops:
        raise ConfigError(
            "race_to_target needs every trial to have the same target_accuracy (not None), "
            f"stop_at_target=True and the same eval_every_steps; got (target_accuracy, "
            f"stop_at_target, eval_every_steps) = {sorted(keys, key=str)}")


def stop_outpaced(trials, step: int) -> None:
    """The race (``Trainer.for_trials(race_to_target=True)``): once any trial has reached the
    target (now, or before a resume), stop the ones still running at ``step``: they have not
    reached it in as many steps, so none can be the fastest."""
    won = [t for t in trials if t.host.steps_to_target is not None]
    if not won:
        return
    first = min(t.host.steps_to_target for t in won)
    if step < first:   # resumed from a checkpoint before a finished winner's crossing: run on to
        return         # it, so that they stop where an uninterrupted race stopped them
    names = ", ".join(os.path.basename(os.path.normpath(t.workdir)) for t in won
                      if t.host.steps_to_target == first)
    for t in trials:
        if t.running:
            t.host.status = "early_stopped"
            t.host.stop_reason = (f"outpaced: {names} reached the target accuracy at step "
                                  f"{first}; this trial had not by step {step}")
