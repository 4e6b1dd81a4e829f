"""What kind of launch this process is part of, read from its flags and environment (no JAX import,
so the CLI can tell before its heavy imports)."""
from __future__ import annotations

import os


def launch_kind(coordinator_address: str | None = None, num_processes: int | None = None,
                environ=None) -> str | None:
    """'explicit' (--coordinator_address / --num_processes > 1), 'slurm' (SLURM_NTASKS > 1),
    'cluster' (GKE TPU pods' TPU_WORKER_HOSTNAMES, or BSGAP_MULTIHOST=1 from launch/ on a Cloud
    TPU VM), or None for a single process."""
    environ = os.environ if environ is None else environ
    if coordinator_address or (num_processes or 0) > 1:
        return "explicit"
    if int(environ.get("SLURM_NTASKS", "1")) > 1:
        return "slurm"
    if environ.get("TPU_WORKER_HOSTNAMES") or environ.get("BSGAP_MULTIHOST") == "1":
        return "cluster"
    return None
