"""Multi-host decisions are process 0's (issue 16, parts 5 and 7): 2 processes over localhost
(jax.distributed, gloo), process 1 seeing a different filesystem than process 0
(tests/multihost_decisions_worker.py); and an embedded dataset built by two runs at once."""
import json
import os
import shutil
import sys
import threading

import jax
import numpy as np
import tensorflow_datasets as tfds

from bsgap import logbook
from bsgap.checkpoint import restore_numpy
from bsgap.data import catalog
from bsgap.trainer import Trainer
from bsgap.workdir import plain_config
from helpers import ROOT, tiny_config
from local_cluster import cluster_env, free_port, run_processes

def test_process_1_follows_process_0s_view(data_dir, tmp_path):
    config = tiny_config(data_dir, num_steps=20, checkpoint_every_steps=10, eval_every_steps=10)
    reference = tmp_path / "reference"
    Trainer(config, str(reference)).run()
    finished, interrupted = tmp_path / "finished", tmp_path / "interrupted"
    shutil.copytree(reference, finished)
    shutil.copytree(reference, interrupted)
    # What a kill after step 10's checkpoint leaves (the later records are recomputed).
    (interrupted / "summary.json").unlink()
    shutil.rmtree(interrupted / "checkpoints" / "20")
    spec = {"config": config.to_dict(), "finished": str(finished),
            "interrupted": str(interrupted), "new": str(tmp_path / "new"),
            "expected": plain_config(config), "empty_data_dir": str(tmp_path / "tfds")}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    port = free_port()
    # Unoptimized XLA:CPU code compiles ~3x faster; nothing here depends on its speed.
    env = cluster_env(1, PYTHONPATH=ROOT)
    env["XLA_FLAGS"] += (" --xla_backend_optimization_level=0"
                         " --xla_llvm_disable_expensive_passes=true")
    run_processes([[sys.executable, os.path.join(ROOT, "tests", "multihost_decisions_worker.py"),
                    str(port), str(i), str(tmp_path / "spec.json"), str(tmp_path / f"out{i}.json")]
                   for i in range(2)], env)
    out = [json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(2)]
    assert [o["devices"] for o in out] == [2, 2]

    # The dataset: built once, by process 0; process 1 found it prepared after waiting.
    assert [o["built"] for o in out] == [["sklearn_digits"], []]

    # The finished run: both processes return its summary as written, nothing built or trained.
    stored = logbook.read_json(str(reference / "summary.json"))
    assert [o["finished_summary"] for o in out] == [stored, stored]
    assert [o["finished_trials_built"] for o in out] == [0, 0]
    # The interrupted one: process 1 (which saw no run and no checkpoint) resumes too, from
    # process 0's checkpoint at step 10 -- its parameters are that checkpoint's.
    assert [o["interrupted_modes"] for o in out] == [["resume"], ["resume"]]
    assert [o["interrupted_start_step"] for o in out] == [10, 10]
    def sums(run, step):
        return [float(np.asarray(p, np.float64).sum())
                for p in jax.tree_util.tree_leaves(restore_numpy(str(run), step)["params"])]

    assert out[0]["interrupted_param_sums"] == out[1]["interrupted_param_sums"] == \
        sums(interrupted, 10) != sums(reference, 20)
    # The runner's states (launch/agree.py): process 0's on both.
    assert [o["runner_states"] for o in out] == [["finished", "interrupted", "new"]] * 2


def test_two_runs_building_one_dataset_at_once_build_it_once(tmp_path, monkeypatch):
    """Two runs on one empty data dir (threads here; the flock excludes across processes the
    same way): one builds, the other waits for it and reads what it built."""
    built, errors = [], []
    original = tfds.core.DatasetBuilder.download_and_prepare
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                        lambda self, *a, **k: built.append(self.name) or original(self, *a, **k))
    results = []

    def run():
        try:
            results.append(catalog.prepared_builder("sklearn_digits", data_dir=str(tmp_path))
                           .info.splits["train"].num_examples)
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and built == ["sklearn_digits"] and results == [1437, 1437]
    assert not [p for p in (tmp_path / "sklearn_digits").rglob("*") if "incomplete" in p.name]


def test_multihost_runner_and_cluster_task_follow_the_agreed_states(tmp_path, monkeypatch):
    """Locally every trial directory is empty ('new'); process 0 (launch.agree, faked here: the
    2-process test above runs it for real) says trial 0 finished and trial 1 is a conflict. A
    multi-host runner skips and records what process 0 says, a cluster task exits on it."""
    from launch import agree, runner, spec
    from launch.state import TrialState

    (tmp_path / "s.py").write_text(
        "def get_sweep():\n    return {'config': 'configs/digits_mlp.py', "
        "'axes': [{'batch_size': [16, 32, 64]}]}\n")
    sweep = spec.load_sweep(str(tmp_path / "s.py"))
    trials = spec.expand(sweep)
    root = tmp_path / "root"
    (root / runner.LOGS_DIR).mkdir(parents=True)   # what LocalRunner.run() makes first
    answers = {trials[0].name: TrialState("finished", status="complete"),
               trials[1].name: TrialState("conflict", detail="batch_size: 8 in the run vs 32"),
               trials[2].name: TrialState("interrupted", checkpoint_step=30)}
    asked = []

    def ask(pairs, *, env, cwd):
        asked.append(env.get("BSGAP_MULTIHOST"))
        return [answers[os.path.basename(w)] for w, _ in pairs]

    monkeypatch.setattr(agree, "ask", ask)
    local = runner.LocalRunner(sweep, trials, str(root), multihost=True, out=lambda line: None)
    counts = {"skipped": 0, "failed": 0}
    entries = local.unfinished(counts)
    assert counts == {"skipped": 1, "failed": 1}
    assert [(t.name, s) for t, s, _ in entries] == [(trials[2].name, answers[trials[2].name])]
    assert runner.run_one(sweep, trials[0], str(root), multihost=True) == 0   # no exec
    assert runner.run_one(sweep, trials[1], str(root), multihost=True) == 2
    assert asked == ["1", "1", "1"]
    # Single-host runners read the directories themselves.
    assert [s.kind for _, s, _ in runner.LocalRunner(sweep, trials, str(root)).unfinished()] == \
        ["new"] * 3
