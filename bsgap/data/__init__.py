"""Datasets through TFDS: the embedded offline ones (built locally on first use) and any prepared
TFDS dataset, loaded into host memory as float32 images and int32 labels."""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from bsgap.data.sources import ArraySplit, TrainStream, eval_batches


class DataError(RuntimeError):
    """A dataset that cannot be loaded; the message says where it looked and how to fix it."""


@dataclasses.dataclass
class Dataset:
    name: str
    train: ArraySplit
    eval: ArraySplit
    num_classes: int
    eval_split: str


def _prepared(builder) -> bool:
    return os.path.isdir(builder.data_path) and builder.info.splits


def _to_arrays(data: dict) -> dict:
    image = data["image"]
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    return {"image": np.asarray(image, np.float32), "label": np.asarray(data["label"], np.int32)}


def load_dataset(name: str, *, data_dir: str | None = None, eval_split: str = "test",
                 train_split: str = "train") -> Dataset:
    """Load a TFDS dataset into memory; embedded datasets are generated locally if missing.

    Real datasets must already be prepared in ``data_dir`` (tests and runs never download).
    """
    import tensorflow_datasets as tfds

    from bsgap.data import builders

    base = name.split("/")[0]
    data_dir = os.path.expanduser(data_dir) if data_dir else None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as err:  # unknown name, bad config
        raise DataError(f"dataset={name!r} is not a TFDS dataset ({err}). Embedded datasets: "
                        f"{sorted(builders.EMBEDDED)} (e.g. 'mnist1d/small')") from None
    if base in builders.EMBEDDED:
        if not _prepared(builder):
            builder.download_and_prepare()
    elif not os.path.isdir(builder.data_path):
        raise DataError(f"dataset={name!r} is not prepared under {builder.data_dir}. Prepare it "
                        f"once with `tfds build {name} --data_dir=...` (network needed) and pass "
                        "--config.data_dir")
    splits = builder.info.splits
    for split in (train_split, eval_split):
        if split not in splits:
            raise DataError(f"dataset={name!r} has no split {split!r}; it has {list(splits)}")
    train = tfds.as_numpy(builder.as_dataset(split=train_split, batch_size=-1))
    evaluation = tfds.as_numpy(builder.as_dataset(split=eval_split, batch_size=-1))
    return Dataset(name=name, train=ArraySplit(_to_arrays(train)),
                   eval=ArraySplit(_to_arrays(evaluation)),
                   num_classes=builder.info.features["label"].num_classes, eval_split=eval_split)


__all__ = ["ArraySplit", "DataError", "Dataset", "TrainStream", "eval_batches", "load_dataset"]
