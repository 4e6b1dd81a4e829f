"""In-memory splits, a deterministic resumable training stream, and padded full-split eval batches.

Training order: epoch ``e`` visits the examples in ``permutation(seed, e)``; the global batch for
step ``s`` is slice ``s mod steps_per_epoch`` of epoch ``s // steps_per_epoch`` (the last
``N mod B`` examples of each permutation are dropped, different ones every epoch). The batch for a
step is a pure function of (seed, step), so a resumed run reads exactly what an uninterrupted run
reads. Each process gets its contiguous rows of every global batch, so the hosts of a pod together
read each example once per epoch.

Evaluation covers the whole split exactly once: the last batch is padded and ``mask`` marks the
real examples (never ``drop_remainder``).
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np


@dataclasses.dataclass
class ArraySplit:
    """A split held in host memory: ``arrays['image']`` (N, ...) and ``arrays['label']`` (N,).

    ``wire``, when set, holds the same examples as they are sent to the devices (uint8 images,
    normalized there: bsgap/data/transfer.py); ``arrays`` stays what a model reads."""

    arrays: dict
    wire: dict | None = None

    @property
    def wire_arrays(self) -> dict:
        """The arrays as sent to the devices (``arrays`` where the host normalizes)."""
        return self.arrays if self.wire is None else self.wire

    @property
    def num_examples(self) -> int:
        return int(self.arrays["label"].shape[0])


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


class TrainStream:
    """Batches of this process's rows of the global batch, addressable by step."""

    def __init__(self, split: ArraySplit, global_batch: int, seed: int,
                 process_index: int = 0, process_count: int = 1, *, wire: bool = False):
        if global_batch > split.num_examples:
            raise ValueError(f"batch_size={global_batch} exceeds the {split.num_examples} "
                             "training examples; use a smaller batch or a larger dataset")
        if global_batch % process_count:
            raise ValueError(f"batch_size={global_batch} is not divisible by "
                             f"{process_count} processes")
        self.split, self.global_batch, self.seed = split, global_batch, seed
        self._wire = wire   # batches of the arrays as sent (ArraySplit.wire_arrays)
        self.steps_per_epoch = split.num_examples // global_batch
        rows = global_batch // process_count
        self._rows = slice(process_index * rows, (process_index + 1) * rows)
        self._epoch, self._order = -1, None

    def indices(self, step: int) -> np.ndarray:
        """Dataset indices of this process's rows of the global batch at ``step``."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = epoch_permutation(self.split.num_examples, self.seed, epoch)
        start = position * self.global_batch
        return self._order[start:start + self.global_batch][self._rows]

    def batch(self, step: int) -> dict:
        idx = self.indices(step)
        arrays = self.split.wire_arrays if self._wire else self.split.arrays
        return {k: v[idx] for k, v in arrays.items()}

    def iterate(self, start_step: int, end_step: int) -> Iterator[dict]:
        for step in range(start_step, end_step):
            yield self.batch(step)


def eval_batches(split: ArraySplit, global_batch: int, process_index: int = 0,
                 process_count: int = 1, *, wire: bool = False) -> Iterator[dict]:
    """Padded global batches over the whole split; yields this process's rows with a 'mask'
    (``wire``: of the arrays as sent to the devices)."""
    arrays = split.wire_arrays if wire else split.arrays
    n = split.num_examples
    rows = global_batch // process_count
    for start in range(0, n, global_batch):
        stop = min(start + global_batch, n)
        real = stop - start
        idx = np.arange(start, start + global_batch) % n   # pad with wrapped real examples
        mask = (np.arange(global_batch) < real).astype(np.float32)
        sl = slice(process_index * rows, (process_index + 1) * rows)
        batch = {k: v[idx][sl] for k, v in arrays.items()}
        batch["mask"] = mask[sl]
        yield batch
