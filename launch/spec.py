"""Sweep files: load one, expand it into trials with stable readable names, build each command.

A sweep file is a Python file next to the configs whose ``get_sweep()`` returns a dict::

    {"config": "configs/digits_mlp.py",      # the base config file, relative to the repository
     "overrides": {"num_epochs": 20},        # fields fixed for every trial (optional)
     "axes": [{"batch_size": [32, 256]},     # the cartesian product of the axes, first slowest
              {"lr_scaling": ["none", "linear"]},
              {"seed": [0, 1]}],
     "names": {"weight_decay": "wd"}}        # name prefixes for fields (optional)

``axes`` may also be a plain dict ``{field: values}`` (one axis per field, in order). An axis with
several fields zips them (lists of equal length). A field's values may be a function of the fields
chosen by the axes before it -- e.g. Shallue et al. (2018) tune the learning rate for every batch
size, on a log-spaced grid around that batch size's scaled value::

    {"learning_rate": lambda t: log_grid(0.1 * t["batch_size"] / 32, num=5, factor=2.0)}

Field names are config fields, dotted for nested ones (``model_kwargs.channels``). A trial's name
joins one short part per swept field in axis order, e.g. ``bs256-linear-s0``: it depends only on
the trial's own values, so it is stable when axes gain values. A trial runs as
``python -m bsgap.train --config=<config> --workdir=<root>/<name> --config.<field>=<value> ...``
(fixed overrides first, then the axes), and its identity is the config that command produces: the
same flag parser as the CLI's turns the command back into that config (``expected_config``).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shlex
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Name prefix per field; '' means the value alone names it (choices such as lr_scaling='linear').
NAME_PREFIXES = {
    "batch_size": "bs", "seed": "s", "learning_rate": "lr", "lr_scaling": "", "optimizer": "",
    "model": "", "dataset": "", "normalization": "", "schedule": "", "ghost_batch_size": "gbs",
    "microbatch_size": "mb", "num_devices": "dev", "weight_decay": "wd", "momentum": "mom",
    "warmup_epochs": "warm", "num_epochs": "ep", "num_steps": "steps", "num_examples": "ex",
    "reference_batch_size": "ref", "label_smoothing": "ls", "dropout_rate": "drop",
    "regime_adaptation": "ra", "dtype": "",
}


class SweepError(ValueError):
    """A sweep file that cannot be expanded (the message says which field and why)."""


@dataclasses.dataclass(frozen=True)
class Sweep:
    path: str                   # the sweep file, as given
    config: str                 # base config file, relative to the repository root (or absolute)
    overrides: dict             # fixed fields, in order
    axes: tuple                 # tuple of dicts {field: list | callable}
    names: dict                 # field -> name prefix


@dataclasses.dataclass(frozen=True)
class Trial:
    index: int
    name: str
    axes: dict                  # the swept fields and their values, in axis order
    overrides: dict             # every override (fixed, then axes), in command order

    def to_json(self) -> dict:
        return {"index": self.index, "name": self.name, "axes": _jsonable(self.axes),
                "overrides": _jsonable(self.overrides)}


def log_grid(center: float, num: int = 5, factor: float = 2.0) -> list[float]:
    """``num`` values ``center * factor**k`` for k = -(num//2) ... centred on ``center`` (odd num).

    With ``num=5, factor=2``: center x {1/4, 1/2, 1, 2, 4}, the grid Shallue et al. (2018) search
    around each batch size's scaled learning rate.
    """
    if num < 1 or factor <= 0:
        raise SweepError(f"log_grid needs num >= 1 and factor > 0 (got num={num}, "
                         f"factor={factor})")
    return [center * factor ** (k - num // 2) for k in range(num)]


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def sweep_dict(path: str) -> dict:
    """A sweep file's ``get_sweep()`` dict, checked; sweep files derive from each other with it
    (e.g. ``sweep_dict(os.path.join(os.path.dirname(__file__), "study_fig8.py"))``)."""
    if not os.path.isfile(path):
        raise SweepError(f"sweep file {path} does not exist")
    module_name = "bsgap_sweep_" + re.sub(r"\W", "_", os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:   # a syntax error, a failing import: the user's file, one line
        raise SweepError(f"sweep file {path} could not be loaded: {type(err).__name__}: "
                         f"{err}") from None
    if not hasattr(module, "get_sweep"):
        raise SweepError(f"sweep file {path} has no get_sweep()")
    try:
        raw = module.get_sweep()
    except Exception as err:
        raise SweepError(f"sweep file {path}: get_sweep() raised {type(err).__name__}: "
                         f"{err}") from None
    if not isinstance(raw, dict) or "config" not in raw or "axes" not in raw:
        raise SweepError(f"{path}: get_sweep() must return a dict with 'config' and 'axes' "
                         "(and optionally 'overrides', 'names')")
    unknown = set(raw) - {"config", "overrides", "axes", "names"}
    if unknown:
        raise SweepError(f"{path}: unknown keys {sorted(unknown)} in get_sweep()'s dict")
    return raw


def load_sweep(path: str, extra_overrides: dict | None = None) -> Sweep:
    """Load a sweep file's ``get_sweep()``; ``extra_overrides`` (--set) join its fixed fields."""
    raw = sweep_dict(path)
    axes = raw["axes"]
    if isinstance(axes, dict):
        axes = [{field: values} for field, values in axes.items()]
    axes = tuple(dict(axis) for axis in axes)
    for axis in axes:
        if not axis:
            raise SweepError(f"{path}: an axis with no field")
        for field, values in axis.items():
            if not callable(values) and not isinstance(values, (list, tuple)):
                raise SweepError(f"{path}: axis field {field!r} needs a list of values or a "
                                 f"function of the earlier fields, not {values!r}")
    overrides = dict(raw.get("overrides") or {})
    overrides.update(extra_overrides or {})
    config = raw["config"]
    if not os.path.isfile(config_path(config)):
        raise SweepError(f"{path}: base config {config} not found (relative to {REPO_ROOT})")
    return Sweep(path=path, config=config, overrides=overrides, axes=axes,
                 names={**NAME_PREFIXES, **(raw.get("names") or {})})


def config_path(config: str) -> str:
    """The base config file's absolute path (relative paths are from the repository root; a bare
    name such as ``default`` is one of the repository's configs, as for ``bsgap.train``)."""
    from bsgap.config_files import ConfigFileError, resolve_config_file

    if os.path.isabs(config) or os.path.isfile(os.path.join(REPO_ROOT, config)):
        return config if os.path.isabs(config) else os.path.join(REPO_ROOT, config)
    try:
        return resolve_config_file(config)
    except ConfigFileError:
        return os.path.join(REPO_ROOT, config)


def _format_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, (list, tuple)):
        return "x".join(_format_value(v) for v in value)
    return re.sub(r"[^A-Za-z0-9.+_]", "_", str(value))


def name_part(field: str, value, prefixes: dict) -> str:
    """One part of a trial name: ``bs256`` for batch_size=256, ``linear`` for lr_scaling."""
    prefix = prefixes.get(field, field.split(".")[-1])
    return f"{prefix}{_format_value(value)}"


def _axis_rows(axis: dict, chosen: dict, sweep_path: str) -> list[dict]:
    columns = {}
    for field, values in axis.items():
        if callable(values):
            try:
                values = values(dict(chosen))
            except Exception as err:  # noqa: BLE001 -- say which field's function failed
                raise SweepError(f"{sweep_path}: values of {field!r} for {chosen}: "
                                 f"{type(err).__name__}: {err}") from err
        if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
            raise SweepError(f"{sweep_path}: axis field {field!r} must give a list of values "
                             f"(a function must return a list), got {values!r} for {chosen}")
        values = list(values)
        if not values:
            raise SweepError(f"{sweep_path}: axis field {field!r} has no values for {chosen}")
        columns[field] = values
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise SweepError(f"{sweep_path}: zipped fields {list(columns)} have different numbers "
                         f"of values {[len(v) for v in columns.values()]}")
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


def expand(sweep: Sweep) -> list[Trial]:
    """Every trial of the sweep, in product order (the first axis varies slowest)."""
    partial = [{}]
    for axis in sweep.axes:
        partial = [{**chosen, **row} for chosen in partial
                   for row in _axis_rows(axis, chosen, sweep.path)]
    trials, seen = [], {}
    for index, axes in enumerate(partial):
        name = "-".join(name_part(f, v, sweep.names) for f, v in axes.items()) or "trial"
        if name in seen:
            raise SweepError(f"{sweep.path}: trials {seen[name]} and {axes} are both named "
                             f"{name!r}; give the fields distinct prefixes with 'names'")
        seen[name] = axes
        overrides = {k: v for k, v in sweep.overrides.items() if k not in axes}
        overrides.update(axes)
        trials.append(Trial(index=index, name=name, axes=axes, overrides=overrides))
    return trials


def cli_value(value) -> str:
    """A value as ml_collections' config flags parse it back (tuples for sequences)."""
    if value is None or isinstance(value, (bool, int)):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return repr(tuple(value))
    return str(value)


def trial_command(sweep: Sweep, trial: Trial, root: str, *, python: str | None = None,
                  config: str | None = None) -> list[str]:
    """argv of the CLI run for one trial; run it with the repository root as working directory."""
    return [python or sys.executable, "-m", "bsgap.train", f"--config={config or sweep.config}",
            f"--workdir={os.path.join(root, trial.name)}",
            *(f"--config.{field}={cli_value(value)}" for field, value in trial.overrides.items())]


def command_string(argv: list[str]) -> str:
    return shlex.join(argv)


def parse_cli_config(argv: list[str]):
    """The ConfigDict that ``bsgap.train`` builds from ``argv`` (``--config=FILE``, then any
    ``--config.<field>=<value>`` flags; other flags are dropped), with ml_collections' own flag
    parser, so nothing here re-implements override parsing. Raises SweepError when a flag does not
    apply to the config file."""
    from absl import flags
    from ml_collections import config_flags

    from bsgap.run_config import give_command_line_precedence

    config_file = config_path(next(a.split("=", 1)[1] for a in argv
                                   if a.startswith("--config=")))   # a path, or a config's name
    argv = ["bsgap.train", f"--config={config_file}",
            *(a for a in argv if a.startswith("--config."))]
    flag_values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file("config", config_file, "",
                                             flag_values=flag_values, sys_argv=argv)
    try:
        flag_values(argv)
        config = holder.value
    except Exception as err:  # noqa: BLE001 -- a field the config does not have, a bad value
        raise SweepError(str(err)) from err
    # As bsgap.train does: a budget/milestone field given as a flag replaces the file's.
    give_command_line_precedence(config, set(config_flags.get_override_values(
        flag_values["config"])))
    return config


def expected_config(sweep: Sweep, trial: Trial) -> dict:
    """The plain config the trial's CLI run stores in config.json, parsed the way the CLI parses.

    Uses ml_collections' own flag parser on the trial's command, so the identity of a trial is
    exactly what ``bsgap.train`` will see (no second implementation of override parsing).
    """
    from bsgap.workdir import plain_config

    argv = trial_command(sweep, trial, "/unused", python="bsgap.train",
                         config=config_path(sweep.config))
    try:
        config = parse_cli_config(argv)
    except SweepError as err:
        raise SweepError(f"trial {trial.name}: the overrides do not apply to {sweep.config}: "
                         f"{err}") from err
    return plain_config(config)
