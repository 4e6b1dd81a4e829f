"""Streaming reads of a prepared TFDS dataset (ImageNet-size), addressable by step for exact resume.

Sharding: process p of P reads only ``tfds.split_for_jax_process(split, p, P)`` (even splits whose
sizes differ by at most one), so a pod reads each example at most once per epoch. Every process
takes the same number of steps per epoch, ``floor(smallest shard / rows)`` with
``rows = global_batch / P``; the global batch is the concatenation of the processes' rows.

Order of one epoch on one process, a pure function of (seed, epoch, process):
  1. the shard's blocks (TFDS file instructions: a record range of one tfrecord file) are permuted;
  2. consecutive groups of ``cycle_length`` blocks are read interleaved, one record from each in
     turn, through a shuffle buffer seeded by (seed, epoch, process, group);
  3. the groups are concatenated and cut at ``steps_per_epoch * rows`` records.
Resuming at step s (epoch e = s // steps_per_epoch, offset o = (s mod steps_per_epoch) * rows)
reads nothing of the groups before the one holding o, and skips o - (group start) raw records of
that one before decoding. Each record's augmentation is seeded by (seed, process, epoch, position
in the epoch), so a resumed stream equals the uninterrupted one (tests/test_data_streaming.py).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import numpy as np
import tensorflow as tf

from bsgap.data import augment
from bsgap.data.indexed import AUTOTUNE, StepStream, finish

READ_BUFFER_BYTES = 8 << 20


@dataclasses.dataclass
class TfdsSplit:
    """A split of a prepared TFDS dataset, read as a stream of tfrecord records."""

    builder: Any
    split: str
    num_examples: int

    def blocks(self, process_index: int = 0, process_count: int = 1) -> list[tuple]:
        """(filename, skip, take) of this process's shard, in file order."""
        import tensorflow_datasets as tfds

        sub = self.split if process_count == 1 else tfds.split_for_jax_process(
            self.split, process_index=process_index, process_count=process_count)
        return [(str(fi.filename), int(fi.skip), int(fi.take))
                for fi in self.builder.info.splits[sub].file_instructions if fi.take > 0]

    def shard_sizes(self, process_count: int) -> list[int]:
        return [sum(b[2] for b in self.blocks(i, process_count)) for i in range(process_count)]

    @property
    def image_feature(self):
        return self.builder.info.features["image"]

    def parse_fn(self):
        """serialized record -> {'image': bytes (encoded images) or tensor, 'label': int}."""
        import tensorflow_datasets as tfds

        features = self.builder.info.features
        decoders = ({"image": tfds.decode.SkipDecoding()}
                    if isinstance(features["image"], tfds.features.Image) else None)

        def parse(record):
            example = features.deserialize_example(record, decoders=decoders)
            return example["image"], example["label"]
        return parse

    def source(self) -> tuple:
        """(input shape, dtype) of the decoded image feature."""
        feature = self.image_feature
        return tuple(feature.shape), tf.as_dtype(feature.np_dtype)


@dataclasses.dataclass(frozen=True)
class Group:
    blocks: tuple          # ((filename, skip, take), ...)
    shuffle_seed: int
    size: int


def epoch_groups(blocks, seed: int, epoch: int, process_index: int,
                 cycle_length: int) -> list[Group]:
    """The groups of one epoch on one process: permuted blocks, ``cycle_length`` per group."""
    rng = np.random.default_rng([seed, epoch, process_index])
    order = [blocks[i] for i in rng.permutation(len(blocks))]
    groups = []
    for start in range(0, len(order), cycle_length):
        members = tuple(order[start:start + cycle_length])
        groups.append(Group(members, int(rng.integers(1, 2**62)), sum(b[2] for b in members)))
    return groups


def group_plan(blocks, *, seed: int, process_index: int, cycle_length: int,
               examples_per_epoch: int, start_epoch: int, start_offset: int):
    """Endless reading plan from (start_epoch, start_offset): one dict per group to read.

    ``skip`` records of the shuffled group are dropped, then ``limit`` are taken; ``position`` is
    the position in the epoch of the first one taken.
    """
    offset = start_offset
    for epoch in itertools.count(start_epoch):
        start = 0
        for group in epoch_groups(blocks, seed, epoch, process_index, cycle_length):
            end = start + group.size
            lo, hi = max(start, offset), min(end, examples_per_epoch)
            if hi > lo:
                files, skips, takes = zip(*group.blocks)
                yield {"files": np.array(files), "skips": np.array(skips, np.int64),
                       "takes": np.array(takes, np.int64), "seed": group.shuffle_seed,
                       "skip": lo - start, "limit": hi - lo, "epoch": epoch, "position": lo}
            start = end
            if start >= examples_per_epoch:
                break
        offset = 0


def _read_block(filename, skip, take):
    return tf.data.TFRecordDataset(filename, buffer_size=READ_BUFFER_BYTES).skip(skip).take(take)


_PLAN_SIGNATURE = {
    "files": tf.TensorSpec((None,), tf.string), "skips": tf.TensorSpec((None,), tf.int64),
    "takes": tf.TensorSpec((None,), tf.int64), "seed": tf.TensorSpec((), tf.int64),
    "skip": tf.TensorSpec((), tf.int64), "limit": tf.TensorSpec((), tf.int64),
    "epoch": tf.TensorSpec((), tf.int64), "position": tf.TensorSpec((), tf.int64)}


class StreamingTrainStream(StepStream):
    """This process's rows of the global batch at each step, read from its shard of the split."""

    def __init__(self, split: TfdsSplit, preprocess: augment.Preprocess, global_batch: int,
                 seed: int, process_index: int = 0, process_count: int = 1, *,
                 cycle_length: int = 16, shuffle_buffer: int = 10_000, threads: int = 0,
                 wire: bool = False):
        if global_batch % process_count:
            raise ValueError(f"batch_size={global_batch} is not divisible by "
                             f"{process_count} processes")
        self.split, self.preprocess, self.seed = split, preprocess, seed
        self.process_index, self.rows = process_index, global_batch // process_count
        self.cycle_length, self.shuffle_buffer = cycle_length, shuffle_buffer
        self.threads = threads   # tf.data's private pool (indexed.finish)
        self.wire = wire         # uint8 pixels, normalized on the devices (data/transfer.py)
        self.blocks = split.blocks(process_index, process_count)
        smallest = min(split.shard_sizes(process_count))
        if self.rows > smallest:
            raise ValueError(f"batch_size={global_batch} needs {self.rows} examples per process "
                             f"but the smallest of {process_count} shards of "
                             f"{split.num_examples} examples has {smallest}")
        self.steps_per_epoch = smallest // self.rows
        self.examples_per_epoch = self.steps_per_epoch * self.rows
        super().__init__(self.dataset)

    def plan(self, start_step: int):
        epoch, step_in_epoch = divmod(start_step, self.steps_per_epoch)
        return group_plan(self.blocks, seed=self.seed, process_index=self.process_index,
                          cycle_length=self.cycle_length,
                          examples_per_epoch=self.examples_per_epoch, start_epoch=epoch,
                          start_offset=step_in_epoch * self.rows)

    def records(self, start_step: int) -> tf.data.Dataset:
        """(serialized record, {'epoch', 'position'}) in stream order from ``start_step``."""
        cycle, buffer = self.cycle_length, self.shuffle_buffer

        def read_group(g):
            blocks = tf.data.Dataset.from_tensor_slices((g["files"], g["skips"], g["takes"]))
            records = blocks.interleave(_read_block, cycle_length=cycle, block_length=1,
                                        num_parallel_calls=AUTOTUNE, deterministic=True)
            records = records.shuffle(buffer, seed=g["seed"]).skip(g["skip"]).take(g["limit"])
            meta = tf.data.Dataset.range(g["limit"]).map(
                lambda i: {"epoch": g["epoch"], "position": g["position"] + i})
            return tf.data.Dataset.zip((records, meta))

        plan = tf.data.Dataset.from_generator(lambda: self.plan(start_step),
                                              output_signature=_PLAN_SIGNATURE)
        return plan.flat_map(read_group).prefetch(AUTOTUNE)

    def dataset(self, start_step: int) -> tf.data.Dataset:
        parse, (input_shape, source_dtype) = self.split.parse_fn(), self.split.source()
        p, seed, salt, wire = self.preprocess, self.seed, self.process_index + 1, self.wire

        def per_example(record, meta):
            image, label = parse(record)
            image = augment.transform(
                image, augment.example_seed(seed, meta["epoch"], meta["position"], salt), p,
                train=True, input_shape=input_shape, source_dtype=source_dtype, wire=wire)
            return {"image": image, "label": tf.cast(label, tf.int32)}

        ds = self.records(start_step).map(per_example, num_parallel_calls=AUTOTUNE,
                                           deterministic=True)
        return finish(ds, self.rows, self.threads)


def streaming_eval_dataset(split: TfdsSplit, preprocess: augment.Preprocess, global_batch: int,
                           process_index: int = 0, process_count: int = 1, *,
                           threads: int = 0, wire: bool = False) -> tf.data.Dataset:
    """This process's shard of the whole split once, padded to the batch count all processes share.

    Every process yields ceil(largest shard / rows) batches; ``mask`` is 1 for the real examples,
    so the masks of all processes together count every example of the split exactly once.
    """
    rows = global_batch // process_count
    num_batches = math.ceil(max(split.shard_sizes(process_count)) / rows)
    blocks = split.blocks(process_index, process_count)
    files, skips, takes = zip(*blocks) if blocks else ((), (), ())
    parse, (input_shape, source_dtype) = split.parse_fn(), split.source()
    out_shape = preprocess.output_shape(input_shape)

    def per_example(record):
        image, label = parse(record)
        image = augment.transform(image, tf.zeros([2], tf.int64), preprocess, train=False,
                                  input_shape=input_shape, source_dtype=source_dtype, wire=wire)
        return {"image": image, "label": tf.cast(label, tf.int32), "mask": tf.constant(1.0)}

    real = tf.data.Dataset.from_tensor_slices(
        (tf.constant(files, tf.string), tf.constant(skips, tf.int64), tf.constant(takes, tf.int64)))
    real = real.interleave(_read_block, cycle_length=4, num_parallel_calls=AUTOTUNE,
                             deterministic=True)
    real = real.map(per_example, num_parallel_calls=AUTOTUNE, deterministic=True)
    pad = tf.data.Dataset.from_tensors({"image": tf.zeros(out_shape,
                                                          tf.uint8 if wire else tf.float32),
                                        "label": tf.constant(0, tf.int32),
                                        "mask": tf.constant(0.0)}).repeat()
    return finish(real.concatenate(pad).take(num_batches * rows), rows, threads)
