"""One process per run directory (bsgap/run_lock.py): a second process is refused with exit 2
naming the holder, the first run's files stay whole, the lock dies with its process, and a run
refused at setup leaves no directory behind."""
import os
import signal
import subprocess
import sys
import time

import pytest

from bsgap import logbook
from bsgap.run_lock import LOCK_FILE, acquire
from bsgap.trainer import Trainer
from bsgap.workdir import WorkdirError
from helpers import ROOT, tiny_config


def test_second_trainer_on_a_locked_workdir_is_refused(data_dir, tmp_path):
    lock = acquire(str(tmp_path / "w"))
    with pytest.raises(WorkdirError, match=rf"in use by another bsgap process \(host \S+, pid "
                                           rf"{os.getpid()}, started "):
        Trainer(tiny_config(data_dir), str(tmp_path / "w"))
    lock.release()
    summary = Trainer(tiny_config(data_dir), str(tmp_path / "w")).run()   # free again
    assert summary["status"] == "complete"
    # Released at the end of the run: the same directory resumes (here: is found finished).
    again = Trainer(tiny_config(data_dir), str(tmp_path / "w")).run()
    assert again == summary


def test_refused_setup_leaves_no_new_directory(data_dir, tmp_path):
    with pytest.raises(Exception, match="microbatch"):
        Trainer(tiny_config(data_dir, batch_size=32, num_devices=2, microbatch_size=7),
                str(tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()


def _cli(workdir, data_dir, steps):
    return [sys.executable, "-m", "bsgap.train", "--config=configs/digits_mlp.py",
            f"--workdir={workdir}", f"--config.data_dir={data_dir}", "--config.progress_bar=False",
            "--config.num_devices=1", "--config.num_epochs=None", f"--config.num_steps={steps}",
            "--config.log_every_steps=10", "--config.eval_every_steps=1000",
            "--config.checkpoint_every_steps=1000", "--config.tensorboard=False"]


def test_concurrent_processes_one_refused_and_the_lock_dies_with_its_holder(data_dir, tmp_path):
    workdir = tmp_path / "w"
    first = subprocess.Popen(_cli(workdir, data_dir, 200_000), cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (workdir / logbook.METRICS_FILE).exists():
            time.sleep(0.1)
        assert (workdir / logbook.METRICS_FILE).exists(), "the first run did not start"
        second = subprocess.run(_cli(workdir, data_dir, 200_000), cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert first.poll() is None   # the first run goes on, its files untouched
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    records = logbook.read_jsonl(str(workdir / logbook.METRICS_FILE))
    assert [r["step"] for r in records] == list(range(10, 10 * len(records) + 1, 10))
    assert (workdir / LOCK_FILE).exists()
    acquire(str(workdir)).release()   # the killed holder's lock went with it
