"""CLI: python -m bsgap.train --config=configs/default.py --workdir=DIR [--config.field=value ...]

``--config`` is a config file's path or a repository config's name (``--config=default``), found
from any working directory (bsgap/config_files.py). A budget field (``num_epochs`` /
``num_examples`` / ``num_steps``) or milestone field given with ``--config.`` replaces the config
file's. ``--dry_run`` prints the resolved run (layout, BN group, lr, warmup, steps, evals, the
compiled step's memory per device) and exits without creating or touching the workdir.

With ``--config.trials="({...}, {...})"`` the K trials run as one compiled program and DIR is the
root of their run directories (bsgap/trials.py); ``--trials_loop`` says how the program steps them
(``vmap``; ``map``, a loop, which is faster on the CPU; ``auto``: map on the CPU and for conv
models on a GPU, else vmap; config.json records why).
``--accumulation_loop`` and ``--conv_gradients`` choose how the step computes (speed, not results;
``auto`` is what measured fastest, recorded in config.json's environment).

Exit status 0 for a finished run (diverged included: divergence is a result); 2 with a one-paragraph
message and no traceback for a bad config, a workdir holding another run, or missing data.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from bsgap.choices import ACCUMULATION_LOOPS, CONV_GRADIENTS  # noqa: E402 (no JAX import)
from bsgap.config_files import DEFAULT_CONFIG, available_configs  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", DEFAULT_CONFIG, "Run config: a file, or the name of one of the repository's configs "
    f"({', '.join(available_configs())}). Every field is described in docs/CONFIG.md.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the resolved run (layout, BN group, lr, "
                             "warmup, steps, eval cadence, compiled step's memory per device) and "
                             "exit without creating or changing the workdir.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created; resumed if it exists).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "Multi-host: host:port of process 0 (auto on TPU VM / SLURM).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
_TRIALS_LOOP = flags.DEFINE_enum("trials_loop", "auto", ["auto", "vmap", "map"],
                                 "With config.trials: vmap the trials, or loop over them (map); "
                                 "auto = map on the CPU and for conv models on a GPU, else "
                                 "vmap (bsgap/trials.py).")
_ACCUMULATION_LOOP = flags.DEFINE_enum(
    "accumulation_loop", "auto", list(ACCUMULATION_LOOPS),
    "How the step loops over accumulation microbatches (bsgap/accumulation.py); auto = no loop "
    "for one microbatch; unrolled on the CPU up to 32 (scan when microbatch_size='auto'); scan "
    "elsewhere. Changes speed, not results.")
_CONV_GRADIENTS = flags.DEFINE_enum(
    "conv_gradients", "auto", list(CONV_GRADIENTS),
    "Convolution gradients in canonical form (fast inside loops on XLA:CPU) or as XLA emits them "
    "(bsgap/models/conv_grad.py); auto = canonical on the CPU. Changes speed, not results.")


def main(argv) -> int:
    del argv
    if not _WORKDIR.value:
        print("bsgap.train: error: --workdir is required (the run directory)", file=sys.stderr)
        return 2
    if os.path.exists(_WORKDIR.value) and not os.path.isdir(_WORKDIR.value):
        print(f"bsgap.train: error: --workdir={_WORKDIR.value} is a file, not a directory; give "
              "the run a directory (new or a run's own)", file=sys.stderr)
        return 2
    # Refuse a bad config before the heavy imports (JAX, TensorFlow: seconds): these modules
    # import neither.
    from bsgap.run_config import ConfigError, validate
    from bsgap.trials import expand_trials

    try:
        if _CONFIG.value.get("trials") is not None:
            for trial_config, _ in expand_trials(_CONFIG.value, _WORKDIR.value):
                validate(trial_config)
        else:
            validate(_CONFIG.value)
    except ConfigError as err:
        print(f"bsgap.train: error: {err}", file=sys.stderr)
        return 2
    if not _DRY_RUN.value and not _multihost_launch() and _all_finished():
        return 0
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from bsgap import parallel
    from bsgap.checkpoint import CheckpointError
    from bsgap.data import DataError
    from bsgap.interrupt import Interrupted
    from bsgap.trainer import Trainer
    from bsgap.workdir import WorkdirError

    try:
        parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value,
                                        _PROCESS_ID.value)
        execution = {"accumulation_loop": _ACCUMULATION_LOOP.value,
                     "conv_gradients": _CONV_GRADIENTS.value}
        if _CONFIG.value.get("trials") is not None:
            trainer = Trainer.for_trials(expand_trials(_CONFIG.value, _WORKDIR.value),
                                         trials_loop=_TRIALS_LOOP.value, dry_run=_DRY_RUN.value,
                                         **execution)
        else:
            trainer = Trainer(_CONFIG.value, _WORKDIR.value, dry_run=_DRY_RUN.value,
                              **execution)
        if _DRY_RUN.value:
            from bsgap.dry_run import describe

            print(describe(trainer))
        else:
            trainer.run_all()
    except (ConfigError, DataError, WorkdirError, CheckpointError, ValueError) as err:
        print(f"bsgap.train: error: {err}", file=sys.stderr)
        return 2
    except Interrupted as stop:   # SIGINT / SIGTERM: checkpoint saved (bsgap/interrupt.py)
        print(f"bsgap.train: {stop}", file=sys.stderr)
        return stop.exit_code
    return 0


def _multihost_launch() -> bool:
    """A launch ``bsgap.parallel.initialize_distributed`` makes multi-host: there, every process
    must reach the same decision, which the trainer takes on process 0."""
    from bsgap.launch_kind import launch_kind

    return launch_kind(_COORDINATOR.value, _NUM_PROCESSES.value) is not None


def _all_finished() -> bool:
    """Every run directory already holds this config finished: say so in one line each, before
    the seconds of importing JAX and loading data."""
    from bsgap.trials import expand_trials
    from bsgap.workdir import finished_summary

    specs = (expand_trials(_CONFIG.value, _WORKDIR.value)
             if _CONFIG.value.get("trials") is not None else [(_CONFIG.value, _WORKDIR.value)])
    summaries = [finished_summary(workdir, config) for config, workdir in specs]
    if not specs or any(s is None for s in summaries):
        return False
    for (_, workdir), summary in zip(specs, summaries):
        print(f"bsgap.train: {workdir} already finished (status {summary['status']}, best eval "
              f"accuracy {summary.get('best_eval_accuracy')}); nothing to do", file=sys.stderr)
    return True


def _parse_flags(argv) -> list:
    from bsgap.config_flags_cli import parse_config_flags

    return parse_config_flags(argv, _CONFIG, "bsgap.train")


def run() -> None:
    from bsgap.parent_death import die_with_parent

    die_with_parent()
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
