"""Group a sweep's unfinished trials into programs of K trials (``--group_trials``).

Trials share one compiled program (``bsgap.train --config.trials=...``, bsgap/trials.py) when
their configs are equal in every field outside ``bsgap.trainer.TRIAL_FIELDS`` -- the same rule
``check_shareable`` enforces -- so a sweep over batch size x learning rate x seed becomes one
program per batch size. Two more rules keep a group resumable: its trials must resume from the
same checkpoint step (new trials: step 0), because the trainer steps them together; and a trial
whose own config sets ``trials`` runs alone.

A group larger than the cap is split into consecutive chunks of near-equal size. The cap is
``max_trials_per_program``, lowered by the memory estimate when a limit is known: a single trial's
compiled step takes ``bytes_per_trial`` per device, and K trials are assumed to take K times that
(bsgap.memory.max_trials_in_memory), so K <= floor(0.85 x limit / bytes_per_trial).

Each group runs as one ``python -m bsgap.train --workdir=ROOT --config.trials=(...)`` whose trial
dicts are named by the trials' sweep names, so trial k writes ``ROOT/<name>``, the very directory
the sweep expects; before it is used, the command is parsed back with the CLI's own parser and
expanded by ``bsgap.trials.expand_trials``, and it must reproduce every trial's expected config
and directory (else those trials run alone).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys

from launch.spec import Sweep, SweepError, Trial, cli_value, config_path, parse_cli_config, \
    trial_command
from launch.state import TrialState


def trial_fields() -> tuple:
    """``bsgap.trial_fields.TRIAL_FIELDS``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")   # as bsgap.train does
    from bsgap.trial_fields import TRIAL_FIELDS

    return TRIAL_FIELDS


@dataclasses.dataclass(frozen=True)
class Job:
    """One process of the sweep: one trial (its ordinary command) or a group of trials."""

    trials: tuple[Trial, ...]
    states: tuple[TrialState, ...]
    argv: tuple[str, ...]

    @property
    def grouped(self) -> bool:
        return len(self.trials) > 1


def single_job(sweep: Sweep, trial: Trial, state: TrialState, root: str) -> Job:
    return Job((trial,), (state,), tuple(trial_command(sweep, trial, root)))


def program_key(expected: dict, state: TrialState) -> str | None:
    """Trials with equal keys may share a program; None: the trial runs alone."""
    if expected.get("trials"):
        return None
    fields = trial_fields()
    shared = {k: v for k, v in expected.items() if k not in fields}
    return json.dumps([shared, state.checkpoint_step or 0], sort_keys=True)


def group_by_program(entries: list[tuple[Trial, TrialState, dict]]) -> list[list[int]]:
    """Indices into ``entries`` grouped by ``program_key``, groups in order of first member."""
    groups, by_key = [], {}
    for i, (_, state, expected) in enumerate(entries):
        key = program_key(expected, state)
        if key is None:
            groups.append([i])
        elif key in by_key:
            by_key[key].append(i)
        else:
            by_key[key] = [i]
            groups.append(by_key[key])
    return groups


def split_by_cap(group: list, cap: int) -> list[list]:
    """Consecutive chunks of at most ``cap`` members, as equal in size as possible."""
    if cap < 1:
        raise ValueError(f"cap={cap} must be >= 1")
    chunks = math.ceil(len(group) / cap)
    size, extra = divmod(len(group), chunks) if group else (0, 0)
    out, start = [], 0
    for c in range(chunks):
        end = start + size + (1 if c < extra else 0)
        out.append(group[start:end])
        start = end
    return out


def trials_cap(max_trials_per_program: int, limit_bytes: int | None,
               bytes_per_trial: int | None) -> int:
    """``max_trials_per_program``, lowered to what the memory estimate allows (at least 1)."""
    from bsgap.memory import max_trials_in_memory

    cap = max_trials_per_program
    if limit_bytes and bytes_per_trial:
        cap = min(cap, max_trials_in_memory(limit_bytes, bytes_per_trial))
    return max(1, cap)


def python_literal(value) -> str:
    """``value`` as Python source that ``ast.literal_eval`` reads back exactly; strings in double
    quotes, so that the shell-quoted ``--config.trials='(...)'`` stays readable."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)                  # a JSON string is a Python string literal
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, (list, tuple)):
        items = [python_literal(v) for v in value]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{python_literal(k)}: {python_literal(v)}"
                               for k, v in value.items()) + "}"
    if hasattr(value, "item"):     # numpy scalars from a sweep file's arithmetic
        return python_literal(value.item())
    raise SweepError(f"cannot pass {value!r} ({type(value).__name__}) in --config.trials")


def group_command(sweep: Sweep, trials: list[Trial], root: str, *, python: str | None = None,
                  config: str | None = None) -> list[str]:
    """argv of one ``bsgap.train`` process running ``trials`` as one program under ``root``.

    Shared flags: the first trial's overrides outside TRIAL_FIELDS, and the TRIAL_FIELDS
    overrides that every trial sets to one value; each trial's dict holds its sweep name and its
    remaining TRIAL_FIELDS overrides.
    """
    fields = trial_fields()
    first = trials[0].overrides
    common = {k: v for k, v in first.items() if k.split(".")[0] not in fields
              or all(k in t.overrides and t.overrides[k] == v for t in trials)}
    # Other non-trial overrides of later trials set, by the grouping rule, the values the first
    # trial's flags give (check_group_command verifies it).
    dicts = tuple({"name": t.name, **{k: v for k, v in t.overrides.items()
                                      if k in fields and k not in common}} for t in trials)
    return [python or sys.executable, "-m", "bsgap.train", f"--config={config or sweep.config}",
            f"--workdir={root}",
            *(f"--config.{field}={cli_value(value)}" for field, value in common.items()),
            f"--config.trials={python_literal(dicts)}"]


def check_group_command(sweep: Sweep, argv: list[str], trials: list[Trial],
                        expected: list[dict]) -> str | None:
    """None when ``argv`` gives every trial exactly its expected config and ``ROOT/<name>``;
    else what differs. Parses the flags as ``bsgap.train`` does and expands the trials with
    ``bsgap.trials.expand_trials``, then asks ``check_shareable`` as ``Trainer.for_trials`` will."""
    from bsgap.run_config import ConfigError
    from bsgap.trial_fields import TrialMismatchError, check_shareable
    from bsgap.trials import expand_trials
    from bsgap.workdir import plain_config

    root = next(a.split("=", 1)[1] for a in argv if a.startswith("--workdir="))
    flags = [f"--config={config_path(sweep.config)}" if a.startswith("--config=") else a
             for a in argv]
    try:
        specs = expand_trials(parse_cli_config(flags), root)
        check_shareable([c for c, _ in specs])
    except (SweepError, ConfigError, TrialMismatchError) as err:
        return str(err)
    if len(specs) != len(trials):
        return f"{len(specs)} trial configs for {len(trials)} trials"
    for (config, workdir), trial, want in zip(specs, trials, expected):
        if workdir != os.path.join(root, trial.name):
            return f"{trial.name} would run in {workdir}"
        got = plain_config(config)
        if got != want:
            diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
            return f"{trial.name}: fields {diff} differ from the trial run alone"
    return None


def plan_jobs(sweep: Sweep, entries: list[tuple[Trial, TrialState, dict]], root: str, *,
              max_trials_per_program: int = 16, footprint=None, out=print) -> list[Job]:
    """The jobs that run ``entries`` (unfinished trials with their state and expected config).

    ``footprint(trial, expected) -> (limit_bytes, bytes_per_trial)`` (either may be None) is
    asked once per group of two or more trials; None or (None, None): no memory cap.
    """
    if max_trials_per_program < 1:
        raise ValueError(f"max_trials_per_program={max_trials_per_program} must be >= 1")
    jobs, measured = [], {}
    for members in group_by_program(entries):
        cap = max_trials_per_program
        if len(members) > 1 and cap > 1 and footprint is not None:
            trial, _, expected = entries[members[0]]
            key = program_key(expected, TrialState("new"))    # the program, whatever its step
            if key not in measured:
                measured[key] = footprint(trial, expected) or (None, None)
            limit, per_trial = measured[key]
            cap = trials_cap(max_trials_per_program, limit, per_trial)
            if limit and per_trial:
                out(f"memory: {per_trial:,} bytes per trial per device ({trial.name} alone), "
                    f"limit {limit:,}: at most {cap} trial(s) per program")
        for chunk in split_by_cap(members, cap):
            trials = [entries[i][0] for i in chunk]
            states = tuple(entries[i][1] for i in chunk)
            if len(chunk) == 1:
                jobs.append(single_job(sweep, trials[0], states[0], root))
                continue
            try:
                argv = group_command(sweep, trials, root)
                problem = check_group_command(sweep, argv, trials, [entries[i][2] for i in chunk])
            except SweepError as err:
                problem = str(err)
            if problem:
                out(f"not grouping {', '.join(t.name for t in trials)} ({problem}); "
                    "running them one by one")
                jobs += [single_job(sweep, t, s, root) for t, s in zip(trials, states)]
            else:
                jobs.append(Job(tuple(trials), states, tuple(argv)))
    return jobs
