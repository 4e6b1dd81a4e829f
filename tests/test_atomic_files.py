"""Files replaced while others write and read them: threads and processes writing one JSON file
at once (what every TPU worker writing ROOT/sweep.json did), each read sees one whole write."""
import glob
import json
import os
import subprocess
import sys
import threading

import pytest

from bsgap import atomic_file, logbook
from helpers import ROOT
from launch import plan, state

WRITES = 40


def _payload(writer: int, i: int) -> dict:
    return {"writer": writer, "i": i, "pad": [writer * 1000 + i] * 2000}  # ~20 kB: many writes


def test_concurrent_writers_leave_one_whole_file_and_no_temporaries(tmp_path):
    path = str(tmp_path / "sweep.json")
    state.write_json_atomic(path, _payload(-1, 0))
    # Two other processes and four threads write the same file, while a reader reads it.
    script = ("import sys; from launch.state import write_json_atomic; w = int(sys.argv[2]);\n"
              f"for i in range({WRITES}): write_json_atomic(sys.argv[1], "
              "{'writer': w, 'i': i, 'pad': [w * 1000 + i] * 2000})")
    procs = [subprocess.Popen([sys.executable, "-c", script, path, str(w)], cwd=ROOT)
             for w in (10, 11)]
    seen, errors, done = [], [], threading.Event()

    def read():
        while not done.is_set():
            try:
                seen.append(logbook.read_json(path))
            except Exception as err:   # a torn or half-renamed file
                errors.append(err)

    def write(w):
        for i in range(WRITES):
            (state.write_json_atomic if w % 2 else logbook.write_json_atomic)(path, _payload(w, i))

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    reader.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    done.set()
    reader.join()
    assert errors == []
    assert len(seen) > 10
    # Every read is exactly one writer's write (no mix of two), and the last one is whole.
    for record in seen + [logbook.read_json(path)]:
        assert record == _payload(record["writer"], record["i"])
    assert sorted(os.listdir(tmp_path)) == ["sweep.json"]
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~atomic_file._UMASK)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "summary.json")
    logbook.write_json_atomic(path, {"status": "complete"})
    with pytest.raises((TypeError, ValueError)):     # not JSON: fails mid-write
        logbook.write_json_atomic(path, {"bad": object()})
    assert logbook.read_json(path) == {"status": "complete"}
    assert glob.glob(str(tmp_path / ".*")) == []
    with pytest.raises(ValueError, match="gs://b/x.json: atomic replacement needs a local"):
        logbook.write_json_atomic("gs://b/x.json", {})


def test_only_worker_zero_writes_the_plan(tmp_path, monkeypatch):
    from launch import spec

    sweep_file = tmp_path / "s.py"
    sweep_file.write_text("def get_sweep():\n    return {'config': 'configs/digits_mlp.py', "
                          "'axes': [{'batch_size': [16, 32]}]}\n")
    sweep = spec.load_sweep(str(sweep_file), {})
    trials = spec.expand(sweep)
    root = tmp_path / "root"
    for var in ("BSGAP_WORKER_ID", "TPU_WORKER_ID", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TPU_WORKER_ID", "1")
    data = plan.write_plan(sweep, trials, str(root), multihost=True)
    assert [t["name"] for t in data["trials"]] == [t.name for t in trials]
    assert not (root / plan.SWEEP_FILE).exists()       # worker 1: computed, not written
    monkeypatch.setenv("BSGAP_WORKER_ID", "0")         # launch/tpu_vm.sh's, first
    plan.write_plan(sweep, trials, str(root), multihost=True)
    assert json.loads((root / plan.SWEEP_FILE).read_text()) == data
