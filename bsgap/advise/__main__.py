"""CLI: which batch size (and learning rate) reaches the target soonest on this machine.

    python -m bsgap.advise --config=configs/X.py --workdir=DIR [--config.field=value ...]
        [--batch_sizes=16,32,...,2048] [--target_accuracy=0.9] [--pilot_batch_size=128]
        [--sweep=SWEEP_ROOT_OR_RUNS_CSV] [--budget_seconds=S] [estimator options, --help]

Measures, resumably (rerun the same command after an interruption or a kill: finished
measurements are reused, see bsgap/advise/run.py for the files): examples/s per batch size, a
pilot run at --pilot_batch_size to the target (its lr tuned over --pilot_lr_factors first), the
exact noise scale at its checkpoints, branched training from them, and (with --sweep) a measured
sweep's fit; writes DIR/advice.json and DIR/advice.png and prints the summary. Exit 0 with
advice, 2 with one paragraph for a bad input (before anything is compiled) or a workdir holding
something else, 3 when --budget_seconds ran out (rerun to continue).
"""
from __future__ import annotations

import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from bsgap.config_files import DEFAULT_CONFIG  # noqa: E402

PROG = "bsgap.advise"
_CONFIG = config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Run config (file or name).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Advisor directory (created; resumed).")
_BATCH_SIZES = flags.DEFINE_string("batch_sizes", "16,32,64,128,256,512,1024,2048",
                                   "Comma-separated batch sizes to advise between.")
_TARGET = flags.DEFINE_float("target_accuracy", None, "Target eval accuracy (fraction; default: "
                             "the config's target_accuracy).")
_PILOT_B = flags.DEFINE_integer("pilot_batch_size", None, "Pilot batch size (default: the "
                                "config's batch_size).")
_SWEEP = flags.DEFINE_string("sweep", None, "A steps-to-target sweep of this config (root or "
                             "runs.csv): estimate (c) and the measured steps to compare with.")
_BUDGET = flags.DEFINE_float("budget_seconds", None, "Stop (exit 3, resumable) when this many "
                             "seconds have passed before the next measurement.")
_FRACTIONS = flags.DEFINE_string("branch_fractions", "0.25,0.5", "Branch from the pilot's "
                                 "checkpoints at these fractions of its steps to the target.")
_MAX_FACTOR = flags.DEFINE_integer("branch_max_factor", 16, "Largest branch batch / pilot batch.")
_BRANCH_STEPS = flags.DEFINE_integer("branch_steps", 8, "Steps of the largest branch in the "
                                     "equal-examples budget.")
_EX_FACTOR = flags.DEFINE_float("branch_examples_factor", 4.0, "Larger branches run this many "
                                "times the budget's examples to reach the base branch's loss.")
_TOL = flags.DEFINE_float("branch_tolerance", 0.01, "Merrill et al.'s relative loss tolerance.")
_LR_RULE = flags.DEFINE_enum("branch_lr_rule", "auto", ["auto", "linear", "sqrt", "none"],
                             "Branch lr = the pilot's x k (linear), x sqrt(k), or x 1; auto: "
                             "linear for SGD-type optimizers, sqrt for Adam (Merrill et al.).")
_NOISE_EX = flags.DEFINE_integer("noise_examples", 4096, "Examples for the exact noise scale.")
_TP_EX = flags.DEFINE_integer("throughput_examples", 20_000, "Examples timed per batch size "
                              "(each of the two ways).")
_LR_FACTORS = flags.DEFINE_string(
    "pilot_lr_factors", "0.5,1,2", "Tune the pilot's learning rate first: the config's lr x each "
    "factor, as the trials of one program; the one reaching the target in the fewest steps is "
    "the pilot. '1': no search (the config's lr).")
_LR_EXTEND = flags.DEFINE_integer(
    "pilot_lr_extend", 2, "While the fastest lr is at the edge of the searched grid, try up to "
    "this many more factors beyond it, one at a time.")
_CKPT = flags.DEFINE_integer("pilot_checkpoint_every_steps", None, "Pilot checkpoint interval "
                             "(default: its eval interval).")


def _ints(name: str, text: str) -> tuple:
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"--{name}={text!r}: expected comma-separated positive integers") from None
    if not values or min(values) <= 0 or len(set(values)) != len(values):
        raise ValueError(f"--{name}={text!r}: expected distinct positive integers")
    return tuple(sorted(values))


def options_from_flags(config):
    """The Options, checked (ValueError naming the flag, its value and what is allowed)."""
    from bsgap.advise.run import Options

    sizes = _ints("batch_sizes", _BATCH_SIZES.value)
    target = _TARGET.value if _TARGET.value is not None else config.get("target_accuracy")
    if target is None or not 0 < target <= 1:
        raise ValueError(f"--target_accuracy={target!r}: a fraction in (0, 1] is required "
                         "(or the config's target_accuracy)")
    pilot = _PILOT_B.value or config.batch_size
    if pilot <= 0:
        raise ValueError(f"--pilot_batch_size={pilot}: must be a positive integer")
    try:
        fractions = tuple(float(x) for x in _FRACTIONS.value.split(","))
    except ValueError:
        fractions = ()
    if not fractions or not all(0 < f < 1 for f in fractions):
        raise ValueError(f"--branch_fractions={_FRACTIONS.value!r}: comma-separated fractions "
                         "in (0, 1) of the pilot's steps to the target")
    for name, value, low in (("branch_max_factor", _MAX_FACTOR.value, 2),
                             ("branch_steps", _BRANCH_STEPS.value, 1),
                             ("noise_examples", _NOISE_EX.value, 2),
                             ("throughput_examples", _TP_EX.value, 1),
                             ("pilot_lr_extend", _LR_EXTEND.value, 0)):
        if value < low:
            raise ValueError(f"--{name}={value}: must be an integer >= {low}")
    if _EX_FACTOR.value < 1 or _TOL.value <= 0:
        raise ValueError(f"--branch_examples_factor={_EX_FACTOR.value} must be >= 1 and "
                         f"--branch_tolerance={_TOL.value} > 0")
    try:
        lr_factors = tuple(float(x) for x in _LR_FACTORS.value.split(","))
    except ValueError:
        lr_factors = ()
    if (not lr_factors or not all(math.isfinite(f) and f > 0 for f in lr_factors)
            or len(set(lr_factors)) != len(lr_factors)):
        raise ValueError(f"--pilot_lr_factors={_LR_FACTORS.value!r}: comma-separated distinct "
                         "positive factors of the config's learning rate ('1': no search)")
    if _SWEEP.value and not os.path.exists(_SWEEP.value):
        raise ValueError(f"--sweep={_SWEEP.value}: no such sweep directory or runs.csv")
    return Options(batch_sizes=sizes, target_accuracy=float(target), pilot_batch_size=pilot,
                   branch_fractions=fractions, branch_max_factor=_MAX_FACTOR.value,
                   branch_steps=_BRANCH_STEPS.value, branch_examples_factor=_EX_FACTOR.value,
                   branch_tolerance=_TOL.value, branch_lr_rule=_LR_RULE.value,
                   noise_examples=_NOISE_EX.value,
                   throughput_examples=_TP_EX.value,
                   pilot_checkpoint_every_steps=_CKPT.value, pilot_lr_factors=lr_factors,
                   pilot_lr_extend=_LR_EXTEND.value,
                   sweep=_SWEEP.value,
                   budget_seconds=_BUDGET.value)


def check_layouts(config, options) -> None:
    """Every batch size (and the pilot's) makes a valid layout on these devices, before compile."""
    import jax

    from bsgap.layout import resolve_layout
    from bsgap.run_config import validate

    validate(config)
    devices = config.num_devices or jax.device_count()
    for b in sorted(set(options.batch_sizes) | {options.pilot_batch_size}):
        try:
            resolve_layout(batch_size=b, num_devices=devices,
                           microbatch_size=config.get("microbatch_size"),
                           ghost_batch_size=config.get("ghost_batch_size"),
                           normalization=config.normalization,
                           num_processes=jax.process_count())
        except ValueError as err:
            raise ValueError(f"batch size {b} (of --batch_sizes / --pilot_batch_size): {err}") \
                from None


def main(argv) -> int:
    del argv
    if not _WORKDIR.value:
        print(f"{PROG}: error: --workdir is required (the advisor's directory)", file=sys.stderr)
        return 2
    from bsgap.run_config import ConfigError

    config = _CONFIG.value
    try:
        options = options_from_flags(config)
        check_layouts(config, options)
    except (ValueError, ConfigError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    from bsgap.advise.advice import summary_lines
    from bsgap.advise.records import AdviseError
    from bsgap.advise.run import BudgetSpent, advise, check_workdir
    from bsgap.data import DataError
    from bsgap.workdir import WorkdirError

    try:
        check_workdir(_WORKDIR.value, config, options)
        result = advise(config, _WORKDIR.value, options)
    except (AdviseError, ConfigError, DataError, WorkdirError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except BudgetSpent as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 3
    print("\n".join(summary_lines(result)))
    print(os.path.join(_WORKDIR.value, "advice.json"))
    return 0


def _parse_flags(argv) -> list:
    from bsgap.config_flags_cli import parse_config_flags

    return parse_config_flags(argv, _CONFIG, PROG)


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=_parse_flags)
