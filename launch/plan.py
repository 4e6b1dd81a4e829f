"""``ROOT/sweep.json``: the sweep's plan (every trial's index, name, axes, overrides, command),
and the check that a cluster task's trial index still names the trial that was planned."""
from __future__ import annotations

import json
import os

from launch.spec import Sweep, Trial, command_string, trial_command
from launch.state import read_json, write_json_atomic

SWEEP_FILE = "sweep.json"


def plan(sweep: Sweep, trials: list[Trial], root: str) -> dict:
    """``ROOT/sweep.json``: the sweep file, base config, fixed fields and every trial."""
    return {
        "sweep": sweep.path, "config": sweep.config,
        "overrides": {k: v for k, v in sweep.overrides.items()},
        "axes": [list(axis) for axis in sweep.axes], "num_trials": len(trials),
        "trials": [{**t.to_json(), "workdir": t.name,
                    "command": command_string(trial_command(sweep, t, root, python="python"))}
                   for t in trials],
    }


def worker_index(environ=None) -> int:
    """This host's index in a multi-host sweep: BSGAP_WORKER_ID (launch/tpu_vm.sh sets it from
    the TPU VM's metadata), else TPU_WORKER_ID, else SLURM_PROCID, else 0."""
    environ = os.environ if environ is None else environ
    for var in ("BSGAP_WORKER_ID", "TPU_WORKER_ID", "SLURM_PROCID"):
        if environ.get(var, "").isdigit():
            return int(environ[var])
    return 0


def write_plan(sweep: Sweep, trials: list[Trial], root: str, *, multihost: bool = False) -> dict:
    """The plan, written to ``ROOT/sweep.json`` when it changed -- by worker 0 alone in a
    multi-host sweep (every worker runs the same command; the others only compute it)."""
    data = json.loads(json.dumps(plan(sweep, trials, root)))
    if multihost and worker_index() != 0:
        return data
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, SWEEP_FILE)
    if read_json(path) != data:
        write_json_atomic(path, data)
    return data


def check_against_plan(root: str, trial: Trial) -> str | None:
    """A message when ``ROOT/sweep.json`` names a different trial at this index (the sweep file
    changed since the plan was written, e.g. between ``sbatch`` and the array task)."""
    stored = read_json(os.path.join(root, SWEEP_FILE))
    if stored is None:
        return None
    entries = {t["index"]: t for t in stored.get("trials", [])}
    entry = entries.get(trial.index)
    mine = json.loads(json.dumps(trial.to_json()))
    if entry is None or entry["name"] != mine["name"] or entry["overrides"] != mine["overrides"]:
        theirs = entry["name"] if entry else "no trial"
        return (f"{os.path.join(root, SWEEP_FILE)} has {theirs} at index {trial.index} but the "
                f"sweep file expands to {trial.name}: the sweep changed since it was planned. "
                "Plan it again (rerun the submitting command: it rewrites sweep.json) and "
                "resubmit")
    return None
