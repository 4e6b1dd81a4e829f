"""tf.data pipelines over random-access splits: decoded arrays in memory, or image files.

The order is exactly ``TrainStream``'s: epoch ``e`` visits ``permutation(seed, e)``, the global
batch of step ``s`` is slice ``s mod steps_per_epoch`` of it, and each process takes its contiguous
rows -- so the pod reads each example once per epoch, and the global batch does not depend on the
number of processes. Only the indices are computed in Python; loading (a row of the in-memory
array, or reading the file), decoding and the augmentation preset run in parallel tf.data maps.
The random augmentation of an example is seeded by (seed, epoch, its position in the epoch's
permutation), so a batch is a pure function of (seed, step): resuming at any step reproduces the
uninterrupted run, and the images do not depend on the process count or on tf.data's parallelism.
"""
from __future__ import annotations

import atexit
import dataclasses
import itertools
import weakref

import numpy as np
import tensorflow as tf

from bsgap.data import augment
from bsgap.data.sources import ArraySplit, TrainStream

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass
class FileSplit:
    """Images as files: ``paths[i]`` (JPEG or PNG) has class ``labels[i]``."""

    paths: np.ndarray
    labels: np.ndarray

    @property
    def num_examples(self) -> int:
        return int(self.labels.shape[0])


def finish(ds: tf.data.Dataset, rows: int, threads: int = 0) -> tf.data.Dataset:
    """Batch to this process's rows (whole batches only) and prefetch, deterministically.

    ``threads`` > 0 (config ``data_threads``) gives the pipeline a private pool of that many
    threads and one thread per op (``max_intra_op_parallelism=1``), as big_vision does: without
    it, every AUTOTUNE map sizes itself to the host's cores, and on a large host the pipeline can
    take them all from the training process. 0 leaves tf.data's defaults (uncapped)."""
    options = tf.data.Options()
    options.deterministic = True
    if threads:
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
    return ds.batch(rows, drop_remainder=True).prefetch(AUTOTUNE).with_options(options)


_LIVE: "weakref.WeakSet[StepStream]" = weakref.WeakSet()
_ABANDONED: list = []


@atexit.register
def _abandon_live_iterators() -> None:
    """Never destroy a running tf.data iterator at interpreter exit: keep it until the process ends.

    Destroying one cancels and joins its worker threads while holding the GIL. At exit that join
    has hung for good (seen once in ~5 full test runs: ``RootDataset::Iterator::~Iterator`` waiting
    on a worker thread that never finished, every thread idle), and a generator iterator destroyed
    after the interpreter is gone logs a FAILED_PRECONDITION. An iterator that is referenced from
    nowhere but here, with one extra reference the interpreter never gives back, is neither: the
    process exits with its threads, which is all the OS needs.
    """
    import ctypes

    for stream in list(_LIVE):
        it = stream.detach()
        if it is not None:
            _ABANDONED.append(it)
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(it))


class StepStream:
    """``batch(step)`` over datasets that yield consecutive steps from a start step.

    Asking for the step after the last one reads on from the running iterator (prefetched); any
    other step rebuilds the dataset from that step, so ``batch`` stays a function of the step.
    """

    def __init__(self, make_dataset):
        self._make, self._next, self._it = make_dataset, None, None
        _LIVE.add(self)

    def close(self) -> None:
        """Drop the running iterator (and its generator threads)."""
        self.detach()

    def detach(self):
        """The running iterator (or None), no longer this stream's."""
        it, self._it, self._next = self._it, None, None
        return it

    def batch(self, step: int) -> dict:
        if step != self._next:
            self._it = self._make(step).as_numpy_iterator()
        self._next = step + 1
        return next(self._it)

    def iterate(self, start_step: int, end_step: int):
        for step in range(start_step, end_step):
            yield self.batch(step)


def _loader(split):
    """(host fetch of rows, output signature, tf function row -> image) for a split kind."""
    if isinstance(split, ArraySplit):
        image, label = split.arrays["image"], split.arrays["label"]

        def fetch(idx):
            return {"image": image[idx], "label": label[idx]}

        signature = {"image": tf.TensorSpec((None,) + image.shape[1:], tf.as_dtype(image.dtype)),
                     "label": tf.TensorSpec((None,), tf.as_dtype(label.dtype))}
        return fetch, signature, lambda row: row["image"]
    if isinstance(split, FileSplit):
        def fetch(idx):
            return {"path": split.paths[idx], "label": split.labels[idx]}

        signature = {"path": tf.TensorSpec((None,), tf.string),
                     "label": tf.TensorSpec((None,), tf.as_dtype(split.labels.dtype))}
        return fetch, signature, lambda row: tf.io.read_file(row["path"])
    raise TypeError(f"not a random-access split: {type(split).__name__}")


def _source_info(split):
    if isinstance(split, ArraySplit):
        image = split.arrays["image"]
        return image.shape[1:], tf.as_dtype(image.dtype)
    return (None, None, None), tf.uint8


class IndexedTrainStream(StepStream):
    """This process's rows of the global batch at each step, preprocessed by ``preprocess``."""

    def __init__(self, split, preprocess: augment.Preprocess, global_batch: int, seed: int,
                 process_index: int = 0, process_count: int = 1, *, threads: int = 0,
                 wire: bool = False):
        self.threads, self.wire = threads, wire   # wire: uint8 pixels (bsgap/data/transfer.py)
        self.order = TrainStream(split, global_batch, seed, process_index, process_count)
        self.split, self.preprocess, self.seed = split, preprocess, seed
        self.process = (process_index, process_count)
        self.global_batch, self.steps_per_epoch = global_batch, self.order.steps_per_epoch
        self.rows = global_batch // process_count
        self.row_offset = process_index * self.rows
        super().__init__(self.dataset)

    def _host_rows(self, start_step: int):
        fetch, _, _ = _loader(self.split)
        order = TrainStream(self.split, self.global_batch, self.seed, *self.process)  # per thread
        for step in itertools.count(start_step):
            idx = order.indices(step)
            epoch, position = divmod(step, self.steps_per_epoch)
            rows = fetch(idx)
            rows["epoch"] = np.full(self.rows, epoch, np.int64)
            rows["position"] = (position * self.global_batch + self.row_offset
                                + np.arange(self.rows, dtype=np.int64))
            yield rows

    def dataset(self, start_step: int) -> tf.data.Dataset:
        """Batches for steps start_step, start_step + 1, ... (endless)."""
        _, signature, load = _loader(self.split)
        signature = dict(signature, epoch=tf.TensorSpec((None,), tf.int64),
                         position=tf.TensorSpec((None,), tf.int64))
        input_shape, source_dtype = _source_info(self.split)
        p, seed, wire = self.preprocess, self.seed, self.wire

        def per_example(row):
            image = augment.transform(
                load(row), augment.example_seed(seed, row["epoch"], row["position"]), p,
                train=True, input_shape=input_shape, source_dtype=source_dtype, wire=wire)
            return {"image": image, "label": tf.cast(row["label"], tf.int32)}

        ds = tf.data.Dataset.from_generator(lambda: self._host_rows(start_step),
                                            output_signature=signature)
        ds = ds.unbatch().map(per_example, num_parallel_calls=AUTOTUNE, deterministic=True)
        return finish(ds, self.rows, self.threads)


def indexed_eval_dataset(split, preprocess: augment.Preprocess, global_batch: int,
                         process_index: int = 0, process_count: int = 1, *,
                         threads: int = 0, wire: bool = False) -> tf.data.Dataset:
    """Padded global batches over the whole split (as ``eval_batches``), preprocessed for eval
    (``wire``: uint8 pixels, normalized on the devices).

    Batch ``k`` holds split rows ``k*B .. k*B+B-1`` (wrapping around to pad the last batch);
    this process gets its contiguous rows and ``mask`` marks the real examples.
    """
    fetch, signature, load = _loader(split)
    input_shape, source_dtype = _source_info(split)
    n, rows = split.num_examples, global_batch // process_count
    mine = slice(process_index * rows, (process_index + 1) * rows)

    def host_rows():
        for start in range(0, n, global_batch):
            idx = (np.arange(start, start + global_batch) % n)[mine]
            out = fetch(idx)
            out["mask"] = (np.arange(start, start + global_batch)[mine] < n).astype(np.float32)
            yield out

    def per_example(row):
        image = augment.transform(load(row), tf.zeros([2], tf.int64), preprocess, train=False,
                                  input_shape=input_shape, source_dtype=source_dtype, wire=wire)
        return {"image": image, "label": tf.cast(row["label"], tf.int32), "mask": row["mask"]}

    signature = dict(signature, mask=tf.TensorSpec((None,), tf.float32))
    ds = tf.data.Dataset.from_generator(host_rows, output_signature=signature)
    return finish(ds.unbatch().map(per_example, num_parallel_calls=AUTOTUNE,
                                   deterministic=True), rows, threads)
