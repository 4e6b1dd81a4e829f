"""Run a sweep's trials on this machine: one after another, or N at once on disjoint devices.

Every trial is its own ``python -m bsgap.train`` process in its own run directory
``ROOT/<name>``, so a sweep is resumable by construction:

* a trial whose directory holds ``summary.json`` with a final status and a ``config.json`` whose
  config equals the trial's expected config is *finished* and skipped (``diverged`` counts: a
  divergence is a result);
* a trial with a ``config.json`` but no final summary was *interrupted*: running it again resumes
  from its latest checkpoint (the CLI does that);
* a directory holding a different config is a *conflict* (the sweep file or base config changed):
  it is recorded as failed, never overwritten.

The runner writes ``ROOT/sweep.json`` (the plan: every trial's name, axes, overrides, command),
``ROOT/logs/<name>.log`` (the trial's stdout and stderr, appended on every attempt) and
``ROOT/logs/<name>.json`` (the last attempt's outcome: finished status, or failed with the exit
code). A failed trial is recorded and the sweep goes on; the runner exits 1 when any trial failed.

Concurrent trials get disjoint devices through the environment of their process: GPUs through
``CUDA_VISIBLE_DEVICES``; on a CPU-only machine each trial gets its own simulated CPU devices
(``--xla_force_host_platform_device_count``). Splitting one TPU host's chips between processes
is not supported: on TPU run one trial at a time on all chips (``parallel=1``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

from launch.spec import REPO_ROOT, Sweep, Trial, command_string, expected_config, trial_command

FINAL_STATUSES = ("complete", "diverged", "target_reached", "early_stopped")
SWEEP_FILE = "sweep.json"
LOGS_DIR = "logs"


@dataclasses.dataclass(frozen=True)
class TrialState:
    """Where a trial's run directory stands: new | interrupted | finished | conflict."""

    kind: str
    status: str | None = None          # summary status of a finished trial
    checkpoint_step: int | None = None  # latest checkpoint of an interrupted trial
    detail: str = ""                   # the differing fields of a conflict

    def describe(self) -> str:
        if self.kind == "finished":
            return f"finished ({self.status})"
        if self.kind == "interrupted":
            step = "no checkpoint" if self.checkpoint_step is None \
                else f"checkpoint {self.checkpoint_step}"
            return f"interrupted ({step})"
        if self.kind == "conflict":
            return "conflict"
        return "new"


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_json_atomic(path: str, data) -> None:
    tmp = f"{path}.{socket.gethostname()}.{os.getpid()}.tmp"  # hosts share the filesystem
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(stored: dict, expected: dict) -> list[str]:
    a, b = _flatten(stored), _flatten(expected)
    return [f"{k}: {a.get(k, '<absent>')!r} in the run vs {b.get(k, '<absent>')!r} in the sweep"
            for k in sorted(set(a) | set(b)) if a.get(k, "<absent>") != b.get(k, "<absent>")]


def latest_checkpoint_step(workdir: str) -> int | None:
    """The newest complete orbax checkpoint (``checkpoints/<step>``; temporaries have suffixes)."""
    path = os.path.join(workdir, "checkpoints")
    steps = [int(d) for d in os.listdir(path) if d.isdigit()] if os.path.isdir(path) else []
    return max(steps) if steps else None


def trial_state(workdir: str, expected: dict) -> TrialState:
    stored = _read_json(os.path.join(workdir, "config.json"))
    if stored is None:
        return TrialState("new")
    differences = config_differences(stored.get("config", {}), expected)
    if differences:
        return TrialState("conflict", detail="; ".join(differences))
    summary = _read_json(os.path.join(workdir, "summary.json")) or {}
    if summary.get("status") in FINAL_STATUSES:
        return TrialState("finished", status=summary["status"])
    return TrialState("interrupted", checkpoint_step=latest_checkpoint_step(workdir))


# ------------------------------------------------------------------------------------ the plan
def plan(sweep: Sweep, trials: list[Trial], root: str) -> dict:
    """``ROOT/sweep.json``: the sweep file, base config, fixed fields and every trial."""
    return {
        "sweep": sweep.path, "config": sweep.config,
        "overrides": {k: v for k, v in sweep.overrides.items()},
        "axes": [list(axis) for axis in sweep.axes], "num_trials": len(trials),
        "trials": [{**t.to_json(), "workdir": t.name,
                    "command": command_string(trial_command(sweep, t, root, python="python"))}
                   for t in trials],
    }


def write_plan(sweep: Sweep, trials: list[Trial], root: str) -> dict:
    os.makedirs(root, exist_ok=True)
    data = json.loads(json.dumps(plan(sweep, trials, root)))
    path = os.path.join(root, SWEEP_FILE)
    if _read_json(path) != data:
        _write_json_atomic(path, data)
    return data


def check_against_plan(root: str, trial: Trial) -> str | None:
    """A message when ``ROOT/sweep.json`` names a different trial at this index (the sweep file
    changed since the plan was written, e.g. between ``sbatch`` and the array task)."""
    stored = _read_json(os.path.join(root, SWEEP_FILE))
    if stored is None:
        return None
    entries = {t["index"]: t for t in stored.get("trials", [])}
    entry = entries.get(trial.index)
    mine = json.loads(json.dumps(trial.to_json()))
    if entry is None or entry["name"] != mine["name"] or entry["overrides"] != mine["overrides"]:
        theirs = entry["name"] if entry else "no trial"
        return (f"{os.path.join(root, SWEEP_FILE)} has {theirs} at index {trial.index} but the "
                f"sweep file expands to {trial.name}: the sweep changed since it was planned. "
                "Plan it again (rerun the submitting command: it rewrites sweep.json) and "
                "resubmit")
    return None


def dataset_prepared(dataset: str, data_dir: str | None) -> bool:
    """Whether a TFDS dataset looks prepared (a dataset_info.json under data_dir/name/...)."""
    base = os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR")
                              or "~/tensorflow_datasets")
    for directory, _, files in os.walk(os.path.join(base, *dataset.split("/"))):
        if "dataset_info.json" in files and re.fullmatch(r"\d+\.\d+\.\d+",
                                                         os.path.basename(directory)):
            return True   # a finished version directory, not an incomplete.* temporary
    return False


# ------------------------------------------------------------------------------------ devices
def visible_gpus() -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi -L``."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d for d in env.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU")]


def _with_cpu_device_count(xla_flags: str, count: int) -> str:
    flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", xla_flags).split()
    return " ".join(flags + [f"--xla_force_host_platform_device_count={count}"])


def slot_environments(parallel: int, devices_per_trial: int | None, gpus: list[str],
                      base_env: dict) -> list[dict]:
    """The environment additions of each of ``parallel`` concurrent slots (disjoint devices).

    GPUs: slot i gets ``CUDA_VISIBLE_DEVICES`` = GPUs [i*K, (i+1)*K) with K = devices_per_trial
    (default: all GPUs split evenly). CPU only: with ``devices_per_trial`` each trial process
    simulates that many CPU devices (and gets NPROC=16 unless set: DESIGN.md, known traps);
    without it the trials inherit this environment's devices.
    """
    if parallel < 1:
        raise ValueError(f"parallel={parallel} must be >= 1")
    if gpus:
        per = devices_per_trial or len(gpus) // parallel
        if per < 1 or per * parallel > len(gpus):
            raise ValueError(f"{parallel} trials x {devices_per_trial or per} GPUs each do not "
                             f"fit the {len(gpus)} visible GPUs ({','.join(gpus)})")
        return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus[i * per:(i + 1) * per])}
                for i in range(parallel)]
    if devices_per_trial:
        extra = {"XLA_FLAGS": _with_cpu_device_count(base_env.get("XLA_FLAGS", ""),
                                                     devices_per_trial)}
        if devices_per_trial > 1 and "NPROC" not in base_env:
            extra["NPROC"] = "16"
        return [dict(extra) for _ in range(parallel)]
    return [{} for _ in range(parallel)]


# ------------------------------------------------------------------------------------ running
@dataclasses.dataclass
class _Running:
    trial: Trial
    proc: subprocess.Popen
    log: object
    slot: int
    started: float


class _Stop(Exception):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _outcome(workdir: str, returncode: int) -> tuple[str, str | None]:
    summary = _read_json(os.path.join(workdir, "summary.json")) or {}
    status = summary.get("status")
    if returncode == 0 and status in FINAL_STATUSES:
        return status, status
    if returncode < 0:
        return f"killed by signal {-returncode}", status
    if returncode == 2:
        return "failed (exit 2: bad config, conflicting workdir or missing data; see log)", status
    return f"failed (exit {returncode})", status


class LocalRunner:
    """Runs the trials of one sweep under ``root`` with at most ``parallel`` at once."""

    def __init__(self, sweep: Sweep, trials: list[Trial], root: str, *, parallel: int = 1,
                 devices_per_trial: int | None = None, multihost: bool = False,
                 out=None, poll_seconds: float = 0.2):
        self.sweep, self.trials, self.root = sweep, trials, os.path.abspath(root)
        self.parallel, self.multihost = parallel, multihost
        self.slots = slot_environments(parallel, devices_per_trial,
                                       visible_gpus() if parallel > 1 or devices_per_trial
                                       else [], dict(os.environ))
        self.out = out or (lambda line: print(line, flush=True))
        self.poll_seconds = poll_seconds
        self.host = socket.gethostname() if multihost else None

    def _log_path(self, trial: Trial, suffix: str) -> str:
        host = f".{self.host}" if self.host else ""
        return os.path.join(self.root, LOGS_DIR, f"{trial.name}{host}.{suffix}")

    def _record(self, trial: Trial, record: dict) -> None:
        _write_json_atomic(self._log_path(trial, "json"), {"name": trial.name,
                                                           "index": trial.index, **record})

    def _start(self, trial: Trial, slot: int) -> _Running:
        argv = trial_command(self.sweep, trial, self.root)
        env = dict(os.environ, **self.slots[slot])
        if self.multihost:
            env["BSGAP_MULTIHOST"] = "1"
        log = open(self._log_path(trial, "log"), "a")
        log.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} slot {slot} "
                  f"{' '.join(f'{k}={v}' for k, v in self.slots[slot].items())}\n"
                  f"== {command_string(argv)}\n")
        log.flush()
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return _Running(trial, proc, log, slot, time.perf_counter())

    def _finish(self, run: _Running, counts: dict) -> None:
        run.log.close()
        seconds = time.perf_counter() - run.started
        workdir = os.path.join(self.root, run.trial.name)
        outcome, status = _outcome(workdir, run.proc.returncode)
        ok = status in FINAL_STATUSES and run.proc.returncode == 0
        counts["ran"] += 1
        counts["failed"] += 0 if ok else 1
        summary = _read_json(os.path.join(workdir, "summary.json")) or {}
        self._record(run.trial, {"outcome": outcome if ok else "failed", "status": status,
                                 "detail": outcome, "returncode": run.proc.returncode,
                                 "seconds": round(seconds, 3),
                                 "command": command_string(trial_command(
                                     self.sweep, run.trial, self.root)),
                                 "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
        best = summary.get("best_eval_accuracy")
        extra = f", best eval accuracy {best:.4f}" if ok and best is not None else \
            ("" if ok else f"; log: {self._log_path(run.trial, 'log')}")
        self.out(f"[{run.trial.index}] {run.trial.name}: {outcome} in {seconds:.1f} s{extra}")

    def _prepare_datasets(self, configs: list[dict]) -> None:
        """Build missing embedded datasets once before trials start together (two processes
        building the same TFDS dataset at once race on its directory)."""
        missing = sorted({(c["dataset"], c.get("data_dir")) for c in configs
                          if not dataset_prepared(c["dataset"], c.get("data_dir"))},
                         key=str)
        for dataset, data_dir in missing:
            self.out(f"preparing {dataset} in {data_dir or 'the default TFDS data dir'} before "
                     "running trials in parallel")
            code = ("import sys; from bsgap.data import load_dataset; "
                    "load_dataset(sys.argv[1], data_dir=sys.argv[2] or None)")
            result = subprocess.run([sys.executable, "-c", code, dataset, data_dir or ""],
                                    cwd=REPO_ROOT, capture_output=True, text=True)
            if result.returncode:
                self.out(f"could not prepare {dataset} (the trials will say why): "
                         f"{result.stderr.strip().splitlines()[-1:]}")

    def run(self) -> dict:
        """Run every unfinished trial; returns counts {total, skipped, ran, failed, seconds}."""
        start = time.perf_counter()
        os.makedirs(os.path.join(self.root, LOGS_DIR), exist_ok=True)
        counts = {"total": len(self.trials), "skipped": 0, "ran": 0, "failed": 0}
        queue = []
        for trial in self.trials:
            state = trial_state(os.path.join(self.root, trial.name),
                                expected_config(self.sweep, trial))
            if state.kind == "finished":
                counts["skipped"] += 1
                self.out(f"[{trial.index}] {trial.name}: skipped, {state.describe()}")
            elif state.kind == "conflict":
                counts["failed"] += 1
                self._record(trial, {"outcome": "failed", "status": None, "returncode": None,
                                     "detail": f"conflict: {state.detail}"})
                self.out(f"[{trial.index}] {trial.name}: failed, its directory holds a "
                         f"different config ({state.detail}); not run")
            else:
                queue.append((trial, state))
        if self.parallel > 1 and len(queue) > 1:
            self._prepare_datasets([expected_config(self.sweep, t) for t, _ in queue])
        running: list[_Running] = []
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def stop(signum, frame):
            raise _Stop(signum)

        for sig in previous:
            signal.signal(sig, stop)
        try:
            while queue or running:
                free = sorted(set(range(self.parallel)) - {r.slot for r in running})
                while queue and free:
                    trial, state = queue.pop(0)
                    verb = "resuming" if state.kind == "interrupted" else "starting"
                    self.out(f"[{trial.index}] {trial.name}: {verb} "
                             f"({state.describe()}) on slot {free[0]}")
                    running.append(self._start(trial, free.pop(0)))
                for run in [r for r in running if r.proc.poll() is not None]:
                    running.remove(run)
                    self._finish(run, counts)
                if running:
                    time.sleep(self.poll_seconds)
        except _Stop as err:
            self.out(f"signal {err.signum}: stopping {len(running)} running trial(s); they "
                     "resume from their checkpoints when the sweep is run again")
            for run in running:
                run.proc.terminate()
            for run in running:
                try:
                    run.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    run.proc.kill()
                    run.proc.wait()
                run.log.close()
            raise SystemExit(128 + err.signum) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        counts["seconds"] = time.perf_counter() - start
        return counts


def run_one(sweep: Sweep, trial: Trial, root: str, *, multihost: bool = False) -> int:
    """Cluster task: run one trial in the foreground by exec'ing the CLI (no return on success).

    Returns 0 (finished: nothing to do) or 2 (conflict / changed sweep) without exec'ing.
    """
    root = os.path.abspath(root)
    message = check_against_plan(root, trial)
    if message:
        print(f"launch.sweep: error: {message}", file=sys.stderr)
        return 2
    state = trial_state(os.path.join(root, trial.name), expected_config(sweep, trial))
    if state.kind == "finished":
        print(f"[{trial.index}] {trial.name}: already {state.describe()}; nothing to do",
              flush=True)
        return 0
    if state.kind == "conflict":
        print(f"launch.sweep: error: {os.path.join(root, trial.name)} holds a different config "
              f"({state.detail})", file=sys.stderr)
        return 2
    argv = trial_command(sweep, trial, root)
    env = dict(os.environ)
    if multihost:
        env["BSGAP_MULTIHOST"] = "1"
    print(f"[{trial.index}] {trial.name}: {state.describe()}; {command_string(argv)}",
          flush=True)
    os.chdir(REPO_ROOT)
    os.execve(argv[0], argv, env)
    return 0  # not reached
