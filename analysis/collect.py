"""Collect every run directory under a root into one table (pandas DataFrame and CSV).

    python -m analysis.collect --root=runs/embedded_bs_lr --out=runs.csv [--targets=0.9,0.95]
        [--by_batch_size=best.csv]

One row per run directory (any directory holding ``config.json``), from its files only:

* the resolved config: ``batch_size``, ``lr_scaling``, ``learning_rate`` (the scaled lr the run
  used), ``base_learning_rate`` and ``reference_batch_size``, ``ghost_batch_size`` (the BN group
  the layout resolved to), ``num_devices``, ``per_device_batch``, ``microbatch``,
  ``accumulation_steps``, ``num_processes``, ``seed``, ``optimizer``, ``model``, ``dataset``,
  ``normalization``, ``budget`` (the budget field the config set, e.g. ``num_epochs=20``, with
  `` regime_adaptation`` when set), ``trials_in_program`` (trials compiled into one program with
  it: such trials share one examples/s), and ``config_id`` (a digest of the config with the
  fields that do not change results left out: two run directories with one ``config_id`` are the
  same run, e.g. one copied under two roots);
* the result: ``status`` (a summary status, or ``incomplete`` without a summary),
  ``best_eval_accuracy``, ``final_eval_accuracy``, ``steps``, ``examples``,
  ``examples_per_second`` (steady state, from the summary), ``train_seconds``;
* the config's own target: ``target_accuracy``, ``steps_to_target``, ``examples_to_target``,
  ``seconds_to_target`` as the trainer measured them;
* each requested target ``t``: ``steps_to_<t>``, ``examples_to_<t>``, ``seconds_to_<t>``;
* the trial's sweep axes (``axis.<field>``) from the nearest ``sweep.json`` above the run.

Steps and examples to a target are exact: the first evaluation in ``eval.jsonl`` with accuracy
>= target (evaluations happen every ``eval_every_steps``, so this is the step resolution).
Seconds to a target use the trainer's clock -- time inside training-step intervals, excluding
compilation, evaluation and checkpointing -- rebuilt from ``metrics.jsonl``: a record at step s
with ``examples_per_second`` = e covers ``(s - s_prev) * batch_size / e`` seconds, so the clock
at a logged step is the sum over records up to it (exact), and between two logged steps it is
interpolated linearly in steps (approximate; exact when evaluations fall on logged steps, i.e.
``eval_every_steps`` is a multiple of ``log_every_steps``).

Steps to target per batch size follow Shallue et al. (2018): the earliest step at which *any*
trial of that batch size reached the target, with that trial's learning rate
(``steps_to_target_by_batch_size``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys

import pandas as pd

# bsgap's reader: a torn final line is dropped, other damage raises CorruptFileError.
from bsgap.logbook import read_jsonl as _read_jsonl

CONFIG_FILE, SUMMARY_FILE, METRICS_FILE, EVAL_FILE = (
    "config.json", "summary.json", "metrics.jsonl", "eval.jsonl")
SWEEP_FILE = "sweep.json"
FINAL_STATUSES = ("complete", "diverged", "target_reached", "early_stopped")

# The columns the CLI always writes, first and in this order.
REQUIRED_COLUMNS = ["run", "batch_size", "lr_scaling", "learning_rate", "seed", "status",
                    "best_eval_accuracy", "final_eval_accuracy", "steps_to_target",
                    "examples_to_target", "seconds_to_target", "examples_per_second"]


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def find_runs(root: str) -> list[str]:
    """Every directory under ``root`` (itself included) holding a ``config.json``, sorted."""
    runs = []
    for directory, subdirs, files in os.walk(root):
        if CONFIG_FILE in files:
            runs.append(directory)
            subdirs[:] = []          # a run's checkpoints/ and tensorboard/ are not runs
        else:
            subdirs.sort()
    return sorted(runs)


def target_column(kind: str, target: float) -> str:
    """``steps_to_0.95`` etc."""
    return f"{kind}_to_{target:g}"


def first_eval_reaching(evals: list[dict], target: float) -> dict | None:
    """The first evaluation record (in step order) with accuracy >= target, or None."""
    for record in sorted(evals, key=lambda r: r["step"]):
        accuracy = record.get("accuracy")
        if accuracy is not None and accuracy >= target:
            return record
    return None


def train_seconds_at(metrics: list[dict], batch_size: int, step: int) -> float | None:
    """The trainer's training-step clock at ``step``, rebuilt from metrics.jsonl (module doc).

    None when ``step`` lies past the last record, or a record needed has no examples_per_second.
    """
    clock, previous = 0.0, 0
    for record in sorted(metrics, key=lambda r: r["step"]):
        steps = record["step"] - previous
        rate = record.get("examples_per_second")
        if steps <= 0:
            continue
        if rate is None or rate <= 0:
            return None
        seconds = steps * batch_size / rate
        if step <= record["step"]:
            return clock + seconds * (step - previous) / steps
        clock, previous = clock + seconds, record["step"]
    return clock if step == previous else None


def _sweep_axes(run_dir: str, root: str, cache: dict) -> tuple[str | None, dict]:
    """(sweep root relative to ``root``, the trial's axes) from the nearest sweep.json above."""
    directory = os.path.dirname(os.path.abspath(run_dir))
    stop = os.path.dirname(os.path.abspath(root))
    while directory and directory != stop:
        if directory not in cache:
            cache[directory] = _read_json(os.path.join(directory, SWEEP_FILE))
        plan = cache[directory]
        if plan:
            name = os.path.relpath(os.path.abspath(run_dir), directory)
            for trial in plan.get("trials", []):
                if trial.get("workdir", trial.get("name")) == name:
                    return os.path.relpath(directory, os.path.abspath(root)), trial["axes"]
            return os.path.relpath(directory, os.path.abspath(root)), {}
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return None, {}


# Config fields that say where a run read its data or how it reported, not what it computed.
NOT_IDENTITY = ("data_dir", "manual_dir", "download", "progress_bar", "tensorboard",
                "log_every_steps", "checkpoint_every_steps", "keep_checkpoints")


def config_id(config: dict) -> str | None:
    """A short digest of the run's config without the NOT_IDENTITY fields (None without one)."""
    if not config:
        return None
    kept = {k: v for k, v in config.items() if k not in NOT_IDENTITY}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:12]


def budget_text(config: dict) -> str | None:
    """``num_epochs=20`` (the budget field a config set), `` regime_adaptation`` when on."""
    fields = [f"{f}={config[f]:g}" for f in ("num_epochs", "num_examples", "num_steps")
              if isinstance(config.get(f), (int, float))]
    if not fields:
        return None
    return " ".join(fields) + (" regime_adaptation" if config.get("regime_adaptation") else "")


def run_row(run_dir: str, root: str, targets=(), sweep_cache: dict | None = None) -> dict:
    """One table row for one run directory (module doc lists the columns)."""
    stored = _read_json(os.path.join(run_dir, CONFIG_FILE)) or {}
    config, resolved = stored.get("config", {}), stored.get("resolved", {})
    layout = resolved.get("layout", {})
    summary = _read_json(os.path.join(run_dir, SUMMARY_FILE)) or {}
    evals = _read_jsonl(os.path.join(run_dir, EVAL_FILE))
    metrics = _read_jsonl(os.path.join(run_dir, METRICS_FILE))
    batch_size = config.get("batch_size")
    accuracies = [r["accuracy"] for r in evals if r.get("accuracy") is not None]
    last_step = max([r["step"] for r in metrics + evals], default=0)
    row = {
        "run": os.path.relpath(run_dir, root),
        "batch_size": batch_size,
        "lr_scaling": config.get("lr_scaling"),
        "learning_rate": resolved.get("scaled_learning_rate", summary.get("learning_rate")),
        "seed": config.get("seed"),
        "status": summary.get("status") if summary.get("status") in FINAL_STATUSES
        else "incomplete",
        "best_eval_accuracy": summary.get("best_eval_accuracy",
                                          max(accuracies) if accuracies else None),
        "final_eval_accuracy": summary.get("final_eval_accuracy",
                                           accuracies[-1] if accuracies else None),
        "steps_to_target": summary.get("steps_to_target"),
        "examples_to_target": summary.get("examples_to_target"),
        "seconds_to_target": summary.get("seconds_to_target"),
        "examples_per_second": summary.get("examples_per_second"),
        "target_accuracy": config.get("target_accuracy"),
        "base_learning_rate": config.get("learning_rate"),
        "reference_batch_size": config.get("reference_batch_size"),
        "ghost_batch_size": layout.get("bn_group"),
        "num_devices": layout.get("num_devices"),
        "per_device_batch": layout.get("per_device_batch"),
        "microbatch": layout.get("microbatch"),
        "accumulation_steps": layout.get("accumulation_steps"),
        "num_processes": resolved.get("num_processes"),
        "optimizer": config.get("optimizer"),
        "model": config.get("model"),
        "dataset": config.get("dataset"),
        "normalization": config.get("normalization"),
        "budget": budget_text(config),
        "trials_in_program": stored.get("environment", {}).get("trials_in_program", 1),
        "config_id": config_id(config),
        "total_steps": resolved.get("total_steps"),
        "steps": summary.get("steps", last_step),
        "examples": summary.get("examples", last_step * (batch_size or 0)),
        "train_seconds": summary.get("train_seconds"),
        "best_eval_step": summary.get("best_eval_step"),
        "diverged_at_step": summary.get("diverged_at_step"),
    }
    if not summary and config.get("target_accuracy") is not None:
        hit = first_eval_reaching(evals, config["target_accuracy"])
        if hit is not None:
            row["steps_to_target"] = hit["step"]
            row["examples_to_target"] = hit["step"] * batch_size
            row["seconds_to_target"] = train_seconds_at(metrics, batch_size, hit["step"])
    for target in targets:
        hit = first_eval_reaching(evals, target)
        row[target_column("steps", target)] = hit["step"] if hit else None
        row[target_column("examples", target)] = hit["step"] * batch_size if hit else None
        row[target_column("seconds", target)] = (train_seconds_at(metrics, batch_size,
                                                                  hit["step"]) if hit else None)
    sweep, axes = _sweep_axes(run_dir, root, {} if sweep_cache is None else sweep_cache)
    row["sweep"] = sweep
    for field, value in axes.items():
        row[f"axis.{field}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return row


def collect(root: str, targets=()) -> pd.DataFrame:
    """The table of every run under ``root``: one row per run directory, sorted by batch size,
    lr rule, learning rate, seed and name. ``targets``: extra target accuracies (fractions)."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root} is not a directory")
    cache: dict = {}
    rows, skipped = [], []
    for directory in find_runs(root):
        try:
            rows.append(run_row(directory, root, targets, cache))
        except (OSError, ValueError) as err:   # one damaged run never breaks the whole table
            skipped.append(f"{os.path.relpath(directory, root)} ({err})")
    if skipped:
        print(f"analysis.collect: skipped {len(skipped)} unreadable run(s): " + "; ".join(skipped),
              file=sys.stderr)
    columns = list(REQUIRED_COLUMNS)
    for row in rows:
        columns += [k for k in row if k not in columns]
    frame = pd.DataFrame(rows, columns=columns)
    if frame.empty:
        return frame
    order = ["batch_size", "lr_scaling", "learning_rate", "seed", "run"]
    return frame.sort_values(order, na_position="last", kind="stable").reset_index(drop=True)


def steps_to_target_by_batch_size(runs: pd.DataFrame, target: float | None = None,
                                  by=("batch_size",)) -> pd.DataFrame:
    """Shallue et al. (2018): per batch size, the fewest steps any trial needed to reach the target.

    ``target=None`` uses each run's own ``target_accuracy`` (all must be equal); otherwise the
    ``steps_to_<target>`` columns, which ``collect(root, targets=[target])`` adds. One row per
    group: ``trials``, ``trials_reaching``, ``steps_to_target`` / ``examples_to_target`` /
    ``seconds_to_target`` / ``run`` / ``learning_rate`` / ``lr_scaling`` / ``seed`` of the trial
    that got there first (ties: fewer seconds, then run name), and ``min_seconds_to_target``
    over all trials (the wall-clock view of question 3 in DESIGN.md).
    """
    if target is None:
        targets = set(runs["target_accuracy"].dropna())
        if len(targets) != 1:
            raise ValueError(f"runs have target accuracies {sorted(targets)}; pass target=")
        target = targets.pop()
        steps_col, examples_col, seconds_col = (
            "steps_to_target", "examples_to_target", "seconds_to_target")
    else:
        steps_col, examples_col, seconds_col = (target_column(k, target)
                                                for k in ("steps", "examples", "seconds"))
        if steps_col not in runs:
            raise ValueError(f"no column {steps_col}: collect(root, targets=[{target}]) first")
    out = []
    for key, group in runs.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        reached = group[group[steps_col].notna()]
        row = dict(zip(by, key))
        row.update({"target_accuracy": target, "trials": len(group),
                    "trials_reaching": len(reached)})
        if len(reached):
            best = reached.assign(_s=reached[seconds_col].fillna(math.inf)).sort_values(
                [steps_col, "_s", "run"], kind="stable").iloc[0]
            row.update({"steps_to_target": int(best[steps_col]),
                        "examples_to_target": int(best[examples_col]),
                        "seconds_to_target": best[seconds_col], "run": best["run"],
                        "learning_rate": best["learning_rate"],
                        "lr_scaling": best["lr_scaling"], "seed": best["seed"],
                        "min_seconds_to_target": reached[seconds_col].min()})
        else:
            row.update({"steps_to_target": None, "examples_to_target": None,
                        "seconds_to_target": None, "run": None, "learning_rate": None,
                        "lr_scaling": None, "seed": None, "min_seconds_to_target": None})
        out.append(row)
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.collect",
                                description="One row per run directory under --root.")
    p.add_argument("--root", required=True)
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--targets", default="",
                   help="comma-separated extra target accuracies, e.g. 0.9,0.95")
    p.add_argument("--by_batch_size", default=None,
                   help="also write the per-batch-size steps-to-target table to this CSV")
    args = p.parse_args(argv)
    try:
        targets = [float(t) for t in args.targets.split(",") if t.strip()]
    except ValueError:
        print(f"analysis.collect: error: --targets={args.targets!r} must be numbers",
              file=sys.stderr)
        return 2
    try:
        runs = collect(args.root, targets)
    except FileNotFoundError as err:
        print(f"analysis.collect: error: {err}", file=sys.stderr)
        return 2
    if runs.empty:
        print(f"analysis.collect: error: no run directory (with config.json) under {args.root}",
              file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    runs.to_csv(args.out, index=False)
    print(f"{len(runs)} run(s) -> {args.out}")
    shown = ["run", "status", "learning_rate", "best_eval_accuracy", "final_eval_accuracy",
             "steps_to_target", "examples_per_second"]
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(runs[shown].to_string(index=False))
        if runs["target_accuracy"].nunique() == 1:
            table = steps_to_target_by_batch_size(runs)
            print(f"\nsteps to {table['target_accuracy'].iloc[0]:g} accuracy per batch size "
                  "(best trial of each):")
            print(table.drop(columns=["target_accuracy"]).to_string(index=False))
            if args.by_batch_size:
                table.to_csv(args.by_batch_size, index=False)
        elif args.by_batch_size:
            print("analysis.collect: error: the runs have different target accuracies; use "
                  "steps_to_target_by_batch_size(collect(root, [t]), t) for one target",
                  file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
