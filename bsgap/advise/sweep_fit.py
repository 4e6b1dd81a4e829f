"""Estimate (c): a measured steps-to-target sweep's critical batch size, and what it cost.

Read with analysis.steps_to_target's own computation (the fewest steps to the target per batch
size over the sweep's trials, and McCandlish et al.'s fit, bsgap.critical_batch), from a sweep
directory or its runs.csv. The cost is the sum of the sweep's runs' ``train_seconds`` (the
trainer's training-step clock: no start-up, compilation or evaluation) and, from the run
directories' summaries where they are there, of their ``compile_seconds``; trials that shared one
program (``trials_in_program`` = K, each reporting the program's seconds) count 1/K each.
"""
from __future__ import annotations

import math
import os

from bsgap.advise.records import AdviseError


def sweep_estimate(root: str, target_accuracy: float) -> dict:
    import pandas as pd

    from analysis import steps_to_target
    from analysis.figures.sweep import FigureError, load_sweep, read_json

    try:
        sweep = load_sweep(root)
        numbers = steps_to_target.compute(sweep, [target_accuracy])
    except FigureError as err:
        raise AdviseError(f"--sweep={root}: {err}") from None
    if not math.isclose(numbers["target_accuracy"], target_accuracy):
        raise AdviseError(f"--sweep={root} has no run that reached --target_accuracy="
                          f"{target_accuracy}")
    table = numbers["table"]
    measured = {int(r.batch_size): (float(r.steps_to_target) if pd.notna(r.steps_to_target)
                                    else None) for r in table.itertuples()}
    runs = sweep.runs
    # trials sharing one program (--group_trials) each report the program's seconds
    shared = pd.to_numeric(runs.get("trials_in_program", 1), errors="coerce").fillna(1)
    train = pd.to_numeric(runs.get("train_seconds"), errors="coerce") / shared
    fit = numbers["critical_batch"]
    compile_seconds = []
    for run, k in zip(runs["run"], shared):
        directory = sweep.run_dir(run)
        summary = read_json(os.path.join(directory, "summary.json")) if directory else None
        if summary and summary.get("compile_seconds") is not None:
            compile_seconds.append(float(summary["compile_seconds"]) / k)
    return {"root": root, "b_crit": fit.get("b_crit"), "fit": fit,
            "measured_steps_to_target": measured,
            "learning_rate": {int(r.batch_size): r.learning_rate for r in table.itertuples()},
            "num_runs": int(len(runs)), "train_seconds_sum": float(train.sum()),
            "compile_seconds_sum": sum(compile_seconds) if compile_seconds else None,
            "runs_with_compile_seconds": len(compile_seconds),
            "cost_note": "sum of the sweep runs' train_seconds (training steps only; no "
                         "start-up, compilation or evaluation), / K for K trials in one program"}
