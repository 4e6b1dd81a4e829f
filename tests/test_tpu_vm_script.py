"""launch/tpu_vm.sh against a fake `gcloud` on PATH that records its arguments and runs each
`ssh --worker=all --command=C` on two fake workers (a home directory each, `curl` answering the
metadata server's worker number), in a session it hangs up when the command returns, as sshd
does. The workers' `python` is a stand-in that logs its arguments and waits to be stopped."""
import os
import shlex
import subprocess
import time

import pytest

from helpers import ROOT

FAKE_GCLOUD = r"""#!/bin/bash
printf '%s\n' "$(printf '%q ' "$@")" >> "$FAKE_ROOT/gcloud.calls"
worker=all command=
for arg in "$@"; do
  case $arg in
    --worker=*) worker=${arg#--worker=} ;;
    --command=*) command=${arg#--command=} ;;
  esac
done
[[ "$3 $4" == "tpu-vm ssh" ]] || exit 0
workers=(0 1)
[[ $worker == all ]] || workers=("$worker")
for w in "${workers[@]}"; do
  HOME=$FAKE_ROOT/worker$w FAKE_WORKER=$w setsid bash -c "$command" &
  session=$!
  wait "$session"
  kill -HUP -- "-$session" 2>/dev/null   # the SSH session ends: its processes get SIGHUP
done
exit 0
"""
FAKE_CURL = "#!/bin/bash\necho \"$FAKE_WORKER\"\n"
FAKE_PYTHON = r"""#!/bin/bash
echo "python $* BSGAP_WORKER_ID=$BSGAP_WORKER_ID BSGAP_GCS_MOUNTS=$BSGAP_GCS_MOUNTS"
touch "$HOME/started"
sleep 30 &
trap 'echo "got SIGTERM"; kill $!; exit 143' TERM
wait
"""


@pytest.fixture
def fake_tpu(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("gcloud", FAKE_GCLOUD), ("curl", FAKE_CURL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    for w in (0, 1):
        venv = tmp_path / f"worker{w}" / "bsgap-venv" / "bin"
        venv.mkdir(parents=True)
        (tmp_path / f"worker{w}" / "bsgap").mkdir()
        (venv / "python").write_text(FAKE_PYTHON)
        (venv / "python").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path / "me"),
           "FAKE_ROOT": str(tmp_path), "TPU_NAME": "bsgap-v4", "ZONE": "us-central2-b",
           "SWEEP_NAME": "bs_lr", "BUCKET": "gs://my-bucket/bsgap"}

    def script(*args, **extra):
        result = subprocess.run(["bash", os.path.join(ROOT, "launch/tpu_vm.sh"), *args],
                                cwd=ROOT, env={**env, **extra}, capture_output=True, text=True,
                                timeout=30)
        return result
    yield script, tmp_path
    script("stop")          # a test that failed half-way leaves no job behind


def _wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_sweep_runs_detached_with_logs_status_and_stop(fake_tpu):
    script, root = fake_tpu
    started = time.monotonic()
    result = script("sweep", "configs/sweeps/embedded_bs_lr.py", "--only=bs16-*")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 20          # returned; the job sleeps 30 s
    assert result.stdout.splitlines() == [f"worker {w}: started bs_lr (pid {pid}), log "
                                          "~/bsgap-jobs/bs_lr.log"
                                          for w, pid in zip((0, 1), _pids(root))]
    call = shlex.split((root / "gcloud.calls").read_text().splitlines()[0])
    assert call[:8] == ["compute", "tpus", "tpu-vm", "ssh", "bsgap-v4", "--zone=us-central2-b",
                        "--worker=all", call[7]] and call[7].startswith("--command=")
    assert all(_wait_for(lambda w=w: (root / f"worker{w}" / "started").exists()) for w in (0, 1))
    # The SSH sessions were hung up; the job runs on, on both workers.
    assert script("status").stdout.splitlines() == [
        f"worker {w}: bs_lr running (pid {pid})" for w, pid in zip((0, 1), _pids(root))]
    again = script("sweep", "configs/sweeps/embedded_bs_lr.py")
    assert "worker 0: bs_lr is already running" in again.stdout
    logs = script("logs", LINES="5").stdout.splitlines()
    for w in (0, 1):
        header = logs.index(f"== worker {w}: {root}/worker{w}/bsgap-jobs/bs_lr.log")
        assert logs[header + 2] == (
            "python -m launch.sweep --sweep=configs/sweeps/embedded_bs_lr.py "
            "--root=/mnt/bsgap/runs/bs_lr --multihost "
            f"--set=data_dir=/mnt/bsgap/tensorflow_datasets --only=bs16-* BSGAP_WORKER_ID={w} "
            "BSGAP_GCS_MOUNTS=/mnt/bsgap=gs://my-bucket/bsgap")
    stopped = script("stop")
    assert stopped.stdout.splitlines() == [f"worker {w}: sent SIGTERM to bs_lr (pid {pid})"
                                           for w, pid in zip((0, 1), _pids(root))]
    ended = ["worker 0: bs_lr exited with status 143", "worker 1: bs_lr exited with status 143"]
    assert _wait_for(lambda: script("status").stdout.splitlines() == ended)
    assert "got SIGTERM" in (root / "worker1" / "bsgap-jobs" / "bs_lr.log").read_text()


def _pids(root):
    return [(root / f"worker{w}" / "bsgap-jobs" / "bs_lr.pid").read_text().strip()
            for w in (0, 1)]


@pytest.mark.parametrize("accelerator, runtime", [
    ("v4-32", "tpu-ubuntu2204-base"), ("v3-8", "tpu-ubuntu2204-base"),
    ("v5litepod-16", "v2-alpha-tpuv5-lite"), ("v5p-8", "v2-alpha-tpuv5"),
    ("v6e-8", "v2-alpha-tpuv6e")])
def test_runtime_follows_the_accelerator_type(fake_tpu, accelerator, runtime):
    script, root = fake_tpu
    assert script("create", ACCELERATOR_TYPE=accelerator).returncode == 0
    assert script("create-queued", ACCELERATOR_TYPE=accelerator).returncode == 0
    create, queued, _ = [shlex.split(line) for line in
                         (root / "gcloud.calls").read_text().splitlines()]
    assert f"--accelerator-type={accelerator}" in create and f"--version={runtime}" in create
    assert f"--runtime-version={runtime}" in queued


def test_runtime_override_and_unknown_accelerator(fake_tpu):
    script, root = fake_tpu
    assert script("create", ACCELERATOR_TYPE="v6e-8", RUNTIME_VERSION="v2-custom").returncode == 0
    assert "--version=v2-custom" in (root / "gcloud.calls").read_text()
    unknown = script("create", ACCELERATOR_TYPE="tpu7x-8")
    assert unknown.returncode == 2
    assert "no default runtime for ACCELERATOR_TYPE=tpu7x-8" in unknown.stderr
    assert "set RUNTIME_VERSION" in unknown.stderr
