"""Datasets for training: ``load_dataset(name, ...)`` or ``load_dataset_from_config(config)``.

A ``Dataset`` gives the trainer two things, whatever the source:
  * ``train_stream(B, seed, process_index, process_count).batch(step)``: this process's rows of the
    global batch of ``step``, a pure function of (seed, step) so a resumed run is exact;
  * ``eval_batches(B, process_index, process_count)``: the whole eval split once over all
    processes, in padded batches with a ``mask`` of the real examples.
How the examples are held (``cache``):
  * in memory (``ArraySplit``), when the decoded split is small ('auto': fixed image shape and at
    most ``CACHE_MAX_BYTES``) or ``cache='memory'``; read once through TFDS, then from a numpy
    copy beside the TFDS files (``array_cache.py``), so later runs start without TensorFlow.
    With no augmentation or resizing the images are scaled to float32 [0, 1] (and standardized)
    once at load and batches are numpy gathers (``TrainStream``; with uint8 transfer the uint8
    images are kept as well, ``ArraySplit.wire``, and the devices normalize them:
    ``transfer.py``); otherwise they stay uint8 and the tf.data pipeline of ``indexed.py``
    augments them. Each process holds the whole split and reads its rows of every batch.
  * streamed from the prepared TFDS files (``TfdsSplit``, ``streaming.py``): ImageNet-size data,
    each process reading only its shard.
  * image files (``FileSplit``) for ``dataset='image_folder'``.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

# First: hides the GPUs (and Keras) from TensorFlow before anything here (or TFDS) imports it.
from bsgap.data import tensorflow_import  # noqa: F401,I001
from bsgap.data import array_cache
from bsgap.data.catalog import IMAGE_FOLDER, DataError, image_folder, prepared_builder
from bsgap.data.preprocess import PRESETS, Preprocess
from bsgap.data.sources import ArraySplit, TrainStream, eval_batches
from bsgap.data.transfer import FLOAT32, ImageTransfer, resolve_transfer

CACHE_CHOICES = ("auto", "memory", "none")
CACHE_MAX_BYTES = 2 << 30
DEFAULT_DATA_THREADS = 48   # tf.data's private thread pool (config data_threads; big_vision's 48)


@dataclasses.dataclass
class Dataset:
    name: str
    train: object          # ArraySplit | FileSplit | TfdsSplit
    eval: object
    num_classes: int
    eval_split: str
    preprocess: Preprocess | None = None   # None: arrays are final (numpy batches)
    shuffle_buffer: int = 10_000
    data_threads: int = DEFAULT_DATA_THREADS   # tf.data pipelines' private pool; 0: uncapped
    transfer: ImageTransfer = FLOAT32   # how batches travel to the devices (data/transfer.py)

    # ``wire=False`` (the default): model inputs, normalized on the host, for every consumer.
    # ``wire=True``: the batches as sent to the devices (uint8 images where ``transfer`` is
    # uint8), for a step that applies ``transfer.to_model_input`` itself (the trainer's).
    def train_stream(self, global_batch: int, seed: int, process_index: int = 0,
                     process_count: int = 1, *, wire: bool = False):
        """Object with ``batch(step)``: this process's rows of the global batch at ``step``."""
        wire = wire and self.transfer.on_device
        if self.preprocess is None:   # numpy only (no TensorFlow import)
            return TrainStream(self.train, global_batch, seed, process_index, process_count,
                               wire=wire)
        from bsgap.data.streaming import StreamingTrainStream, TfdsSplit

        if isinstance(self.train, TfdsSplit):
            return StreamingTrainStream(self.train, self.preprocess, global_batch, seed,
                                        process_index, process_count,
                                        shuffle_buffer=self.shuffle_buffer,
                                        threads=self.data_threads, wire=wire)
        from bsgap.data.indexed import IndexedTrainStream

        return IndexedTrainStream(self.train, self.preprocess, global_batch, seed,
                                  process_index, process_count, threads=self.data_threads,
                                  wire=wire)

    def eval_batches(self, global_batch: int, process_index: int = 0, process_count: int = 1,
                     *, wire: bool = False):
        """Padded batches covering the eval split once across processes (with 'mask')."""
        wire = wire and self.transfer.on_device
        if self.preprocess is None:
            return eval_batches(self.eval, global_batch, process_index, process_count, wire=wire)
        from bsgap.data.streaming import TfdsSplit, streaming_eval_dataset

        if isinstance(self.eval, TfdsSplit):
            ds = streaming_eval_dataset(self.eval, self.preprocess, global_batch,
                                        process_index, process_count, threads=self.data_threads,
                                        wire=wire)
        else:
            from bsgap.data.indexed import indexed_eval_dataset

            ds = indexed_eval_dataset(self.eval, self.preprocess, global_batch, process_index,
                                      process_count, threads=self.data_threads, wire=wire)
        return ds.as_numpy_iterator()

    @property
    def wire_spec(self) -> dict:
        """``element_spec`` of the batches as sent to the devices (``wire=True``)."""
        spec = self.element_spec
        if self.transfer.on_device:
            spec = dict(spec, image=(spec["image"][0], np.dtype(np.uint8)))
        return spec

    @property
    def element_spec(self) -> dict:
        """{'image': (shape, dtype), 'label': ((), int32)} of one training example as batched."""
        if self.preprocess is None:
            return {k: (v.shape[1:], v.dtype) for k, v in self.train.arrays.items()}
        shape = self.preprocess.output_shape(_input_shape(self.train))
        return {"image": (tuple(shape), np.dtype(np.float32)), "label": ((), np.dtype(np.int32))}

    def sample_images(self, n: int) -> np.ndarray:
        """n images for shape inference (model init): real ones from memory, else zeros."""
        if self.preprocess is None:
            return self.train.arrays["image"][:n]
        shape, dtype = self.element_spec["image"]
        return np.zeros((n,) + tuple(shape), dtype)


def _input_shape(split) -> tuple:
    if isinstance(split, ArraySplit):
        return tuple(split.arrays["image"].shape[1:])
    from bsgap.data.streaming import TfdsSplit

    if isinstance(split, TfdsSplit):
        return split.source()[0]
    return (None, None, 3)


def standardize(image: np.ndarray, p: Preprocess) -> np.ndarray:
    """float32 [0, 1] (uint8 / 255), minus mean, over std: numpy twin of augment.normalize and
    of ``ImageTransfer.to_model_input`` (the device's)."""
    out = image.astype(np.float32) / np.float32(255.0) if image.dtype == np.uint8 \
        else np.asarray(image, np.float32)
    if p.pixel_mean:
        out = out - np.asarray(p.pixel_mean, np.float32)
        if p.pixel_std:
            out = out / np.asarray(p.pixel_std, np.float32)
    return out


def _load_arrays(builder, split: str, p: Preprocess, final: bool,
                 transfer: ImageTransfer) -> ArraySplit:
    data = array_cache.load_split(builder, split)   # without TensorFlow once cached
    if not final:   # raw images; the tf.data pipeline of indexed.py preprocesses them
        return ArraySplit({"image": data["image"], "label": data["label"]})
    split_arrays = ArraySplit({"image": standardize(data["image"], p), "label": data["label"]})
    if transfer.on_device:   # the uint8 images too, as sent to the devices
        split_arrays.wire = {"image": data["image"], "label": data["label"]}
    return split_arrays


def _cache_in_memory(cache: str, name: str, shape, dtype, num_examples: int, final: bool,
                     transfer: ImageTransfer = FLOAT32) -> bool:
    static = all(d is not None for d in shape)
    if cache == "memory" and not static:
        raise DataError(f"cache='memory': dataset={name!r} has images of variable shape "
                        f"{tuple(shape)}; only fixed-shape datasets are cached (use 'auto')")
    if cache != "auto":
        return cache == "memory"
    itemsize = 4 + (1 if transfer.on_device else 0) if final else np.dtype(dtype).itemsize
    return static and num_examples * math.prod(shape) * itemsize <= CACHE_MAX_BYTES


def load_dataset(name: str, *, data_dir=None, eval_split: str = "test",
                 train_split: str = "train", manual_dir=None, augment: str = "none",
                 image_size=None, cache: str = "auto", pixel_mean=(), pixel_std=(),
                 download: bool = False, process_count: int = 1,
                 shuffle_buffer: int = 10_000,
                 data_threads: int = DEFAULT_DATA_THREADS,
                 image_transfer: str = "auto") -> Dataset:
    """Open (preparing where allowed) a dataset and choose how to hold and preprocess it, and how
    its batches travel to the devices (``image_transfer``: bsgap/data/transfer.py)."""
    if cache not in CACHE_CHOICES:
        raise DataError(f"cache={cache!r} is not one of {CACHE_CHOICES}")
    if isinstance(data_threads, bool) or not isinstance(data_threads, int) or data_threads < 0:
        raise DataError(f"data_threads={data_threads!r} must be an integer >= 0 (0: tf.data's "
                        "own thread pools, uncapped)")
    try:
        p = Preprocess(augment=augment, image_size=image_size, pixel_mean=tuple(pixel_mean),
                       pixel_std=tuple(pixel_std))
    except ValueError as err:
        raise DataError(str(err)) from None
    if name == IMAGE_FOLDER:
        from bsgap.data.indexed import FileSplit

        train, evaluation, names = image_folder(manual_dir, train_split, eval_split)
        _check_shape(name, p, (None, None, 3))
        transfer = resolve_transfer(image_transfer, dataset=name, source_dtype=np.uint8,
                                    preprocess=p, input_shape=(None, None, 3))
        return Dataset(name, FileSplit(*train), FileSplit(*evaluation), len(names), eval_split, p,
                       data_threads=data_threads, transfer=transfer)

    builder = prepared_builder(name, data_dir=data_dir, manual_dir=manual_dir,
                               download=download, process_count=process_count)
    info = builder.info
    for split in (train_split, eval_split):
        try:
            info.splits[split]
        except Exception:
            raise DataError(f"dataset={name!r} has no split {split!r}; it has "
                            f"{list(info.splits)}") from None
    if "image" not in info.features or "label" not in info.features:
        raise DataError(f"dataset={name!r} has features {list(info.features)}; bsgap reads "
                        "'image' and 'label'")
    feature = info.features["image"]
    shape, dtype = tuple(feature.shape), np.dtype(feature.np_dtype)
    _check_shape(name, p, shape)
    if len(shape) == 3 and shape[-1]:
        p = dataclasses.replace(p, channels=shape[-1])
    final = p.is_identity(shape)
    transfer = resolve_transfer(image_transfer, dataset=name, source_dtype=dtype, preprocess=p,
                                input_shape=shape)
    sizes = [info.splits[s].num_examples for s in (train_split, eval_split)]
    num_classes = info.features["label"].num_classes
    if _cache_in_memory(cache, name, shape, dtype, sum(sizes), final, transfer):
        train = _load_arrays(builder, train_split, p, final, transfer)
        evaluation = _load_arrays(builder, eval_split, p, final, transfer)
        return Dataset(name, train, evaluation, num_classes, eval_split,
                       None if final else p, shuffle_buffer, data_threads, transfer)
    from bsgap.data.streaming import TfdsSplit

    if getattr(info.file_format, "value", info.file_format) != "tfrecord":
        raise DataError(f"dataset={name!r} is stored as {info.file_format}; streaming reads "
                        "tfrecord files (prepare it with file_format='tfrecord', or use "
                        "cache='memory')")
    return Dataset(name, TfdsSplit(builder, train_split, sizes[0]),
                   TfdsSplit(builder, eval_split, sizes[1]), num_classes, eval_split, p,
                   shuffle_buffer, data_threads, transfer)


def _check_shape(name, p: Preprocess, shape) -> None:
    if p.augment != "none" and len(shape) != 3:
        raise DataError(f"augment={p.augment!r} needs images (H, W, C); dataset={name!r} has "
                        f"examples of shape {shape} (use augment='none')")
    try:
        p.output_shape(shape)
    except ValueError as err:
        raise DataError(f"dataset={name!r}: {err}") from None


def load_dataset_from_config(config, process_count: int = 1) -> Dataset:
    """``load_dataset`` with the data fields of a run config (configs/default.py); fields a config
    predating them lacks (e.g. an old run's config.json) take their defaults."""
    get = config.get
    return load_dataset(
        config.dataset, data_dir=get("data_dir"), eval_split=get("eval_split", "test"),
        train_split=get("train_split", "train"), manual_dir=get("manual_dir"),
        augment=get("augment", "none"), image_size=get("image_size"),
        cache=get("cache", "auto"), pixel_mean=tuple(get("pixel_mean", ())),
        pixel_std=tuple(get("pixel_std", ())), download=get("download", False),
        process_count=process_count, shuffle_buffer=get("shuffle_buffer", 10_000),
        data_threads=get("data_threads", DEFAULT_DATA_THREADS),
        image_transfer=get("image_transfer", "auto"))


__all__ = ["ArraySplit", "CACHE_CHOICES", "DEFAULT_DATA_THREADS", "DataError", "Dataset",
           "ImageTransfer", "PRESETS", "Preprocess", "TrainStream", "eval_batches", "load_dataset",
           "load_dataset_from_config", "standardize"]
