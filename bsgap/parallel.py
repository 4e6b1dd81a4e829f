"""Device mesh, shard_map wrapping, host batches -> global arrays, multi-host initialization.

Data parallelism is pmap-style: per-device code written with ``jax.shard_map`` over a 1-D mesh
axis named 'batch', with ``check_vma=False`` so that ``jax.grad`` inside returns the *local*
gradient and the code reduces it explicitly with ``lax.pmean`` (exactly pmap's semantics; with
check_vma=True the gradient w.r.t. replicated parameters would come back already summed over
devices -- DESIGN.md, known traps). The same code runs on one host or on a multi-host TPU VM.
"""
from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from bsgap.launch_kind import launch_kind

AXIS = "batch"


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Call ``jax.distributed.initialize`` when this looks like a multi-host launch.

    Explicit arguments win; otherwise JAX auto-detects the cluster when SLURM runs several tasks
    (SLURM_NTASKS > 1), on GKE TPU pods (TPU_WORKER_HOSTNAMES), or when the launcher says so with
    ``BSGAP_MULTIHOST=1`` (launch/: a Cloud TPU VM's workers, whose environment names no peers;
    JAX then reads the TPU metadata). A single process does nothing.

    Under SLURM the node's GPUs are named explicitly (``slurm_local_device_ids``): left alone,
    JAX's SLURM detection gives each process only the GPU numbered SLURM_LOCALID, so one task per
    node would see one GPU of eight.
    """
    kind = launch_kind(coordinator_address, num_processes)
    if kind == "explicit":
        jax.distributed.initialize(coordinator_address=coordinator_address,
                                   num_processes=num_processes, process_id=process_id)
    elif kind == "slurm":
        ids = slurm_local_device_ids(os.environ)
        jax.distributed.initialize(**({} if ids is None else {"local_device_ids": ids}))
    elif kind == "cluster":
        jax.distributed.initialize()


def _id_list(text: str | None) -> list[str]:
    return [x for x in (text or "").split(",") if x.strip()]


def _tasks_on_this_node(environ) -> int:
    """SLURM tasks of this step on this node: SLURM_NTASKS_PER_NODE, else the first count of
    SLURM_STEP_TASKS_PER_NODE / SLURM_TASKS_PER_NODE (``8(x2),4``), else 1."""
    if environ.get("SLURM_NTASKS_PER_NODE", "").isdigit():
        return int(environ["SLURM_NTASKS_PER_NODE"])
    for var in ("SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"):
        head = environ.get(var, "").split("(")[0].split(",")[0]
        if head.isdigit():
            return int(head)
    return 1


def slurm_local_device_ids(environ) -> list[int] | None:
    """The GPU ordinals this SLURM task should use (as ``jax.distributed.initialize``'s
    ``local_device_ids``), or None to leave JAX's choice (no GPUs named, or JAX_LOCAL_DEVICE_IDS
    set, which JAX reads itself).

    The GPUs this process sees are CUDA_VISIBLE_DEVICES (numbered 0..n-1 by CUDA whatever their
    physical numbers), else SLURM_STEP_GPUS / SLURM_JOB_GPUS, else SLURM_GPUS_ON_NODE of them.
    One task on the node (launch/slurm_array.sbatch): all of them. Several tasks that each see
    fewer GPUs than the node was given (``--gpus-per-task``, ``--gpu-bind``): all they see.
    Several tasks sharing the node's n GPUs: task SLURM_LOCALID takes its n/tasks block.
    """
    if environ.get("JAX_LOCAL_DEVICE_IDS"):
        return None
    if "CUDA_VISIBLE_DEVICES" in environ:
        visible = len(_id_list(environ["CUDA_VISIBLE_DEVICES"]))
    elif _id_list(environ.get("SLURM_STEP_GPUS") or environ.get("SLURM_JOB_GPUS")):
        visible = len(_id_list(environ.get("SLURM_STEP_GPUS") or environ.get("SLURM_JOB_GPUS")))
    elif environ.get("SLURM_GPUS_ON_NODE", "").isdigit():
        visible = int(environ["SLURM_GPUS_ON_NODE"])
    else:
        return None
    if visible == 0:
        return None
    tasks = _tasks_on_this_node(environ)
    on_node = environ.get("SLURM_GPUS_ON_NODE", "")
    node_gpus = int(on_node) if on_node.isdigit() else visible
    if tasks == 1 or visible < node_gpus:
        return list(range(visible))
    if visible % tasks:
        raise ValueError(f"SLURM runs {tasks} tasks on this node sharing its {visible} GPUs, "
                         "which do not split evenly; give each task its GPUs "
                         "(--gpus-per-task) or name them with JAX_LOCAL_DEVICE_IDS=0,1,...")
    per_task = visible // tasks
    local = int(environ.get("SLURM_LOCALID", "0"))
    return list(range(local * per_task, (local + 1) * per_task))


def barrier(name: str) -> None:
    """Wait until every process got here (multi-host only; a no-op for one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def resolve_num_devices(requested: int) -> int:
    available = jax.device_count()
    if requested == 0:
        return available
    if requested < 0 or requested > available:
        raise ValueError(f"num_devices={requested} but {available} device(s) are available "
                         f"(use 0 for all, or 1..{available})")
    if jax.process_count() > 1 and requested != available:
        raise ValueError(f"num_devices={requested}: multi-host runs use all {available} devices "
                         "(set num_devices=0)")
    return requested


def make_mesh(num_devices: int) -> Mesh:
    """1-D mesh named 'batch' over the first ``num_devices`` devices (all of them on multi-host)."""
    devices = np.array(jax.devices()[:num_devices])
    return Mesh(devices, (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh, spec=AXIS) -> NamedSharding:
    """Sharding of a batch: its example axis split over 'batch' (``spec=(None, AXIS)`` for a
    stack of per-trial batches with a leading trial axis)."""
    return NamedSharding(mesh, P(*spec) if isinstance(spec, tuple) else P(spec))


def replicate(mesh: Mesh, tree):
    """Place a pytree of host arrays on every device of the mesh."""
    return jax.device_put(tree, replicated(mesh))


def global_batch(mesh: Mesh, host_batch, spec=AXIS):
    """Assemble this process's rows of the global batch into global arrays sharded over 'batch'."""
    sharding = batch_sharded(mesh, spec)
    return jax.tree_util.tree_map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), host_batch)


def data_parallel(local_fn, mesh: Mesh, *, num_batch_args: int = 1, donate_state: bool = False,
                  batch_spec=AXIS):
    """jit(shard_map(local_fn)) for ``local_fn(state, *batches) -> (state', outputs)``.

    The state (first argument) and every output are replicated; the batches are split over 'batch'
    along their example axis (``batch_spec``, see ``batch_sharded``).
    """
    spec = P(*batch_spec) if isinstance(batch_spec, tuple) else P(batch_spec)
    specs_in = (P(),) + (spec,) * num_batch_args
    mapped = jax.shard_map(local_fn, mesh=mesh, in_specs=specs_in, out_specs=P(),
                           check_vma=False)
    return jax.jit(mapped, donate_argnums=(0,) if donate_state else ())


def is_main_process() -> bool:
    return jax.process_index() == 0
