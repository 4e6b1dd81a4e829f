"""The run directory: config.json, metrics.jsonl, eval.jsonl, summary.json, tensorboard/.

Only process 0 writes. On resume, records past the restored checkpoint's step are dropped from the
JSONL files (they belong to the part of the run that is being recomputed), so a resumed run's
files equal an uninterrupted run's, apart from wall-clock fields.
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

from bsgap import atomic_file

CONFIG_FILE, METRICS_FILE, EVAL_FILE, SUMMARY_FILE = (
    "config.json", "metrics.jsonl", "eval.jsonl", "summary.json")
FINAL_STATUSES = ("complete", "diverged", "target_reached", "early_stopped")
TENSORBOARD_DIR = "tensorboard"
# Record fields that are counters or labels, not curves: kept in the JSONL, not on the board.
TENSORBOARD_COUNTERS = frozenset({"step", "epoch", "examples", "num_examples", "split"})


def _plain(value: Any):
    """JSON-safe plain Python value (numpy scalars -> float/int, non-finite -> None)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class CorruptFileError(ValueError):
    """A run file that cannot be parsed; the message names the file (and line)."""


def read_json(path: str):
    with open(path) as f:
        text = f.read()
    try:
        return json.loads(text)
    except ValueError as err:
        raise CorruptFileError(f"{path} is not valid JSON ({err}); it was cut or edited. Move it "
                               "away (or restore it) and rerun") from None


def write_json_atomic(path: str, data: dict) -> None:
    with atomic_file.replacing(path) as f:
        json.dump(data, f, indent=2, sort_keys=True, default=_plain)
        f.write("\n")


def read_jsonl(path: str) -> list[dict]:
    """The records of a JSONL file ([] when absent). A final line cut short (what a kill during a
    write leaves) is dropped with a warning; any other unreadable line raises CorruptFileError
    naming the file and the line."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = f.read().split("\n")
    records = []
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as err:
            if i == last:
                print(f"[bsgap] warning: {path}: line {i + 1} is cut short (a write was "
                      "interrupted); dropped", file=sys.stderr)
                break
            raise CorruptFileError(f"{path}, line {i + 1}: not valid JSON ({err}); the file was "
                                   "edited or damaged. Move it away (or repair that line) and "
                                   "rerun") from None
    return records


def truncate_jsonl(path: str, max_step: int) -> None:
    """Keep only records with step <= max_step (a resumed run recomputes the rest)."""
    if not os.path.exists(path):
        return
    kept = [r for r in read_jsonl(path) if r["step"] <= max_step]
    with atomic_file.replacing(path) as f:
        for record in kept:
            f.write(json.dumps(record, sort_keys=True) + "\n")


class Logbook:
    """Appends metric records to JSONL files and TensorBoard (process 0 only)."""

    def __init__(self, workdir: str, *, enabled: bool = True, tensorboard: bool = True,
                 start_step: int = 0):
        """``start_step``: the step the run continues from (its checkpoint's; 0 for a new run or
        one resumed before its first checkpoint). TensorBoard events after it, written by an
        interrupted attempt, are dropped, and the new event file marks the restart."""
        self.workdir, self.enabled = workdir, enabled
        self._files: dict[str, Any] = {}
        self._tb = None
        if enabled and tensorboard:
            from bsgap.tb_events import ScalarWriter, truncate_event_files   # no TensorFlow

            logdir = os.path.join(workdir, TENSORBOARD_DIR)
            restarted = os.path.isdir(logdir)
            if restarted:
                truncate_event_files(logdir, start_step)
            self._tb = ScalarWriter(logdir, restart_step=start_step + 1 if restarted else None)

    def _append(self, name: str, record: dict) -> None:
        if name not in self._files:
            self._files[name] = open(os.path.join(self.workdir, name), "a")
        f = self._files[name]
        f.write(json.dumps({k: _plain(v) for k, v in record.items()}, sort_keys=True) + "\n")
        f.flush()

    def _scalars(self, prefix: str, record: dict) -> None:
        """One event per record: every numeric field but the counters as a scalar at its step,
        tagged ``prefix/key`` with the key's own ``prefix_`` dropped (``train/loss``)."""
        if self._tb is None:
            return
        values = {}
        for key, value in record.items():
            value = _plain(value)
            if key in TENSORBOARD_COUNTERS or isinstance(value, bool) \
                    or not isinstance(value, (int, float)):
                continue
            values[f"{prefix}/{key.removeprefix(prefix + '_')}"] = float(value)
        self._tb.scalars(int(record["step"]), values)

    def train(self, record: dict) -> None:
        if self.enabled:
            self._append(METRICS_FILE, record)
            self._scalars("train", record)

    def eval(self, record: dict) -> None:
        if self.enabled:
            self._append(EVAL_FILE, record)
            self._scalars(record.get("split", "eval"), record)

    def summary(self, summary: dict) -> None:
        if self.enabled:
            write_json_atomic(os.path.join(self.workdir, SUMMARY_FILE), summary)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
        if self._tb is not None:
            self._tb.close()
