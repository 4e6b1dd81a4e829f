"""SLURM: one trial per array task of ``launch/slurm_array.sbatch``, on a shared filesystem.

``python -m launch.sweep --sweep=S --root=/shared/DIR --runner=slurm [--submit]`` writes
``DIR/sweep.json`` and ``DIR/logs/``, and prints (or submits) ::

    sbatch --array=<unfinished indices>%<max at once> --output=DIR/logs/slurm-%A_%a.out \
        [your sbatch options] launch/slurm_array.sbatch S DIR [--set=...]

Each task runs ``python -m launch.sweep --sweep=S --root=DIR --trial=$SLURM_ARRAY_TASK_ID``
under ``srun``: a finished trial is skipped, an interrupted one resumes from its checkpoint, so
resubmitting the same command after a preemption or a time limit runs only what is left. With
``--nodes=N`` (one task per node) a trial spans N hosts: ``srun`` starts one process per node and
``jax.distributed.initialize()`` picks the coordinator from SLURM's variables.
"""
from __future__ import annotations

import os

SBATCH_SCRIPT = "launch/slurm_array.sbatch"
PARTITION_PLACEHOLDER = "YOUR_GPU_PARTITION"   # what the examples in launch/README.md say


def partition_error(sbatch_args: list[str], environ) -> str | None:
    """Why this submission names no usable partition (None when it does): clusters name their GPU
    partitions differently, so the user must say which (``--partition``/``-p`` in
    ``--sbatch_args``, or SBATCH_PARTITION, which sbatch reads itself)."""
    named = environ.get("SBATCH_PARTITION")
    for i, arg in enumerate(sbatch_args):
        if arg.startswith("--partition="):
            named = arg.split("=", 1)[1]
        elif arg in ("--partition", "-p") and i + 1 < len(sbatch_args):
            named = sbatch_args[i + 1]
        elif arg.startswith("-p") and len(arg) > 2:
            named = arg[2:]
    if named and named != PARTITION_PLACEHOLDER:
        return None
    what = (f"--partition={PARTITION_PLACEHOLDER} is the examples' placeholder" if named
            else "no SLURM partition is named")
    return (f"{what}: put your cluster's GPU partition in --sbatch_args='--partition=NAME ...' "
            "(or export SBATCH_PARTITION=NAME); `sinfo -s` lists the partitions")


def array_spec(indices: list[int], max_parallel: int | None = None) -> str:
    """SLURM's ``--array`` value: sorted indices with runs folded, ``0-2,5,7-8%4``."""
    if not indices:
        raise ValueError("no trials to submit")
    indices = sorted(set(indices))
    parts, start = [], indices[0]
    for prev, cur in zip(indices, indices[1:] + [None]):
        if cur is not None and cur == prev + 1:
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = cur
    return ",".join(parts) + (f"%{max_parallel}" if max_parallel else "")


def sbatch_command(*, sweep_path: str, root: str, indices: list[int], sets: list[str],
                   sbatch_args: list[str], max_parallel: int | None = None,
                   multihost: bool = False) -> list[str]:
    """argv of the ``sbatch`` submission, to run from the repository root."""
    root = os.path.abspath(root)
    return ["sbatch", f"--array={array_spec(indices, max_parallel)}",
            f"--output={os.path.join(root, 'logs', 'slurm-%A_%a.out')}", *sbatch_args,
            SBATCH_SCRIPT, sweep_path, root, *(f"--set={s}" for s in sets),
            *(["--multihost"] if multihost else [])]
