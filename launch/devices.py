"""Disjoint devices for concurrent trial processes, through each process's environment: GPUs
through ``CUDA_VISIBLE_DEVICES``; on a CPU-only machine, simulated CPU devices per process
(``--xla_force_host_platform_device_count``). One TPU host's chips are not split between
processes: on TPU run one trial (or one group of trials) at a time on all chips."""
from __future__ import annotations

import os
import re
import shutil
import subprocess


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
