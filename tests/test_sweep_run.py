"""A real sweep on the embedded digits, killed mid-way and run again: only the unfinished trials
run, the interrupted one resumes from its checkpoint, a failing trial is recorded and the sweep
goes on."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from helpers import ROOT

SWEEP = """
def get_sweep():
    return {{"config": "configs/digits_mlp.py",
            "overrides": {{"data_dir": {data_dir!r}, "num_epochs": None, "num_steps": 2000,
                          "checkpoint_every_steps": 100, "eval_every_steps": 500,
                          "log_every_steps": 100, "num_devices": 1, "tensorboard": False,
                          "progress_bar": False}},
            # bs4096 exceeds the 1,437 training examples: the CLI refuses it (exit 2).
            "axes": [{{"batch_size": [16, 32, 4096]}}, {{"seed": [0]}}]}}
"""


def _checkpoints(workdir):
    path = os.path.join(workdir, "checkpoints")
    return sorted(int(d) for d in os.listdir(path) if d.isdigit()) if os.path.isdir(path) else []


def test_kill_mid_sweep_then_rerun_runs_only_unfinished_trials(data_dir, tmp_path):
    sweep = tmp_path / "sweep.py"
    sweep.write_text(textwrap.dedent(SWEEP.format(data_dir=data_dir)))
    root = tmp_path / "root"
    cmd = [sys.executable, "-m", "launch.sweep", f"--sweep={sweep}", f"--root={root}"]
    first, second, bad = (root / n for n in ("bs16-s0", "bs32-s0", "bs4096-s0"))

    # Sequential sweep in its own process group; kill the whole group (runner and trial) with
    # SIGKILL once trial 0 finished and trial 1 wrote a checkpoint.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (first / "summary.json").exists() and _checkpoints(second):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _checkpoints(second)
    assert (first / "summary.json").exists(), "trial 0 must have finished before the kill"
    assert killed_at and killed_at[-1] < 2000 and not (second / "summary.json").exists()
    assert not bad.exists(), "trial 2 must not have started"
    first_summary = (first / "summary.json").read_bytes()
    first_mtime = os.stat(first / "summary.json").st_mtime_ns

    # The sweep's plan: every trial, with its axes and command.
    plan = json.loads((root / "sweep.json").read_text())
    assert [t["name"] for t in plan["trials"]] == ["bs16-s0", "bs32-s0", "bs4096-s0"]
    assert plan["trials"][1]["axes"] == {"batch_size": 32, "seed": 0}

    dry = subprocess.run(cmd + ["--dry_run"], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert "[0] bs16-s0: finished (complete)" in dry.stdout
    assert f"[1] bs32-s0: interrupted (checkpoint {killed_at[-1]})" in dry.stdout
    assert "[2] bs4096-s0: new" in dry.stdout

    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = rerun.stdout
    assert rerun.returncode == 1, out + rerun.stderr           # one trial failed
    assert "[0] bs16-s0: skipped, finished (complete)" in out
    assert "[1] bs32-s0: resuming (interrupted (checkpoint" in out
    assert "[1] bs32-s0: complete in" in out
    assert "[2] bs4096-s0: starting (new)" in out
    assert "[2] bs4096-s0: failed (exit 2" in out
    assert "3 trial(s), 1 skipped (finished before), 2 run, 1 failed" in out
    assert "bs16-s0: starting" not in out and "bs16-s0: resuming" not in out

    # Trial 0 was not touched; trial 1 resumed from a checkpoint and finished.
    assert (first / "summary.json").read_bytes() == first_summary
    assert os.stat(first / "summary.json").st_mtime_ns == first_mtime
    log = (root / "logs" / "bs32-s0.log").read_text()
    assert "resuming from the checkpoint at step" in log
    summary = json.loads((second / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["steps"] == 2000
    steps = [json.loads(line)["step"] for line in open(second / "metrics.jsonl")]
    assert steps == list(range(100, 2001, 100)), "a resumed run's records are its steps once"

    # The failure is recorded with its exit status and its reason in the log.
    record = json.loads((root / "logs" / "bs4096-s0.json").read_text())
    assert record["outcome"] == "failed" and record["returncode"] == 2
    assert "batch_size=4096 exceeds the 1437 training examples" in \
        (root / "logs" / "bs4096-s0.log").read_text()
    assert json.loads((root / "logs" / "bs32-s0.json").read_text())["outcome"] == "complete"


def test_trials_die_with_a_killed_runner(data_dir, tmp_path):
    """SIGKILL of the runner alone: its running trial gets SIGTERM (the parent-death signal the
    trial asks for, bsgap/parent_death.py) and is gone within seconds, so a rerun finds the
    directory free and resumes it."""
    sweep = tmp_path / "sweep.py"
    sweep.write_text(textwrap.dedent(SWEEP.format(data_dir=data_dir)).replace(
        '"num_steps": 2000', '"num_steps": 200000'))
    root = tmp_path / "root"
    runner = subprocess.Popen([sys.executable, "-m", "launch.sweep", f"--sweep={sweep}",
                               f"--root={root}", "--only=bs16-*"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock = root / "bs16-s0" / ".bsgap.lock"
    deadline = time.time() + 120
    while time.time() < deadline and not (root / "bs16-s0" / "metrics.jsonl").exists():
        time.sleep(0.1)
    trial_pid = json.loads(lock.read_text())["pid"]
    assert trial_pid != runner.pid
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.kill(trial_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(trial_pid, signal.SIGKILL)
        raise AssertionError(f"trial process {trial_pid} outlived its killed runner")
    from bsgap.run_lock import acquire
    acquire(str(root / "bs16-s0")).release()   # free for a rerun
