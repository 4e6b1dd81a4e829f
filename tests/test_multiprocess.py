"""A real multi-process run on one machine: 2 processes x 4 CPU devices, coordinating over
localhost through jax.distributed (gloo CPU collectives), against one process with 8 devices.

The same 8-device data-parallel step must give the same parameters whether the 8 devices live in
one process or in two (each process feeding its 4 devices' rows of every global batch), and only
process 0 may write the run's JSON files.
"""
import json
import os
import sys

import jax
import numpy as np
import pytest

from bsgap import parallel
from bsgap.checkpoint import restore_numpy
from bsgap.trainer import Trainer
from helpers import ROOT, load_config
from local_cluster import cluster_env, free_port, run_processes

STEPS = 3
OVERRIDES = {"num_epochs": None, "num_steps": STEPS, "log_every_steps": 1,
             "eval_every_steps": STEPS, "checkpoint_every_steps": STEPS, "tensorboard": False,
             "progress_bar": False}


def _params(workdir: str, step: int) -> list[np.ndarray]:
    """The checkpoint's parameters as numpy arrays, whatever topology wrote them."""
    return jax.tree_util.tree_leaves(restore_numpy(workdir, step)["params"])


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in open(path) if line.strip()]


def test_two_processes_match_one_process(data_dir, tmp_path):
    assert jax.device_count() == 8
    multi, single = tmp_path / "multi", tmp_path / "single"
    flags = [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
    port = free_port()
    run_processes([[sys.executable, "-m", "bsgap.train", "--config=configs/digits_mlp.py",
                    f"--workdir={multi}", f"--config.data_dir={data_dir}", *flags,
                    f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                    f"--process_id={i}"] for i in range(2)], cluster_env(4))

    # The reference: this pytest process, one process with 8 devices, the same config.
    config = load_config("configs/digits_mlp.py", data_dir=data_dir, **OVERRIDES)
    reference = Trainer(config, str(single)).run()

    stored = json.loads((multi / "config.json").read_text())
    assert stored["environment"]["num_processes"] == 2
    assert stored["environment"]["num_devices"] == 8
    assert stored["resolved"]["layout"]["per_device_batch"] == 32 // 8
    # Only process 0 writes: one metrics record per step, one eval, not two of each.
    assert [r["step"] for r in _lines(multi / "metrics.jsonl")] == [1, 2, 3]
    assert [r["step"] for r in _lines(multi / "eval.jsonl")] == [3]
    summary = json.loads((multi / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["steps"] == STEPS

    # Same parameters, up to the summation order of the cross-process all-reduce (gloo).
    initial = Trainer(load_config("configs/digits_mlp.py", data_dir=data_dir,
                                  **{**OVERRIDES, "num_steps": 1}), str(tmp_path / "init"))
    initial._build()
    init_leaves = jax.tree_util.tree_leaves(jax.device_get(initial.trial_state(0).params))
    for a, b, p0 in zip(_params(str(multi), STEPS), _params(str(single), STEPS), init_leaves):
        update = np.abs(b - p0).max()
        assert update > 1e-3, "3 steps must move every parameter tensor measurably"
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    # Per-step training losses agree too (each is the mean over the global batch of 32).
    losses = [(r["train_loss"], s["train_loss"]) for r, s in
              zip(_lines(multi / "metrics.jsonl"), _lines(single / "metrics.jsonl"))]
    for a, b in losses:
        assert a == pytest.approx(b, rel=1e-6)
    assert summary["final_eval_accuracy"] == reference["final_eval_accuracy"]


def test_initialize_distributed_detection(monkeypatch):
    """Which environments call jax.distributed.initialize, and with what arguments."""
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    for var in ("SLURM_NTASKS", "TPU_WORKER_HOSTNAMES", "BSGAP_MULTIHOST", "CUDA_VISIBLE_DEVICES",
                "SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "SLURM_GPUS_ON_NODE", "JAX_LOCAL_DEVICE_IDS"):
        monkeypatch.delenv(var, raising=False)
    parallel.initialize_distributed()
    assert calls == []                                   # one process: nothing
    monkeypatch.setenv("SLURM_NTASKS", "1")
    parallel.initialize_distributed()
    assert calls == []
    parallel.initialize_distributed("10.0.0.1:1234", 2, 1)
    assert calls.pop() == {"coordinator_address": "10.0.0.1:1234", "num_processes": 2,
                           "process_id": 1}
    for var, value in (("SLURM_NTASKS", "4"), ("TPU_WORKER_HOSTNAMES", "a,b"),
                       ("BSGAP_MULTIHOST", "1")):
        monkeypatch.setenv(var, value)
        parallel.initialize_distributed()
        assert calls.pop() == {}                         # JAX auto-detects the cluster
        monkeypatch.delenv(var)
