"""Memory of one trial, measured in a child process, for the cap on trials per program.

    python -m launch.footprint --config=configs/x.py [--config.field=value ...]

compiles the train step of that config run alone (bsgap.memory.single_trial_footprint) and prints
one JSON line: ``{"bytes_per_trial", "limit_bytes", "microbatch", "compile_seconds"}``.

The sweep runner never opens the accelerator itself (on a GPU, JAX would reserve most of its memory
for the runner's lifetime); it asks child processes, with the environment its jobs get:
``MemoryProbe`` first reads the limit -- the config's ``memory_limit_bytes``, else the device's
reported limit from a child that only imports JAX -- and only when a limit is known compiles one
trial in a second child. A multi-host sweep (``--multihost``) measures nothing: a worker's child
process alone, outside the group of processes, cannot compile the multi-host program (and could
hang waiting for its peers), so there only ``--max_trials_per_program`` caps.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from launch.spec import REPO_ROOT, Sweep, SweepError, Trial, command_string, parse_cli_config, \
    trial_command

DEVICE_LIMIT_CODE = ("import json; from bsgap.memory import device_memory_limit; "
                     "print(json.dumps(device_memory_limit()))")


def _last_json_line(stdout: str):
    lines = [line for line in stdout.splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


class MemoryProbe:
    """``probe(trial, expected) -> (limit_bytes, bytes_per_trial)``, each None when unknown."""

    def __init__(self, sweep: Sweep, *, env: dict, multihost: bool = False, out=print,
                 timeout_seconds: float = 900):
        self.sweep, self.env, self.multihost, self.out = sweep, env, multihost, out
        self.timeout_seconds = timeout_seconds
        self._device_limit, self._asked_device = None, False

    def _run(self, argv: list[str]):
        result = subprocess.run(argv, cwd=REPO_ROOT, env=self.env, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=self.timeout_seconds)
        if result.returncode:
            tail = result.stderr.strip().splitlines()[-3:]
            raise RuntimeError(f"exit {result.returncode}: {' / '.join(tail)}")
        return _last_json_line(result.stdout)

    def device_limit(self) -> int | None:
        if self.env.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
            return None     # a CPU reports no limit (bsgap.memory.device_memory_limit)
        if not self._asked_device:
            self._asked_device = True
            try:
                self._device_limit = self._run([sys.executable, "-c", DEVICE_LIMIT_CODE])
            except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as err:
                self.out(f"memory: could not read the device's memory limit ({err}); capping "
                         "trials per program at --max_trials_per_program only")
        return self._device_limit

    def __call__(self, trial: Trial, expected: dict):
        if self.multihost:
            return None, None
        limit = expected.get("memory_limit_bytes") or self.device_limit()
        if not limit:
            return None, None
        argv = [sys.executable, "-m", "launch.footprint",
                *(a for a in trial_command(self.sweep, trial, "/unused")[3:]
                  if not a.startswith("--workdir="))]
        try:
            measured = self._run(argv)
        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as err:
            self.out(f"memory: could not compile {trial.name} alone to measure it ({err}; "
                     f"{command_string(argv)}); capping at --max_trials_per_program only")
            return limit, None
        return measured.get("limit_bytes") or limit, measured.get("bytes_per_trial")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not any(a.startswith("--config=") for a in argv):
        print("launch.footprint: error: --config=FILE is required", file=sys.stderr)
        return 2
    from bsgap.data import DataError
    from bsgap.memory import single_trial_footprint
    from bsgap.run_config import ConfigError
    from bsgap.workdir import WorkdirError

    try:
        config = parse_cli_config(argv[1:])
        measured = single_trial_footprint(config)
    except (SweepError, ConfigError, DataError, WorkdirError, ValueError) as err:
        print(f"launch.footprint: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(measured), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
