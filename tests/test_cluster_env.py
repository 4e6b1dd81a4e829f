"""What the code hands the platform on clusters, checked without one: SLURM environments as
SLURM sets them (jax.distributed.initialize monkeypatched, and JAX's own SLURM detection run on
the result)."""
import jax
import pytest
from jax._src import clusters

from bsgap import parallel

SLURM_VARS = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
              "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE", "SLURM_STEP_TASKS_PER_NODE",
              "SLURM_TASKS_PER_NODE", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "SLURM_GPUS_ON_NODE",
              "CUDA_VISIBLE_DEVICES", "JAX_LOCAL_DEVICE_IDS", "TPU_WORKER_HOSTNAMES",
              "BSGAP_MULTIHOST", "JAX_COORDINATOR_ADDRESS")


def _slurm(monkeypatch, **env):
    for var in SLURM_VARS:
        monkeypatch.delenv(var, raising=False)
    base = dict(SLURM_JOB_ID="4242", SLURM_STEP_NODELIST="gpu[017-018]", SLURM_NTASKS="2",
                SLURM_PROCID="1", SLURM_LOCALID="0")
    for var, value in {**base, **env}.items():
        monkeypatch.setenv(var, value)


def _initialize_kwargs(monkeypatch) -> dict:
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    parallel.initialize_distributed()
    assert len(calls) == 1
    return calls[0]


@pytest.mark.parametrize("env, expected", [
    # launch/slurm_array.sbatch: 2 nodes x 1 task, 8 GPUs each, as SLURM's gres plugin sets it
    (dict(SLURM_NTASKS_PER_NODE="1", CUDA_VISIBLE_DEVICES="0,1,2,3,4,5,6,7",
          SLURM_STEP_GPUS="0,1,2,3,4,5,6,7", SLURM_GPUS_ON_NODE="8"), list(range(8))),
    # the node's upper half: CUDA renumbers the visible GPUs 0..3
    (dict(SLURM_TASKS_PER_NODE="1(x2)", CUDA_VISIBLE_DEVICES="4,5,6,7",
          SLURM_GPUS_ON_NODE="4"), [0, 1, 2, 3]),
    # no CUDA_VISIBLE_DEVICES: the step's GPU list, else the count on the node
    (dict(SLURM_STEP_GPUS="2,3"), [0, 1]),
    (dict(SLURM_GPUS_ON_NODE="4"), [0, 1, 2, 3]),
    # 4 tasks on a node sharing its 8 GPUs: task SLURM_LOCALID=2 takes GPUs 4 and 5
    (dict(SLURM_NTASKS="8", SLURM_LOCALID="2", SLURM_NTASKS_PER_NODE="4",
          CUDA_VISIBLE_DEVICES="0,1,2,3,4,5,6,7", SLURM_GPUS_ON_NODE="8"), [4, 5]),
    # --gpus-per-task=2: each task sees only its own 2 (of the node's 8)
    (dict(SLURM_NTASKS="8", SLURM_LOCALID="3", SLURM_NTASKS_PER_NODE="4",
          CUDA_VISIBLE_DEVICES="6,7", SLURM_GPUS_ON_NODE="8"), [0, 1]),
])
def test_slurm_names_every_gpu_of_the_task(monkeypatch, env, expected):
    _slurm(monkeypatch, **env)
    kwargs = _initialize_kwargs(monkeypatch)
    assert kwargs == {"local_device_ids": expected}
    # JAX's own SLURM detection keeps them (and fills in the rest from SLURM's variables) ...
    address, count, pid, ids = clusters.ClusterEnv.auto_detect_unset_distributed_params(
        None, None, None, kwargs["local_device_ids"], None, 300)
    assert (address, count, pid, ids) == (
        f"gpu017:{4242 % 4096 + 65535 - 4095}", int(env.get("SLURM_NTASKS", "2")), 1, expected)
    # ... where, given nothing, it would have handed the task one GPU: [SLURM_LOCALID].
    assert clusters.ClusterEnv.auto_detect_unset_distributed_params(
        None, None, None, None, None, 300)[3] == [int(env.get("SLURM_LOCALID", "0"))]


def test_slurm_without_gpus_or_with_explicit_ids_leaves_jax_alone(monkeypatch):
    _slurm(monkeypatch, CUDA_VISIBLE_DEVICES="")
    assert _initialize_kwargs(monkeypatch) == {}
    _slurm(monkeypatch, JAX_LOCAL_DEVICE_IDS="1,3", CUDA_VISIBLE_DEVICES="0,1,2,3")
    assert _initialize_kwargs(monkeypatch) == {}       # JAX reads JAX_LOCAL_DEVICE_IDS itself


def test_slurm_uneven_sharing_is_refused(monkeypatch):
    _slurm(monkeypatch, SLURM_NTASKS="6", SLURM_NTASKS_PER_NODE="3",
           CUDA_VISIBLE_DEVICES="0,1,2,3", SLURM_GPUS_ON_NODE="4")
    with pytest.raises(ValueError, match="3 tasks on this node sharing its 4 GPUs"):
        parallel.initialize_distributed()


def test_slurm_submission_needs_a_real_partition():
    from launch import slurm

    assert slurm.partition_error(["--partition=a100", "--time=1:00:00"], {}) is None
    assert slurm.partition_error(["-p", "a100"], {}) is None
    assert slurm.partition_error(["-pa100"], {}) is None
    assert slurm.partition_error([], {"SBATCH_PARTITION": "a100"}) is None
    assert "no SLURM partition is named" in slurm.partition_error(["--gpus-per-node=8"], {})
    assert "placeholder" in slurm.partition_error(["--partition=YOUR_GPU_PARTITION"], {})
