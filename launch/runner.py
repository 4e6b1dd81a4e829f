"""Run a sweep's trials on this machine: one after another, or N at once on disjoint devices,
each trial in its own ``python -m bsgap.train`` process or, with ``group_trials``, several trials
that can share a compiled program in one process (launch/grouping.py).

Every trial has its own run directory ``ROOT/<name>`` whichever way it runs, so a sweep is
resumable by construction (launch/state.py): finished trials are skipped, interrupted ones resume
from their latest checkpoint (an interrupted group is regrouped with the trials that share its
checkpoint step and resumes as one program), and a directory holding a different config is a
conflict, recorded as failed and never overwritten.

The runner writes ``ROOT/sweep.json`` (the plan, launch/plan.py), ``ROOT/logs/<name>.log`` (the
trial's stdout and stderr, appended on every attempt; a grouped trial's log points to its
program's log ``ROOT/logs/groups/<first trial>.log``) and ``ROOT/logs/<name>.json`` (the last
attempt's outcome: finished status, or failed with the exit code). A failed trial is recorded
and the sweep goes on; a program of several trials that fails marks its trials that have no final
summary failed. The runner exits 1 when any trial failed.

Concurrent processes get disjoint devices through their environment (launch/devices.py).
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

from launch import agree, grouping
from launch.devices import slot_environments, visible_gpus
from launch.footprint import MemoryProbe
from launch.plan import SWEEP_FILE, check_against_plan, plan, write_plan  # noqa: F401 (public)
from launch.spec import REPO_ROOT, Sweep, Trial, command_string, expected_config, trial_command
from launch.state import FINAL_STATUSES, TrialState, config_differences, \
    latest_checkpoint_step, read_json, trial_state, write_json_atomic  # noqa: F401 (public)

LOGS_DIR = "logs"
GROUP_LOGS_DIR = "groups"


def dataset_prepared(dataset: str, data_dir: str | None) -> bool:
    """Whether a TFDS dataset looks prepared (a dataset_info.json under data_dir/name/...). A
    gs:// data dir is not looked into (TFDS reads it; a missing dataset is the trial's error)."""
    if "://" in (data_dir or os.environ.get("TFDS_DATA_DIR") or ""):
        return True
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
    job: grouping.Job
    proc: subprocess.Popen
    log: object
    log_path: str
    slot: int
    started: float


class _Stop(Exception):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _outcome(workdir: str, returncode: int, grouped: bool = False) -> tuple[str, str | None]:
    """(what happened, summary status). A trial of a program of several that wrote its final
    summary is finished even if the program failed afterwards (its result is complete)."""
    summary = read_json(os.path.join(workdir, "summary.json")) or {}
    status = summary.get("status")
    if status in FINAL_STATUSES and (returncode == 0 or grouped):
        return status, status
    if returncode < 0:
        return f"killed by signal {-returncode}", status
    if returncode == 2:
        return "failed (exit 2: bad config, conflicting workdir or missing data; see log)", status
    return f"failed (exit {returncode})", status


class LocalRunner:
    """Runs the trials of one sweep under ``root`` with at most ``parallel`` processes at once.

    ``group_trials``: trials that can share a program run as one process of at most
    ``max_trials_per_program`` trials (fewer when the memory estimate says so; ``footprint``
    replaces the default measurement, ``MemoryProbe``).
    """

    def __init__(self, sweep: Sweep, trials: list[Trial], root: str, *, parallel: int = 1,
                 devices_per_trial: int | None = None, multihost: bool = False,
                 group_trials: bool = False, max_trials_per_program: int = 16, footprint=None,
                 out=None, poll_seconds: float = 0.2):
        if max_trials_per_program < 1:
            raise ValueError(f"max_trials_per_program={max_trials_per_program} must be >= 1")
        self.sweep, self.trials, self.root = sweep, trials, os.path.abspath(root)
        self.parallel, self.multihost = parallel, multihost
        self.group_trials, self.max_trials_per_program = group_trials, max_trials_per_program
        self.slots = slot_environments(parallel, devices_per_trial,
                                       visible_gpus() if parallel > 1 or devices_per_trial
                                       else [], dict(os.environ))
        self.out = out or (lambda line: print(line, flush=True))
        self.footprint = footprint
        self.poll_seconds = poll_seconds
        self.host = socket.gethostname() if multihost else None

    def _log_path(self, trial: Trial, suffix: str) -> str:
        host = f".{self.host}" if self.host else ""
        return os.path.join(self.root, LOGS_DIR, f"{trial.name}{host}.{suffix}")

    def _group_log_path(self, job: grouping.Job) -> str:
        host = f".{self.host}" if self.host else ""
        return os.path.join(self.root, LOGS_DIR, GROUP_LOGS_DIR, f"{job.trials[0].name}{host}.log")

    def _record(self, trial: Trial, record: dict) -> None:
        write_json_atomic(self._log_path(trial, "json"), {"name": trial.name,
                                                          "index": trial.index, **record})

    def _env(self, slot: int) -> dict:
        # The trial process asks for a signal when this runner dies (bsgap/parent_death.py).
        env = dict(os.environ, **self.slots[slot], BSGAP_PARENT_PID=str(os.getpid()))
        if self.multihost:
            env["BSGAP_MULTIHOST"] = "1"
        return env

    def jobs(self, entries: list[tuple[Trial, TrialState, dict]]) -> list[grouping.Job]:
        """The processes that run ``entries`` (unfinished trials, state, expected config)."""
        if not self.group_trials:
            return [grouping.single_job(self.sweep, t, s, self.root) for t, s, _ in entries]
        footprint = self.footprint or MemoryProbe(self.sweep, env=self._env(0),
                                                  multihost=self.multihost, out=self.out)
        return grouping.plan_jobs(self.sweep, entries, self.root,
                                  max_trials_per_program=self.max_trials_per_program,
                                  footprint=footprint, out=self.out)

    def _start(self, job: grouping.Job, slot: int) -> _Running:
        argv = list(job.argv)
        stamp = time.strftime('%Y-%m-%d %H:%M:%S')
        log_path = self._group_log_path(job) if job.grouped else self._log_path(job.trials[0],
                                                                                "log")
        if job.grouped:
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
            for trial in job.trials:
                with open(self._log_path(trial, "log"), "a") as f:
                    f.write(f"== {stamp} runs in one program with "
                            f"{', '.join(t.name for t in job.trials if t is not trial)}; "
                            f"output in {log_path}\n")
        log = open(log_path, "a")
        log.write(f"== {stamp} slot {slot} "
                  f"{' '.join(f'{k}={v}' for k, v in self.slots[slot].items())}\n"
                  f"== {command_string(argv)}\n")
        log.flush()
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=self._env(slot), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return _Running(job, proc, log, log_path, slot, time.perf_counter())

    def _announce(self, job: grouping.Job, slot: int) -> None:
        if job.grouped:
            self.out(f"one program of {len(job.trials)} trials on slot {slot} "
                     f"(log: {self._group_log_path(job)}):")
        for trial, state in zip(job.trials, job.states):
            verb = "resuming" if state.kind == "interrupted" else "starting"
            where = "in that program" if job.grouped else f"on slot {slot}"
            self.out(f"[{trial.index}] {trial.name}: {verb} ({state.describe()}) {where}")

    def _finish(self, run: _Running, counts: dict) -> None:
        run.log.close()
        seconds = time.perf_counter() - run.started
        job, returncode = run.job, run.proc.returncode
        for trial in job.trials:
            workdir = os.path.join(self.root, trial.name)
            outcome, status = _outcome(workdir, returncode, job.grouped)
            ok = status in FINAL_STATUSES and (returncode == 0 or job.grouped)
            counts["ran"] += 1
            counts["failed"] += 0 if ok else 1
            extra = {"group": [t.name for t in job.trials], "log": run.log_path} \
                if job.grouped else {}
            self._record(trial, {"outcome": outcome if ok else "failed", "status": status,
                                 "detail": outcome, "returncode": returncode,
                                 "seconds": round(seconds, 3),
                                 "command": command_string(list(job.argv)), **extra,
                                 "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
            summary = read_json(os.path.join(workdir, "summary.json")) or {}
            best = summary.get("best_eval_accuracy")
            note = f" (one program of {len(job.trials)} trials)" if job.grouped else ""
            tail = f", best eval accuracy {best:.4f}" if ok and best is not None else \
                ("" if ok else f"; log: {run.log_path}")
            self.out(f"[{trial.index}] {trial.name}: {outcome} in {seconds:.1f} s{note}{tail}")

    def _prepare_datasets(self, configs: list[dict]) -> None:
        """Build missing embedded datasets once before processes start together (two processes
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

    def unfinished(self, counts: dict | None = None) -> list[tuple[Trial, TrialState, dict]]:
        """(trial, state, expected config) of every trial to run; finished trials are skipped
        and conflicts recorded as failed (counted in ``counts`` when given)."""
        counts = counts if counts is not None else {"skipped": 0, "failed": 0}
        entries = []
        expected_configs = [expected_config(self.sweep, t) for t in self.trials]
        states = self._trial_states([(os.path.join(self.root, t.name), e)
                                     for t, e in zip(self.trials, expected_configs)])
        for trial, expected, state in zip(self.trials, expected_configs, states):
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
                entries.append((trial, state, expected))
        return entries

    def _trial_states(self, pairs) -> list[TrialState]:
        """Each (workdir, expected config)'s state; on a multi-host sweep process 0's, which every
        worker follows (launch/agree.py), so that all start the same trials."""
        if not self.multihost:
            return [trial_state(w, e) for w, e in pairs]
        return agree.ask(pairs, env=self._env(0), cwd=REPO_ROOT)

    def run(self) -> dict:
        """Run every unfinished trial; returns counts {total, skipped, ran, failed, seconds}."""
        start = time.perf_counter()
        os.makedirs(os.path.join(self.root, LOGS_DIR), exist_ok=True)
        counts = {"total": len(self.trials), "skipped": 0, "ran": 0, "failed": 0}
        entries = self.unfinished(counts)
        if self.parallel > 1 and len(entries) > 1:
            self._prepare_datasets([expected for _, _, expected in entries])
        queue = self.jobs(entries)
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
                    job, slot = queue.pop(0), free.pop(0)
                    self._announce(job, slot)
                    running.append(self._start(job, slot))
                for run in [r for r in running if r.proc.poll() is not None]:
                    running.remove(run)
                    self._finish(run, counts)
                if running:
                    time.sleep(self.poll_seconds)
        except _Stop as err:
            self.out(f"signal {err.signum}: stopping {len(running)} running process(es); their "
                     "trials resume from their checkpoints when the sweep is run again")
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
    pair = (os.path.join(root, trial.name), expected_config(sweep, trial))
    env = dict(os.environ)
    if multihost:   # every host of the trial must decide alike: process 0 decides (agree.py)
        env["BSGAP_MULTIHOST"] = "1"
        (state,) = agree.ask([pair], env=env, cwd=REPO_ROOT)
    else:
        state = trial_state(*pair)
    if state.kind == "finished":
        print(f"[{trial.index}] {trial.name}: already {state.describe()}; nothing to do",
              flush=True)
        return 0
    if state.kind == "conflict":
        print(f"launch.sweep: error: {os.path.join(root, trial.name)} holds a different config "
              f"({state.detail})", file=sys.stderr)
        return 2
    argv = trial_command(sweep, trial, root)
    print(f"[{trial.index}] {trial.name}: {state.describe()}; {command_string(argv)}",
          flush=True)
    os.chdir(REPO_ROOT)
    os.execve(argv[0], argv, env)
    return 0  # not reached
