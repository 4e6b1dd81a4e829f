"""Load a finished or running run directory for analysis: config, model, variables at a step, data.

Reads only the run directory (config.json + checkpoints/), so analysis/ CLIs never need the
original command line.
"""
from __future__ import annotations

import dataclasses
import os

import ml_collections

from bsgap import logbook
from bsgap.bucket_paths import is_url
from bsgap.checkpoint import Checkpointer, restore_numpy
from bsgap.data import Dataset, load_dataset_from_config
from bsgap.models import create_model


class RunNotFoundError(FileNotFoundError):
    """No run (or no checkpoint at the requested step) in a directory."""


@dataclasses.dataclass
class LoadedRun:
    workdir: str
    config: ml_collections.ConfigDict
    resolved: dict
    step: int
    model: object
    params: dict
    batch_stats: dict
    data: Dataset | None

    def variables(self) -> dict:
        return {"params": self.params, "batch_stats": self.batch_stats}


def model_from_config(config, resolved: dict):
    group = resolved["layout"]["bn_group"] if config.normalization == "ghost" else None
    return create_model(config.model, num_classes=resolved["num_classes"],
                        normalization=config.normalization, ghost_batch_size=group,
                        dropout_rate=config.dropout_rate, dtype=config.dtype,
                        **dict(config.model_kwargs))


def load_run(workdir: str, step: int | None = None, *, with_data: bool = True,
             data_dir: str | None = None) -> LoadedRun:
    """The run's model and its parameters at ``step`` (default: the latest checkpoint)."""
    if is_url(workdir):
        raise RunNotFoundError(f"{workdir}: run directories are read from a local or mounted "
                               "path (mount the bucket with gcsfuse and pass that path)")
    path = os.path.join(workdir, logbook.CONFIG_FILE)
    if not os.path.exists(path):
        raise RunNotFoundError(f"{workdir} is not a bsgap run directory (no {logbook.CONFIG_FILE})")
    stored = logbook.read_json(path)
    config = ml_collections.ConfigDict(stored["config"])
    checkpointer = Checkpointer(workdir)
    steps = checkpointer.all_steps()
    if not steps:
        checkpointer.close()
        raise RunNotFoundError(f"run {workdir} has no checkpoint in {checkpointer.directory}")
    if step is None:
        step = max(steps)
    elif step not in steps:
        checkpointer.close()
        raise RunNotFoundError(f"run {workdir} has no checkpoint at step {step}; it has {steps}")
    checkpointer.close()
    state = restore_numpy(workdir, step)
    data = None
    if with_data:
        if data_dir:
            config.data_dir = data_dir
        data = load_dataset_from_config(config)
    return LoadedRun(workdir=workdir, config=config, resolved=stored["resolved"], step=step,
                     model=model_from_config(config, stored["resolved"]),
                     params=state["params"], batch_stats=state.get("batch_stats", {}) or {},
                     data=data)
