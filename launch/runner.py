"""Run a sweep's trials on this machine: one after another, or N at once on disjoint devices.

Every trial is its own ``python -m bsgap.train`` process in its own run directory
``ROOT/<name>``, so a sweep is resumable by construction (launch/state.py): finished trials are
skipped, interrupted ones resume from their latest checkpoint, and a directory holding a
different config is a conflict, recorded as failed and never overwritten.

The runner writes ``ROOT/sweep.json`` (the plan, launch/plan.py),
``ROOT/logs/<name>.log`` (the trial's stdout and stderr, appended on every attempt) and
``ROOT/logs/<name>.json`` (the last attempt's outcome: finished status, or failed with the exit
code). A failed trial is recorded and the sweep goes on; the runner exits 1 when any trial failed.

Concurrent trials get disjoint devices through their environment (launch/devices.py).
"""
from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import time

from launch.devices import slot_environments, visible_gpus
from launch.plan import SWEEP_FILE, check_against_plan, plan, write_plan  # noqa: F401 (public)
from launch.spec import REPO_ROOT, Sweep, Trial, command_string, expected_config, trial_command
from launch.state import FINAL_STATUSES, TrialState, config_differences, \
    latest_checkpoint_step, read_json, trial_state, write_json_atomic  # noqa: F401 (public)

LOGS_DIR = "logs"


def dataset_prepared(dataset: str, data_dir: str | None) -> bool:
    """Whether a TFDS dataset looks prepared (a dataset_info.json under data_dir/name/...)."""
    base = os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR")
                              or "~/tensorflow_datasets")
    for directory, _, files in os.walk(os.path.join(base, *dataset.split("/"))):
        if "dataset_info.json" in files and re.fullmatch(r"\d+\.\d+\.\d+",
                                                         os.path.basename(directory)):
            return True   # a finished version directory, not an incomplete.* temporary
    return False


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
    summary = read_json(os.path.join(workdir, "summary.json")) or {}
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
        write_json_atomic(self._log_path(trial, "json"), {"name": trial.name,
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
        summary = read_json(os.path.join(workdir, "summary.json")) or {}
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
