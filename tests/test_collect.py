"""The results table on a tiny real sweep of the embedded digits (2 programs at once, 2 simulated
devices each; the trials of one batch size run as one program, ``--group_trials``): every column
against the run's own files, targets recomputed from eval.jsonl against the trainer's own
measurement, and the per-batch-size table against a brute force."""
import json
import math
import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from analysis import collect as C
from helpers import ROOT

SWEEP = """
def get_sweep():
    return {{"config": "configs/digits_mlp.py",
            "overrides": {{"data_dir": {data_dir!r}, "num_epochs": None, "num_steps": 300,
                          "log_every_steps": 10, "eval_every_steps": 30,
                          "checkpoint_every_steps": 300, "target_accuracy": 0.9,
                          "tensorboard": False, "progress_bar": False}},
            "axes": [{{"batch_size": [32, 128]}},
                     # lr 1e4 diverges: a result, with its own row.
                     {{"learning_rate": lambda t: [0.05, 0.3] + ([1e4] if t["batch_size"] == 128
                                                               else [])}}]}}
"""


@pytest.fixture(scope="module")
def sweep_root(data_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("collect")
    sweep = tmp / "sweep.py"
    sweep.write_text(textwrap.dedent(SWEEP.format(data_dir=data_dir)))
    root = tmp / "root"
    result = subprocess.run(
        [sys.executable, "-m", "launch.sweep", f"--sweep={sweep}", f"--root={root}",
         "--parallel=2", "--devices_per_trial=2", "--group_trials"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def _files(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    path = run_dir / "eval.jsonl"        # absent when a run diverged before its first eval
    evals = [json.loads(line) for line in open(path)] if path.exists() else []
    return config, summary, evals


def _same(a, b):
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == pytest.approx(b, rel=1e-12) if isinstance(b, float) else a == b


def test_table_columns_match_each_run(sweep_root, tmp_path):
    out = tmp_path / "runs.csv"
    result = subprocess.run([sys.executable, "-m", "analysis.collect", f"--root={sweep_root}",
                             f"--out={out}", "--targets=0.8,0.9"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "5 run(s)" in result.stdout and "steps to 0.9 accuracy per batch size" in result.stdout
    table = pd.read_csv(out)
    assert list(table.columns[:len(C.REQUIRED_COLUMNS)]) == C.REQUIRED_COLUMNS
    assert sorted(table["run"]) == ["bs128-lr0.05", "bs128-lr0.3", "bs128-lr10000",
                                    "bs32-lr0.05", "bs32-lr0.3"]
    frame = C.collect(str(sweep_root), targets=[0.8, 0.9])
    assert list(frame["run"]) == list(table["run"])       # the CSV is the DataFrame
    for column in C.REQUIRED_COLUMNS + ["steps_to_0.8", "seconds_to_0.9", "axis.learning_rate"]:
        for a, b in zip(table[column], frame[column]):
            assert _same(a if not (isinstance(a, float) and math.isnan(a)) else None,
                         None if pd.isna(b) else b), column

    for row in frame.to_dict("records"):
        config, summary, evals = _files(sweep_root / row["run"])
        assert row["batch_size"] == config["config"]["batch_size"] == row["axis.batch_size"]
        assert row["learning_rate"] == config["resolved"]["scaled_learning_rate"] \
            == row["axis.learning_rate"]
        assert row["num_devices"] == 2 and row["per_device_batch"] == row["batch_size"] // 2
        assert row["ghost_batch_size"] is None or math.isnan(row["ghost_batch_size"])
        assert row["sweep"] == "."
        for key in ("status", "seed", "lr_scaling", "best_eval_accuracy", "final_eval_accuracy",
                    "steps_to_target", "examples_to_target", "seconds_to_target",
                    "examples_per_second"):
            value = row[key] if key in ("status", "lr_scaling") else \
                (None if pd.isna(row[key]) else row[key])
            expected = config["config"][key] if key in ("seed", "lr_scaling") else summary[key]
            assert _same(value, expected), (row["run"], key)
        # Steps to other targets: the first evaluation at or above them.
        for target in (0.8, 0.9):
            hits = [r["step"] for r in evals if r["accuracy"] >= target]
            steps = row[f"steps_to_{target:g}"]
            assert (None if pd.isna(steps) else steps) == (hits[0] if hits else None)
    diverged = frame.set_index("run").loc["bs128-lr10000"]
    assert diverged["status"] == "diverged" and diverged["diverged_at_step"] <= 30


def test_recomputed_target_matches_the_trainer(sweep_root):
    """For the config's own target the table's recomputation from eval.jsonl and metrics.jsonl
    must give the trainer's measured steps and seconds (evaluations fall on logged steps)."""
    frame = C.collect(str(sweep_root), targets=[0.9])
    reached = frame[frame["steps_to_target"].notna()]
    assert len(reached) >= 2, frame[["run", "best_eval_accuracy"]]
    for row in reached.to_dict("records"):
        assert row["steps_to_0.9"] == row["steps_to_target"]
        assert row["examples_to_0.9"] == row["examples_to_target"] \
            == row["steps_to_target"] * row["batch_size"]
        assert row["seconds_to_0.9"] == pytest.approx(row["seconds_to_target"], rel=1e-9)


def test_steps_to_target_per_batch_size_is_the_earliest_trial(sweep_root):
    frame = C.collect(str(sweep_root), targets=[0.8])
    for target, columns in ((None, ("steps_to_target", "seconds_to_target")),
                            (0.8, ("steps_to_0.8", "seconds_to_0.8"))):
        best = C.steps_to_target_by_batch_size(frame, target).set_index("batch_size")
        assert sorted(best.index) == [32, 128]
        for batch_size in (32, 128):
            rows = [r for r in frame.to_dict("records") if r["batch_size"] == batch_size]
            reaching = [r for r in rows if not pd.isna(r[columns[0]])]
            got = best.loc[batch_size]
            assert got["trials"] == len(rows) and got["trials_reaching"] == len(reaching)
            if not reaching:
                assert pd.isna(got["steps_to_target"])
                continue
            first = min(reaching, key=lambda r: (r[columns[0]], r[columns[1]], r["run"]))
            assert got["steps_to_target"] == first[columns[0]]
            assert got["run"] == first["run"] and got["learning_rate"] == first["learning_rate"]
            assert got["min_seconds_to_target"] == min(r[columns[1]] for r in reaching)


def test_incomplete_run_and_seconds_interpolation(sweep_root, tmp_path):
    """A run without summary.json (interrupted) still gets a row; between logged steps the
    training clock is interpolated linearly."""
    root = tmp_path / "root"
    shutil.copytree(sweep_root / "bs32-lr0.3", root / "partial",
                    ignore=shutil.ignore_patterns("checkpoints"))
    (root / "partial" / "summary.json").unlink()
    (row,) = C.collect(str(root)).to_dict("records")
    _, summary, evals = _files(sweep_root / "bs32-lr0.3")
    assert row["status"] == "incomplete" and row["sweep"] is None
    assert row["best_eval_accuracy"] == max(r["accuracy"] for r in evals)
    assert row["steps_to_target"] == summary["steps_to_target"]
    metrics = [{"step": 10, "examples_per_second": 320.0},   # 10 steps x 32 = 320 ex in 1 s
               {"step": 20, "examples_per_second": 160.0}]   # ... in 2 s
    assert C.train_seconds_at(metrics, 32, 10) == 1.0
    assert C.train_seconds_at(metrics, 32, 15) == pytest.approx(2.0)
    assert C.train_seconds_at(metrics, 32, 20) == pytest.approx(3.0)
    assert C.train_seconds_at(metrics, 32, 25) is None
