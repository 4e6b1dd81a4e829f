"""Process 0's view of a multi-host sweep's trial directories, given to every worker.

Every worker of a multi-host sweep runs the same ``launch.sweep`` and must start the same trial
processes in the same order, or the trials' collectives hang. Each worker's own look at the
shared run directories can differ (gcsfuse stat/type caches, NFS attribute caching), so the
runner asks this module instead: run on every worker at once under ``jax.distributed``
(``BSGAP_MULTIHOST=1``, or the flags below), it reads the trials' states on process 0 only and
prints the same JSON list on every worker (bsgap/agreement.py)::

    echo '{"trials": [[WORKDIR, EXPECTED_CONFIG], ...]}' | python -m launch.agree [--coordinator_address=H:P --num_processes=N --process_id=I]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys

from launch.state import TrialState, trial_state


def agreed_trial_states(pairs) -> list[TrialState]:
    """``trial_state(workdir, expected)`` of each pair, as process 0 sees them."""
    from bsgap.agreement import decided_by_process_0

    states = decided_by_process_0(
        lambda: [dataclasses.asdict(trial_state(w, e)) for w, e in pairs])
    return [TrialState(**s) for s in states]


def ask(pairs, *, env: dict, cwd: str) -> list[TrialState]:
    """Run this module (on every worker at once: the runner calls it at the same point on each)
    and parse its answer."""
    result = subprocess.run([sys.executable, "-m", "launch.agree"], cwd=cwd, env=env,
                            input=json.dumps({"trials": [list(p) for p in pairs]}),
                            capture_output=True, text=True)
    lines = result.stdout.strip().splitlines()
    if result.returncode or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"asking process 0 for the trials' states failed (exit "
                           f"{result.returncode}: {tail})")
    return [TrialState(**s) for s in json.loads(lines[-1])]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launch.agree",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator_address", default=None)
    parser.add_argument("--num_processes", type=int, default=None)
    parser.add_argument("--process_id", type=int, default=None)
    args = parser.parse_args(argv)
    pairs = json.load(sys.stdin)["trials"]
    from bsgap import parallel

    parallel.initialize_distributed(args.coordinator_address, args.num_processes,
                                    args.process_id)
    states = agreed_trial_states(pairs)
    print(json.dumps([dataclasses.asdict(s) for s in states]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
