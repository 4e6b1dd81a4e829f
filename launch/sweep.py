"""CLI: expand a sweep into one run directory per trial and run the trials (or submit them).

    python -m launch.sweep --sweep=configs/sweeps/embedded_bs_lr.py --root=runs/bs_lr \
        [--set=data_dir=/data/tfds ...] [--parallel=2 [--devices_per_trial=4]] [--only='bs32-*']
        [--group_trials [--max_trials_per_program=16]] [--dry_run] [--trial=INDEX] [--multihost]
        [--runner=slurm [--submit] ...]

Local (default): writes ROOT/sweep.json and runs every unfinished trial, ``--parallel`` at once
on disjoint devices (launch/runner.py); rerunning the same command skips finished trials and
resumes interrupted ones. ``--group_trials`` runs the trials that differ only in per-trial
hyperparameters (learning rate, seed, ...) as one program per process, at most
``--max_trials_per_program`` per program, fewer when a memory limit is known
(launch/grouping.py). ``--dry_run`` prints each trial, its state and its command (with
``--group_trials``, each program's), and writes nothing. ``--trial=I`` runs trial I alone in the
foreground (what a cluster task runs: SLURM array tasks, every worker of a TPU VM).
``--runner=slurm`` writes ROOT/sweep.json and prints the ``sbatch --array`` submission of the
unfinished trials; ``--submit`` also submits it.

Exit status: 0 when every trial is finished (diverged included), 1 when a trial failed, 2 for a
bad sweep or bad flags.
"""
from __future__ import annotations

import argparse
import ast
import fnmatch
import os
import shlex
import subprocess
import sys

from launch import runner, slurm
from launch.spec import REPO_ROOT, SweepError, command_string, expand, expected_config, \
    load_sweep, trial_command


def parse_set(items: list[str]) -> dict:
    """``--set=field=value`` pairs; values are Python literals where they parse, else strings."""
    out = {}
    for item in items:
        field, sep, text = item.partition("=")
        if not sep or not field:
            raise SweepError(f"--set={item!r}: expected field=value")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        out[field] = value
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m launch.sweep", description=__doc__.split("\n")[0])
    p.add_argument("--sweep", required=True, help="sweep file with get_sweep()")
    p.add_argument("--root", required=True, help="directory of the sweep's run directories")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a config field fixed for every trial (repeatable), e.g. data_dir=/x")
    p.add_argument("--only", default=None, metavar="GLOBS",
                   help="comma-separated name patterns: run only these trials")
    p.add_argument("--dry_run", action="store_true",
                   help="print the trials, their state and commands; write and run nothing")
    p.add_argument("--parallel", type=int, default=1, help="local: trials at once")
    p.add_argument("--devices_per_trial", type=int, default=None,
                   help="local: GPUs per concurrent trial (CUDA_VISIBLE_DEVICES), or simulated "
                        "CPU devices per trial on a CPU-only machine")
    p.add_argument("--group_trials", action="store_true",
                   help="local: run trials that differ only in bsgap.trainer.TRIAL_FIELDS "
                        "(learning rate, seed, ...) as one program per process")
    p.add_argument("--max_trials_per_program", type=int, default=16, metavar="K",
                   help="local, with --group_trials: at most K trials per program (lowered "
                        "further when the device or memory_limit_bytes gives a memory limit)")
    p.add_argument("--trial", type=int, default=None, metavar="INDEX",
                   help="run this trial alone in the foreground (cluster tasks)")
    p.add_argument("--multihost", action="store_true",
                   help="every host runs this same command: trials call "
                        "jax.distributed.initialize() (BSGAP_MULTIHOST=1)")
    p.add_argument("--runner", choices=("local", "slurm"), default="local")
    p.add_argument("--submit", action="store_true", help="slurm: run sbatch (else print it)")
    p.add_argument("--sbatch_args", default="",
                   help="slurm: sbatch options, at least the partition, e.g. "
                        f"'--partition={slurm.PARTITION_PLACEHOLDER} --gpus-per-node=8'")
    p.add_argument("--max_parallel", type=int, default=None,
                   help="slurm: at most this many array tasks at once (--array=...%%N)")
    return p


def _select(trials, only: str | None):
    if not only:
        return trials
    patterns = [p for p in only.split(",") if p]
    chosen = [t for t in trials if any(fnmatch.fnmatchcase(t.name, p) for p in patterns)]
    if not chosen:
        raise SweepError(f"--only={only!r} matches none of the {len(trials)} trials")
    return chosen


def _states(sweep, trials, root):
    return [runner.trial_state(os.path.join(root, t.name), expected_config(sweep, t))
            for t in trials]


def _dry_run_groups(local, trials, states) -> int:
    """Finished trials and conflicts, then each process that would run: its trials and command."""
    for t, s in zip(trials, states):
        if s.kind in ("finished", "conflict"):
            print(f"[{t.index}] {t.name}: {s.describe()}"
                  + (f" -- {s.detail}" if s.kind == "conflict" else ""))
    entries = [(t, s, expected_config(local.sweep, t)) for t, s in zip(trials, states)
               if s.kind not in ("finished", "conflict")]
    for job in local.jobs(entries):
        for t, s in zip(job.trials, job.states):
            print(f"[{t.index}] {t.name}: {s.describe()}"
                  + (f" (one program of {len(job.trials)} trials)" if job.grouped else ""))
        print(f"    {command_string(list(job.argv))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        sweep = load_sweep(args.sweep, parse_set(args.set))
        all_trials = expand(sweep)
        trials = _select(all_trials, args.only)
        root = os.path.abspath(args.root)
        if args.trial is not None:
            chosen = [t for t in all_trials if t.index == args.trial]
            if not chosen:
                raise SweepError(f"--trial={args.trial}: the sweep has trials 0.."
                                 f"{len(all_trials) - 1}")
            return runner.run_one(sweep, chosen[0], root, multihost=args.multihost)
        states = _states(sweep, trials, root)
    except SweepError as err:
        print(f"launch.sweep: error: {err}", file=sys.stderr)
        return 2

    counts = {}
    for state in states:
        counts[state.kind] = counts.get(state.kind, 0) + 1
    selected = (f"{len(trials)} of {len(all_trials)} trials (--only)"
                if len(trials) != len(all_trials) else f"{len(trials)} trial(s)")
    print(f"sweep {args.sweep}: {selected} in {root} ("
          + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + ")", flush=True)

    if args.runner == "slurm":
        if args.group_trials:
            print("launch.sweep: error: --group_trials is for the local runner (a SLURM array "
                  "task runs one trial)", file=sys.stderr)
            return 2
        todo = [t.index for t, s in zip(trials, states) if s.kind != "finished"]
        if not todo:
            print("every trial is finished; nothing to submit")
            return 0
        problem = slurm.partition_error(shlex.split(args.sbatch_args), os.environ)
        if problem:
            print(f"launch.sweep: error: {problem}", file=sys.stderr)
            return 2
        cmd = slurm.sbatch_command(sweep_path=args.sweep, root=root, indices=todo,
                                   sets=args.set, sbatch_args=shlex.split(args.sbatch_args),
                                   max_parallel=args.max_parallel, multihost=args.multihost)
        if args.dry_run:
            for t, s in zip(trials, states):
                print(f"[{t.index}] {t.name}: {s.describe()}")
            print(command_string(cmd))
            return 0
        runner.write_plan(sweep, all_trials, root)
        os.makedirs(os.path.join(root, runner.LOGS_DIR), exist_ok=True)
        print(f"(from {REPO_ROOT})\n{command_string(cmd)}", flush=True)
        if args.submit:
            return subprocess.run(cmd, cwd=REPO_ROOT).returncode
        return 0

    if args.dry_run and not args.group_trials:
        for t, s in zip(trials, states):
            print(f"[{t.index}] {t.name}: {s.describe()}"
                  + (f" -- {s.detail}" if s.kind == "conflict" else ""))
            print(f"    {command_string(trial_command(sweep, t, root))}")
        return 0

    try:
        local = runner.LocalRunner(sweep, trials, root, parallel=args.parallel,
                                   devices_per_trial=args.devices_per_trial,
                                   multihost=args.multihost, group_trials=args.group_trials,
                                   max_trials_per_program=args.max_trials_per_program)
        if args.dry_run:
            return _dry_run_groups(local, trials, states)
    except (ValueError, SweepError) as err:
        print(f"launch.sweep: error: {err}", file=sys.stderr)
        return 2
    runner.write_plan(sweep, all_trials, root, multihost=args.multihost)
    result = local.run()
    print(f"sweep done in {result['seconds']:.1f} s: {result['total']} trial(s), "
          f"{result['skipped']} skipped (finished before), {result['ran']} run, "
          f"{result['failed']} failed", flush=True)
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
