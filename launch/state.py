"""Where a sweep trial's run directory stands, read only from the directory itself.

* a trial whose directory holds ``summary.json`` with a final status and a ``config.json`` whose
  config equals the trial's expected config is *finished* (``diverged`` counts: a divergence is a
  result);
* a trial with a ``config.json`` but no final summary was *interrupted*: running it again resumes
  from its latest checkpoint (the CLI does that);
* a directory holding a different config is a *conflict* (the sweep file or base config changed);
* otherwise it is *new*.
"""
from __future__ import annotations

import dataclasses
import json
import os

from bsgap.atomic_file import replacing

FINAL_STATUSES = ("complete", "diverged", "target_reached", "early_stopped")


@dataclasses.dataclass(frozen=True)
class TrialState:
    """Where a trial's run directory stands: new | interrupted | finished | conflict."""

    kind: str
    status: str | None = None          # summary status of a finished trial
    checkpoint_step: int | None = None  # latest checkpoint of an interrupted trial
    detail: str = ""                   # the differing fields of a conflict

    def describe(self) -> str:
        if self.kind == "finished":
            return f"finished ({self.status})"
        if self.kind == "interrupted":
            step = "no checkpoint" if self.checkpoint_step is None \
                else f"checkpoint {self.checkpoint_step}"
            return f"interrupted ({step})"
        if self.kind == "conflict":
            return "conflict"
        return "new"


def read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_json_atomic(path: str, data) -> None:
    with replacing(path) as f:   # a unique temporary: hosts and threads share the filesystem
        json.dump(data, f, indent=2)
        f.write("\n")


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(stored: dict, expected: dict) -> list[str]:
    """Fields that differ; a field added to bsgap after the run was written counts as the same
    when the sweep leaves it at what runs without it did (bsgap.workdir.FIELDS_ADDED_LATER)."""
    from bsgap.workdir import absent_means_same

    a, b = _flatten(stored), _flatten(expected)
    return [f"{k}: {a.get(k, '<absent>')!r} in the run vs {b.get(k, '<absent>')!r} in the sweep"
            for k in sorted(set(a) | set(b)) if a.get(k, "<absent>") != b.get(k, "<absent>")
            and not absent_means_same(k, a, b.get(k, "<absent>"))]


def latest_checkpoint_step(workdir: str) -> int | None:
    """The newest complete orbax checkpoint (``checkpoints/<step>``; temporaries have suffixes)."""
    path = os.path.join(workdir, "checkpoints")
    steps = [int(d) for d in os.listdir(path) if d.isdigit()] if os.path.isdir(path) else []
    return max(steps) if steps else None


def trial_state(workdir: str, expected: dict) -> TrialState:
    stored = read_json(os.path.join(workdir, "config.json"))
    if stored is None:
        return TrialState("new")
    differences = config_differences(stored.get("config", {}), expected)
    if differences:
        return TrialState("conflict", detail="; ".join(differences))
    summary = read_json(os.path.join(workdir, "summary.json")) or {}
    if summary.get("status") in FINAL_STATUSES:
        return TrialState("finished", status=summary["status"])
    return TrialState("interrupted", checkpoint_step=latest_checkpoint_step(workdir))
