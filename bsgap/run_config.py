"""Validate a run config and resolve everything derived from it (written to config.json).

``validate`` checks every field that can be checked without data or devices; ``resolve`` adds the
batch layout, scaled learning rate, budget in steps, warmup and milestones. Both raise
``ConfigError`` naming the bad value and what is allowed, before anything is compiled.
"""
from __future__ import annotations

import dataclasses
import math

from bsgap import scaling
from bsgap.layout import BatchLayout, bn_group_follows_layout, resolve_layout
from bsgap.choices import (DTYPE_NAMES, IMAGE_TRANSFERS, MATMUL_PRECISIONS, MODEL_NAMES,
                           NORM_KINDS, OPTIMIZERS)


class ConfigError(ValueError):
    """A config field with a value that is not allowed."""


# Fields of which a run sets one: the budget, and the step schedule's milestones (in epochs or as
# fractions of the budget). One given on the command line (or by a sweep, whose overrides are
# command-line flags) replaces the config file's; two given there are an error (``validate``).
EXCLUSIVE_FIELDS = (("num_epochs", "num_examples", "num_steps"),
                    ("schedule_milestones", "schedule_milestone_fractions"))


def _is_set(value) -> bool:
    return value is not None and not (isinstance(value, (tuple, list)) and not value)


def give_command_line_precedence(config, overridden) -> list[str]:
    """Unset the config file's member of each exclusive group whose other member ``overridden``
    (the fields given on the command line) sets, so that ``--config.num_steps=200`` works with a
    config file that sets ``num_epochs``. Edits ``config`` in place; returns one line per field
    it unset (for the launch output)."""
    notes = []
    for group in EXCLUSIVE_FIELDS:
        given = [f for f in group if f in overridden and _is_set(config[f])]
        if len(given) != 1:
            continue   # none given, or two on the command line: validate() refuses the latter
        for other in group:
            if other not in overridden and _is_set(config[other]):
                notes.append(f"{given[0]}={config[given[0]]!r} from the command line replaces "
                             f"the config file's {other}={config[other]!r}")
                config[other] = None if group[0] == "num_epochs" else ()
    # A normalization without ghost groups given on the command line drops the file's group size
    # (the default's ghost_batch_size=16 would otherwise make --config.normalization=batch fail).
    if ("normalization" in overridden and config.normalization != "ghost"
            and "ghost_batch_size" not in overridden and config.ghost_batch_size is not None):
        notes.append(f"normalization={config.normalization!r} from the command line drops the "
                     f"config file's ghost_batch_size={config.ghost_batch_size!r}")
        config.ghost_batch_size = None
    return notes


def _check_choice(config, field: str, choices) -> None:
    if config[field] not in choices:
        raise ConfigError(f"{field}={config[field]!r} is not one of {tuple(choices)}")


def _check_number(config, field: str, *, low=None, high=None, integer=False, optional=False,
                  low_inclusive=True):
    value = config[field]
    if value is None and optional:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{field}={value!r} must be {'an integer' if integer else 'a number'}"
                          + (" or None" if optional else ""))
    if not math.isfinite(value):
        raise ConfigError(f"{field}={value!r} must be a finite number")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        raise ConfigError(f"{field}={value} must be {'>=' if low_inclusive else '>'} {low}")
    if high is not None and value > high:
        raise ConfigError(f"{field}={value} must be <= {high}")


def validate(config) -> None:
    """Field-by-field checks that need neither data nor devices."""
    _check_choice(config, "model", MODEL_NAMES)
    _check_choice(config, "normalization", NORM_KINDS)
    _check_choice(config, "dtype", DTYPE_NAMES)
    _check_choice(config, "optimizer", OPTIMIZERS)
    if config.get("matmul_precision") is not None:
        _check_choice(config, "matmul_precision", MATMUL_PRECISIONS + (None,))
    cache_dir = config.get("compilation_cache_dir")
    if cache_dir is not None and not (isinstance(cache_dir, str) and cache_dir):
        raise ConfigError(f"compilation_cache_dir={cache_dir!r} must be a directory path (a "
                          "non-empty string) or None")
    _check_choice(config, "lr_scaling", scaling.LR_SCALINGS)
    _check_choice(config, "schedule", scaling.SCHEDULES)
    _check_number(config, "batch_size", low=1, integer=True)
    _check_number(config, "num_devices", low=0, integer=True)
    _check_number(config, "eval_batch_size", low=1, integer=True)
    _check_number(config, "learning_rate", low=0, low_inclusive=False)
    _check_number(config, "reference_batch_size", low=1, integer=True)
    _check_number(config, "momentum", low=0, high=1)
    _check_number(config, "weight_decay", low=0)
    _check_number(config, "label_smoothing", low=0, high=1)
    _check_number(config, "dropout_rate", low=0, high=0.99)
    _check_number(config, "warmup_epochs", low=0)
    _check_number(config, "schedule_gamma", low=0, low_inclusive=False)
    _check_number(config, "seed", low=0, integer=True)
    if config.get("data_seed") is not None:
        _check_number(config, "data_seed", low=0, integer=True)
    _check_number(config, "target_accuracy", low=0, high=1, optional=True)
    _check_number(config, "patience_evals", low=1, integer=True, optional=True)
    _check_number(config, "log_every_steps", low=1, integer=True)
    _check_number(config, "eval_every_steps", low=1, integer=True, optional=True)
    _check_number(config, "checkpoint_every_steps", low=1, integer=True, optional=True)
    _check_number(config, "keep_checkpoints", low=1, integer=True)
    _check_number(config, "memory_limit_bytes", low=1, integer=True, optional=True)
    if "image_transfer" in config:
        _check_choice(config, "image_transfer", IMAGE_TRANSFERS)
    if "device_resident_bytes" in config:
        _check_number(config, "device_resident_bytes", low=0, integer=True)
    if config.get("data_threads") is not None:
        _check_number(config, "data_threads", low=0, integer=True)
    if config.get("memory_headroom_fraction") is not None:
        _check_number(config, "memory_headroom_fraction", low=0, high=0.9)
    _check_number(config, "noise_ema_decay", low=0, high=0.999999)
    for field in ("num_epochs", "num_examples", "num_steps"):
        _check_number(config, field, low=0, low_inclusive=False, optional=True,
                      integer=field != "num_epochs")
    budgets = [f for f in ("num_epochs", "num_examples", "num_steps") if config[f] is not None]
    if len(budgets) != 1:
        raise ConfigError("set exactly one of num_epochs / num_examples / num_steps (the others "
                          f"None; one given on the command line replaces the config file's); set "
                          f"now: {budgets or 'none'}")
    if _is_set(config.schedule_milestones) and _is_set(config.schedule_milestone_fractions):
        raise ConfigError("set schedule_milestones (epochs) or schedule_milestone_fractions, not "
                          f"both (one given on the command line replaces the config file's); set "
                          f"now: {tuple(config.schedule_milestones)} and "
                          f"{tuple(config.schedule_milestone_fractions)}")
    if config.stop_at_target and config.target_accuracy is None:
        raise ConfigError("stop_at_target=True needs a target_accuracy")
    try:  # layout errors that need no device count (divisibility by devices is checked later)
        resolve_layout(batch_size=config.batch_size, num_devices=1,
                       microbatch_size=config.microbatch_size,
                       ghost_batch_size=config.ghost_batch_size,
                       normalization=config.normalization)
    except ValueError as err:
        if "per-device batch" not in str(err):
            raise ConfigError(str(err)) from None


@dataclasses.dataclass(frozen=True)
class Resolved:
    layout: BatchLayout
    num_train_examples: int
    num_eval_examples: int
    num_classes: int
    lr_scale_factor: float
    scaled_learning_rate: float
    total_steps: int
    total_examples: int
    epochs: float
    steps_per_epoch: float
    warmup_steps: int
    warmup_start_factor: float
    milestone_steps: tuple
    eval_every_steps: int
    num_processes: int
    bn_group_follows_layout: bool = False   # True: the BN group is the microbatch (layout-set)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["layout"] = self.layout.to_json()
        out["milestone_steps"] = list(self.milestone_steps)
        return out


def resolve(config, *, num_devices: int, num_processes: int, num_train_examples: int,
            num_eval_examples: int, num_classes: int) -> Resolved:
    try:
        layout = resolve_layout(batch_size=config.batch_size, num_devices=num_devices,
                                microbatch_size=config.microbatch_size,
                                ghost_batch_size=config.ghost_batch_size,
                                normalization=config.normalization, num_processes=num_processes)
        budget = scaling.resolve_budget(
            num_train_examples=num_train_examples, batch_size=config.batch_size,
            num_epochs=config.num_epochs, num_examples=config.num_examples,
            num_steps=config.num_steps, regime_adaptation=config.regime_adaptation,
            reference_batch_size=config.reference_batch_size)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if config.batch_size > num_train_examples:
        raise ConfigError(f"batch_size={config.batch_size} exceeds the {num_train_examples} "
                          f"training examples of {config.dataset}")
    if config.eval_batch_size % num_devices:
        raise ConfigError(f"eval_batch_size={config.eval_batch_size} is not divisible by the "
                          f"{num_devices} devices in use")
    factor = scaling.lr_scale_factor(config.batch_size, config.reference_batch_size,
                                     config.lr_scaling)
    adaptation = config.batch_size / config.reference_batch_size if config.regime_adaptation else 1
    milestones = scaling.milestone_steps(
        total_steps=budget.total_steps, steps_per_epoch=budget.steps_per_epoch,
        milestones_epochs=tuple(config.schedule_milestones),
        milestone_fractions=tuple(config.schedule_milestone_fractions),
        adaptation_factor=adaptation)
    if config.schedule == "step" and not milestones:
        raise ConfigError("schedule='step' needs schedule_milestones (epochs) or "
                          "schedule_milestone_fractions")
    warmup_steps = scaling.epochs_to_steps(config.warmup_epochs, budget.steps_per_epoch)
    if warmup_steps >= budget.total_steps and warmup_steps > 0:
        raise ConfigError(f"warmup_epochs={config.warmup_epochs} is {warmup_steps} steps, not "
                          f"fewer than the {budget.total_steps} steps of the budget")
    eval_every = config.eval_every_steps or max(1, int(round(budget.steps_per_epoch)))
    return Resolved(
        layout=layout, num_train_examples=num_train_examples, num_eval_examples=num_eval_examples,
        num_classes=num_classes, lr_scale_factor=factor,
        scaled_learning_rate=config.learning_rate * factor, total_steps=budget.total_steps,
        total_examples=budget.total_examples, epochs=budget.epochs,
        steps_per_epoch=budget.steps_per_epoch, warmup_steps=warmup_steps,
        # Goyal et al. 2017: warmup starts from the unscaled lr and reaches the scaled one.
        warmup_start_factor=min(1.0, 1.0 / factor), milestone_steps=milestones,
        eval_every_steps=eval_every, num_processes=num_processes,
        bn_group_follows_layout=layout.bn_group is not None and bn_group_follows_layout(
            config.normalization, config.ghost_batch_size))
