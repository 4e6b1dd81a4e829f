"""Where the figure scripts get their numbers, and which target accuracy they use.

`load_sweep(root)` accepts either

- a **sweep directory**: every directory under it holding a `config.json` is a run
  (`analysis.collect.collect`); the run's `eval.jsonl`, `metrics.jsonl`, `config.json` and
  `analysis/*.json` are read from it when a figure needs them; or
- a **runs.csv** written by `python -m analysis.collect`: the table is read from the CSV, and a
  run's files are looked up in `<the CSV's directory>/<run>/` -- present when the CSV was written
  into the sweep directory, or when small curves were committed beside it. A figure that needs a
  per-step file that is not there skips that part with a printed note.

Everything is read from run directories (or their table); nothing is recomputed from checkpoints.

One figure is one experiment: runs that differ in ``model``, ``dataset``, ``normalization`` or
``budget`` are refused (FigureError lists the groups) unless ``--where field=value`` picks one;
run directories with the same ``config_id`` (one run found twice, e.g. copied under two roots)
count once, with a note. A runs.csv written before these columns existed is not checked.

Target accuracy (`choose_target`): by default the runs' own `target_accuracy` (the trainer's
measurement: `steps_to_target`, `examples_to_target`, `seconds_to_target`); `--target=0.9,0.8`
tries the given targets in that order. For a target that is not a run's own, steps and examples
come from the first evaluation in its `eval.jsonl` at or above it (exact at the evaluation
interval) and seconds from `analysis.collect.train_seconds_at` (the trainer's training-step clock
rebuilt from `metrics.jsonl`), or from the CSV's `steps_to_<t>` columns
(`analysis.collect --targets=t`). The first target that at least one run reached is used; when
none was reached, `FigureError` names every target tried and the best accuracy any run reached.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re

import pandas as pd

from analysis import collect
from bsgap import logbook

CONFIG_FILE, EVAL_FILE, METRICS_FILE = "config.json", "eval.jsonl", "metrics.jsonl"
ANALYSIS_DIR = "analysis"


class FigureError(Exception):
    """The root lacks what a figure needs: printed as one paragraph, exit status 2."""


def read_json(path: str) -> dict | None:
    """A JSON file's content, or None when it is absent or unreadable (cut by a crash)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_jsonl(path: str) -> list[dict] | None:
    """The records of a JSONL file, or None when absent (``bsgap.logbook.read_jsonl``: a final line
    cut by a kill is dropped, a damaged line elsewhere is an error naming it)."""
    return logbook.read_jsonl(path) if os.path.exists(path) else None


# Columns that make runs different experiments (not points of one figure).
EXPERIMENT_COLUMNS = ("model", "dataset", "normalization", "budget")


@dataclasses.dataclass
class Sweep:
    """The runs table plus access to each run's own files (when they can be found)."""

    root: str                      # what was given: a directory or a CSV file
    source: str                    # 'directory' or 'csv'
    runs: pd.DataFrame             # analysis.collect's table (one row per run)
    files_dir: str | None          # where run directories live (None: table only)
    notes: list = dataclasses.field(default_factory=list)   # what loading dropped or picked
    _cache: dict = dataclasses.field(default_factory=dict, repr=False)

    def run_dir(self, run: str) -> str | None:
        """The run's directory, or None when it is not available."""
        if self.files_dir is None:
            return None
        path = os.path.normpath(os.path.join(self.files_dir, str(run)))
        return path if os.path.isdir(path) else None

    def _read(self, run: str, name: str, reader):
        key = (run, name)
        if key not in self._cache:
            directory = self.run_dir(run)
            self._cache[key] = None if directory is None else reader(os.path.join(directory, name))
        return self._cache[key]

    def config(self, run: str) -> dict | None:
        """config.json ({'config', 'resolved', 'environment', ...}) or None."""
        return self._read(run, CONFIG_FILE, read_json)

    def evals(self, run: str) -> list[dict] | None:
        """eval.jsonl records, or None when the file is not available."""
        return self._read(run, EVAL_FILE, read_jsonl)

    def metrics(self, run: str) -> list[dict] | None:
        """metrics.jsonl records, or None when the file is not available."""
        return self._read(run, METRICS_FILE, read_jsonl)

    def analysis_files(self, run: str, prefix: str) -> list[str]:
        """`<run>/analysis/<prefix>*.json`, sorted."""
        directory = self.run_dir(run)
        if directory is None:
            return []
        return sorted(glob.glob(os.path.join(directory, ANALYSIS_DIR, f"{prefix}*.json")))

    def find_files(self, prefix: str) -> list[str]:
        """Every `<prefix>*.json` in an `analysis/` directory anywhere under the files directory
        (the interpolation CLI may write next to either run, or to any --out), sorted."""
        if self.files_dir is None:
            return []
        found = []
        for directory, subdirs, files in os.walk(self.files_dir):
            subdirs[:] = sorted(d for d in subdirs if d not in ("checkpoints", "tensorboard"))
            if os.path.basename(directory) == ANALYSIS_DIR:
                found += [os.path.join(directory, f) for f in files
                          if f.startswith(prefix) and f.endswith(".json")]
        return sorted(found)

    def describe(self) -> str:
        if self.source == "csv":
            where = (f"run files from {self.files_dir}" if self.files_dir
                     else "no run directories beside it")
            return f"{self.root} ({len(self.runs)} runs; {where})"
        return f"{self.root} ({len(self.runs)} run directories)"


def _cell(value) -> str:
    return "None" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else str(value)


def _select(runs: pd.DataFrame, where: list[str], root: str) -> pd.DataFrame:
    """The rows whose column equals the value of each ``field=value`` (compared as text, or as
    numbers when both parse)."""
    for condition in where:
        field, eq, value = condition.partition("=")
        if not eq or not field:
            raise FigureError(f"--where={condition!r} must be FIELD=VALUE (e.g. model=cnn1d)")
        if field not in runs.columns:
            raise FigureError(f"--where={condition}: the runs table has no column {field!r}; "
                              f"columns: {', '.join(map(str, runs.columns))}")

        def matches(cell, value=value):
            try:
                return math.isclose(float(cell), float(value))
            except (TypeError, ValueError):
                return _cell(cell) == value
        kept = runs[runs[field].map(matches)]
        if kept.empty:
            values = sorted({_cell(v) for v in runs[field]})
            raise FigureError(f"--where={condition}: no run of {root} has it; {field} is one of "
                              f"{values}")
        runs = kept
    return runs


def _one_experiment(runs: pd.DataFrame, root: str, notes: list) -> pd.DataFrame:
    """Drop repeated runs (same config_id); refuse runs of different experiments."""
    if "config_id" in runs.columns:
        ids = runs["config_id"]
        repeated = runs[ids.notna() & ids.duplicated(keep="first")]
        if len(repeated):
            first = {}
            for i, r in zip(ids, runs["run"]):
                first.setdefault(i, r)
            one = len(repeated) == 1
            notes.append(f"{len(repeated)} run director{'y repeats' if one else 'ies repeat'} "
                         "another's config (the same run found twice) and counts once: "
                         + "; ".join(f"{r} = {first[i]}" for i, r in
                                     zip(repeated["config_id"], repeated["run"])))
            runs = runs.drop(index=repeated.index)
    columns = [c for c in EXPERIMENT_COLUMNS if c in runs.columns]
    if not columns:
        return runs
    groups = runs.groupby([runs[c].map(_cell) for c in columns], sort=True)
    if groups.ngroups > 1:
        listed = [f"{len(g)} run(s) with " + ", ".join(f"{c}={v}" for c, v in zip(columns, key))
                  + f" (e.g. {g['run'].iloc[0]})" for key, g in groups]
        varying = [c for c in columns if runs[c].map(_cell).nunique() > 1]
        raise FigureError(
            f"{root} holds runs of {groups.ngroups} different experiments (they differ in "
            f"{', '.join(varying)}): " + "; ".join(listed) + ". One figure would merge them; "
            f"pick one with --where {varying[0]}=VALUE, or point --root at one sweep")
    return runs


def load_sweep(root: str, where: list[str] | None = None) -> Sweep:
    """A sweep directory or a runs.csv (module doc), one experiment of it (``where``: a list of
    ``field=value``). FigureError when there is no run or the runs are several experiments."""
    sweep = _load(root)
    runs = _select(sweep.runs, list(where or ()), root)
    if where:
        sweep.notes.append(f"runs with {' and '.join(where)}: {len(runs)} of {len(sweep.runs)}")
    sweep.runs = _one_experiment(runs, root, sweep.notes).reset_index(drop=True)
    return sweep


def _load(root: str) -> Sweep:
    if os.path.isdir(root):
        runs = collect.collect(root)
        if runs.empty:
            raise FigureError(f"no run directory (a directory holding config.json) under {root}; "
                              "pass a sweep directory written by launch.sweep or bsgap.train, or "
                              "a runs.csv written by analysis.collect")
        return Sweep(root, "directory", runs, root)
    if os.path.isfile(root):
        try:
            runs = pd.read_csv(root)
        except (ValueError, OSError) as err:
            raise FigureError(f"{root} is not a readable CSV file ({err})") from None
        missing = [c for c in collect.REQUIRED_COLUMNS if c not in runs.columns]
        if missing:
            raise FigureError(f"{root} is not a runs table written by analysis.collect: it lacks "
                              f"the column(s) {', '.join(missing)}")
        if runs.empty:
            raise FigureError(f"{root} holds no runs (the table is empty)")
        files_dir = os.path.dirname(root) or "."
        has_files = any(os.path.isdir(os.path.join(files_dir, str(r))) for r in runs["run"])
        return Sweep(root, "csv", runs, files_dir if has_files else None)
    raise FigureError(f"--root={root} is neither a sweep directory nor a runs.csv file")


def parse_targets(text: str | None) -> list[float] | None:
    """'0.9,0.8' -> [0.9, 0.8]; None or '' -> None. Targets are fractions in (0, 1]."""
    if text is None or not str(text).strip():
        return None
    try:
        values = [float(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise FigureError(f"--target={text!r} must be comma-separated accuracies such as "
                          "0.9,0.8") from None
    bad = [v for v in values if not (0 < v <= 1)]
    if bad or not values:
        raise FigureError(f"--target={text!r}: target accuracies are fractions in (0, 1] "
                          "(0.9, not 90)")
    return values


def _same_target(a, b) -> bool:
    return a is not None and not pd.isna(a) and math.isclose(float(a), float(b), abs_tol=1e-12)


def runs_at_target(sweep: Sweep, target: float) -> tuple[pd.DataFrame, int]:
    """The runs table with `steps_to_<t>`, `examples_to_<t>`, `seconds_to_<t>` filled for every
    run whose reaching of `target` is known (module doc says from which file), and the number of
    runs for which it could not be told (no column, not the run's own target, no eval.jsonl)."""
    steps_col, examples_col, seconds_col = (collect.target_column(k, target)
                                            for k in ("steps", "examples", "seconds"))
    frame = sweep.runs.copy()
    have_columns = steps_col in frame.columns
    for col in (steps_col, examples_col, seconds_col):
        if col not in frame.columns:
            frame[col] = math.nan
        frame[col] = frame[col].astype(float)
    unknown = 0
    for i, row in frame.iterrows():
        if have_columns:
            continue
        if _same_target(row.get("target_accuracy"), target):
            for col, own in ((steps_col, "steps_to_target"), (examples_col, "examples_to_target"),
                             (seconds_col, "seconds_to_target")):
                value = row.get(own)
                frame.at[i, col] = math.nan if value is None or pd.isna(value) else float(value)
            continue
        evals = sweep.evals(row["run"])
        if evals is None:
            unknown += 1
            continue
        hit = collect.first_eval_reaching(evals, target)
        if hit is not None:
            batch = int(row["batch_size"])
            seconds = collect.train_seconds_at(sweep.metrics(row["run"]) or [], batch, hit["step"])
            frame.at[i, steps_col] = float(hit["step"])
            frame.at[i, examples_col] = float(hit["step"] * batch)
            frame.at[i, seconds_col] = math.nan if seconds is None else float(seconds)
    return frame, unknown


def configured_targets(runs: pd.DataFrame) -> list[float]:
    """The distinct target accuracies the runs were configured with, highest first."""
    if "target_accuracy" not in runs.columns:
        return []
    return sorted({float(t) for t in runs["target_accuracy"].dropna()}, reverse=True)


def choose_target(sweep: Sweep, requested: list[float] | None) -> tuple[float, pd.DataFrame, dict]:
    """The first target (requested ones in order, else the runs' own, highest first) that at
    least one run reached: (target, runs_at_target frame, info). FigureError when none was."""
    candidates = requested or configured_targets(sweep.runs)
    if not candidates:
        raise FigureError("the runs set no target_accuracy and no --target was given; pass "
                          "--target=0.9 (or several, tried in order: --target=0.95,0.9)")
    tried = []
    for target in candidates:
        frame, unknown = runs_at_target(sweep, target)
        steps_col = collect.target_column("steps", target)
        reaching = int(frame[steps_col].notna().sum())
        tried.append({"target": target, "runs_reaching": reaching, "runs_unknown": unknown})
        if reaching:
            return target, frame, {"tried": tried, "source": "requested" if requested
                                   else "the runs' target_accuracy"}
    best = sweep.runs["best_eval_accuracy"].astype(float)
    best_text = "no run has an evaluation"
    if best.notna().any():
        i = best.idxmax()
        best_text = (f"the best accuracy any run reached is {best[i]:.4g} "
                     f"({sweep.runs.at[i, 'run']})")
    unknown_text = ""
    if any(t["runs_unknown"] for t in tried):
        unknown_text = (f"; for {max(t['runs_unknown'] for t in tried)} run(s) it could not be "
                        "told (no eval.jsonl beside the CSV and no steps_to_<t> column: run "
                        "analysis.collect --targets=... or point --root at the sweep directory)")
    source = "given with --target" if requested else "from the runs' target_accuracy"
    raise FigureError(
        f"no run reached any target accuracy tried ({', '.join(f'{t:g}' for t in candidates)}, "
        f"{source}) in {sweep.root}; {best_text}{unknown_text}. Pass a lower --target=...")


def curvature_step(path: str) -> tuple[int, int]:
    """(step, n) of `curvature_<step>[-n].json` (n = 0 for the first result at that step)."""
    match = re.search(r"curvature_(\d+)(?:-(\d+))?\.json$", os.path.basename(path))
    if not match:
        return (-1, -1)
    return int(match.group(1)), int(match.group(2) or 0)
