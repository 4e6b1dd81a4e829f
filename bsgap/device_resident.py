"""Small splits kept on the devices instead of re-sent every pass (issue 16, part 11).

A dataset's eval split, and a train split held in host memory as final arrays (no tf.data
preprocessing: ``Dataset.preprocess is None``), are sent again at every evaluation and step
although they never change. Under ``device_resident_bytes`` per device:

  * train split: its arrays (as sent: uint8 images where ``image_transfer`` is uint8) are put on
    every device once; a step then sends only this process's rows of the batch's dataset indices
    (``TrainStream.indices``: 4 bytes an example) and a jitted gather on each device takes its
    rows from its own copy. The indices are those of the streamed batches, so the batch is the
    streamed batch, bit for bit (tests/test_device_resident.py).
  * eval split: its padded global batches (``eval_batches``) are made once, at the first
    evaluation, and kept on the devices for every later one; this holds for datasets that
    tf.data preprocesses too (evaluation is deterministic), so CIFAR's test split qualifies.

Each device holds a whole copy of the train split and its share of the eval split; the bytes
count in ``microbatch_size='auto'``'s memory budget (``MemoryBudget.resident_bytes``).
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import PartitionSpec as P

from bsgap import parallel


DEFAULT_DEVICE_RESIDENT_BYTES = 64 << 20   # config device_resident_bytes


def plan_resident(data, *, limit_bytes: int, eval_batch_size: int, num_devices: int,
                  process_count: int = 1) -> dict:
    """Which splits of ``data`` stay on the devices within ``limit_bytes`` per device: the eval
    split first (its batches are the same at every evaluation, whatever the source: evaluation
    has no random augmentation), then the train split if both fit and it is held in memory as
    final arrays (a tf.data preprocessing pass, e.g. random augmentation, makes new batches
    every time). config.json records the plan (``environment.device_resident``)."""
    plan = {"limit_bytes": int(limit_bytes), "train": False, "eval": False,
            "bytes_per_device": 0}
    eval_bytes = eval_split_bytes_per_device(data, eval_batch_size, num_devices, process_count)
    if eval_bytes <= limit_bytes:
        plan.update(eval=True, bytes_per_device=eval_bytes)
    if data.preprocess is not None or not hasattr(data.train, "wire_arrays"):
        return dict(plan, reason=f"eval split {eval_bytes:,} bytes a device; limit "
                    f"{int(limit_bytes):,}; the train split is preprocessed by tf.data every pass")
    train_bytes = tree_bytes(data.train.wire_arrays)
    if plan["bytes_per_device"] + train_bytes <= limit_bytes:
        plan.update(train=True, bytes_per_device=plan["bytes_per_device"] + train_bytes)
    return dict(plan, reason=f"train split {train_bytes:,} bytes a device, eval split "
                f"{eval_bytes:,}; limit {int(limit_bytes):,}")


def tree_bytes(tree) -> int:
    return int(sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(tree)))


def eval_split_bytes_per_device(data, eval_batch_size: int, num_devices: int,
                                process_count: int = 1) -> int:
    """Per-device bytes of the padded eval batches as sent (``Dataset.wire_spec`` and the mask):
    ceil(N / B) batches of B (a streamed split on several processes may need one more batch,
    counted)."""
    per_example = 4 + sum(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                          for shape, dtype in data.wire_spec.values())   # 4: the mask
    batches = -(-data.eval.num_examples // eval_batch_size) + (1 if process_count > 1 else 0)
    return batches * eval_batch_size * per_example // num_devices


class ResidentTrainSplit:
    """The train split's arrays on every device; ``batch(indices)`` gathers a global batch."""

    def __init__(self, mesh, arrays: dict, batch_spec=parallel.AXIS):
        self.mesh, self.batch_spec = mesh, batch_spec
        self.arrays = parallel.replicate(mesh, {k: np.asarray(v) for k, v in arrays.items()})
        spec = P(*batch_spec) if isinstance(batch_spec, tuple) else P(batch_spec)

        def gather(resident, idx):
            return jax.tree_util.tree_map(lambda a: a[idx], resident)

        self._gather = jax.jit(jax.shard_map(gather, mesh=mesh, in_specs=(P(), spec),
                                             out_specs=spec, check_vma=False))

    def batch(self, process_indices: np.ndarray) -> dict:
        """The global batch whose rows on this process are the examples ``process_indices``
        (shape (rows,), or (trials, rows) for per-trial data orders)."""
        idx = parallel.global_batch(self.mesh, np.asarray(process_indices, np.int32),
                                    self.batch_spec)
        return self._gather(self.arrays, idx)


class ResidentEval:
    """``batches(make)``: the device batches ``make()`` yields, made at the first call only."""

    def __init__(self):
        self._batches = None

    def batches(self, make):
        if self._batches is None:
            self._batches = list(make())
        return self._batches
