"""SIGINT / SIGTERM stop a run with a checkpoint at the current step and one line (exit 130 /
143); the rerun resumes there and ends exactly as an uninterrupted run; the same signal twice
aborts at once, a different one meanwhile is ignored (bsgap/interrupt.py)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np

from bsgap import logbook
from bsgap.trainer import Trainer, final_params
from helpers import ROOT, load_config

TIMING = {"examples_per_second", "seconds_to_target", "train_seconds", "compile_seconds"}
# 2,000 steps: the signal comes at the first log (step 100), ~1,900 steps (~8 s) before the end.
OVERRIDES = dict(num_epochs=None, num_steps=2000, checkpoint_every_steps=1000,
                 eval_every_steps=1000, log_every_steps=100, tensorboard=False,
                 progress_bar=False, num_devices=1)


def _cli(workdir, data_dir):
    return [sys.executable, "-m", "bsgap.train", "--config=configs/digits_mlp.py",
            f"--workdir={workdir}", f"--config.data_dir={data_dir}",
            *[f"--config.{k}={v}" for k, v in OVERRIDES.items()]]


def _checkpoints(workdir):
    path = os.path.join(workdir, "checkpoints")
    return sorted(int(d) for d in os.listdir(path) if d.isdigit()) if os.path.isdir(path) else []


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _interrupt(workdir, data_dir, sig):
    proc = subprocess.Popen(_cli(workdir, data_dir), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.exists(os.path.join(workdir, "metrics.jsonl")):
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_sigint_checkpoints_and_the_rerun_equals_an_uninterrupted_run(data_dir, tmp_path):
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    Trainer(load_config("configs/digits_mlp.py", data_dir=data_dir, **OVERRIDES), str(full)).run()

    code, err = _interrupt(stopped, data_dir, signal.SIGINT)
    assert code == 130, err[-2000:]
    assert "Traceback" not in err
    line = [x for x in err.splitlines() if x.startswith("bsgap.train: interrupted at step")]
    assert len(line) == 1, err[-2000:]
    step = int(line[0].split("step ")[1].split()[0])
    assert "checkpoint saved; rerun the same command to resume" in line[0]
    assert 100 <= step < OVERRIDES["num_steps"] and _checkpoints(stopped)[-1] == step
    assert not (stopped / "summary.json").exists()

    rerun = subprocess.run(_cli(stopped, data_dir), cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming from the checkpoint at step {step}" in rerun.stderr
    for name in ("metrics.jsonl", "eval.jsonl"):
        assert _strip(logbook.read_jsonl(str(full / name))) == \
            _strip(logbook.read_jsonl(str(stopped / name))), name
    a, b = (logbook.read_json(str(d / "summary.json")) for d in (full, stopped))
    assert {k: v for k, v in a.items() if k not in TIMING} == \
        {k: v for k, v in b.items() if k not in TIMING}
    for x, y in zip(jax.tree_util.tree_leaves(final_params(str(full))),
                    jax.tree_util.tree_leaves(final_params(str(stopped)))):
        np.testing.assert_array_equal(x, y)


def test_sigterm_exits_143_with_a_checkpoint(data_dir, tmp_path):
    code, err = _interrupt(tmp_path / "w", data_dir, signal.SIGTERM)
    assert code == 143 and "Traceback" not in err, err[-2000:]
    assert "interrupted at step" in err and _checkpoints(tmp_path / "w")


def test_same_signal_twice_aborts_and_another_is_ignored():
    script = textwrap.dedent("""
        import os, signal, sys, time
        from bsgap.interrupt import stop_on_signals
        with stop_on_signals() as state:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            print("requested", state.requested, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)     # a different signal: ignored
            time.sleep(0.2)
            print("still running", flush=True)
            os.kill(os.getpid(), signal.SIGINT)      # the same again: abort at once
            time.sleep(5)
            print("not reached", flush=True)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 130, result
    assert result.stdout.split("\n")[:2] == [f"requested {int(signal.SIGINT)}", "still running"]
    assert "not reached" not in result.stdout
