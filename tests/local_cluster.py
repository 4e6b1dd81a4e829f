"""Several JAX processes on this machine, talking over localhost (jax.distributed with gloo), as
the multi-process tests start them."""
from __future__ import annotations

import os
import socket
import subprocess

from helpers import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_env(devices_per_process: int, **extra) -> dict:
    """This environment with K simulated CPU devices per process and CPU collectives (NPROC=16:
    fewer XLA threads deadlock collectives on 2 cores)."""
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count="
                f"{devices_per_process}", NPROC="16", JAX_PLATFORMS="cpu",
                JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo", CUDA_VISIBLE_DEVICES="", **extra)


def run_processes(argvs: list[list[str]], env: dict, *, cwd: str = ROOT,
                  timeout: float = 300) -> list[str]:
    """Start every argv at once, wait for all (killing what is left on a timeout or error), and
    return their combined outputs; each must exit 0 (the assertion shows its output's tail)."""
    procs = [subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for argv in argvs]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for i, (proc, out) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"process {i}:\n{out[-3000:]}"
    return outputs
