"""A numpy copy of a prepared TFDS split, so that in-memory runs start without TensorFlow.

Reading a split through ``builder.as_dataset`` imports TensorFlow (~10 s on a 2-core machine,
most of a small run's start-up). The first in-memory load of a split therefore also writes its
raw arrays (``image`` as stored, ``label`` int32) to ``<builder.data_dir>/bsgap-arrays-<split>.npz``
next to the TFDS files, with the names, sizes and modification times of the split's TFDS files;
later loads read the .npz when those still match (re-prepared data is re-read from TFDS). Only on
local filesystems (not gs:// and the like), written atomically under a unique temporary name, and
best-effort: a read-only data directory just means every run reads through TFDS.
"""
from __future__ import annotations

import json
import os
import re
import tempfile

import numpy as np

PREFIX = "bsgap-arrays-"


def _cacheable(builder, split: str) -> bool:
    """A plain split name (not a TFDS slice such as 'train[:10%]') on a local filesystem."""
    return re.fullmatch(r"[A-Za-z0-9_.-]+", split) is not None and "://" not in str(
        builder.data_dir)


def _source_files(builder, split: str) -> list:
    """[(file name, size, mtime_ns)] of the split's TFDS files, in order."""
    directory = str(builder.data_dir)
    out = []
    for name in builder.info.splits[split].filenames:
        stat = os.stat(os.path.join(directory, name))
        out.append([name, stat.st_size, stat.st_mtime_ns])
    return out


def cache_path(builder, split: str) -> str:
    return os.path.join(str(builder.data_dir), f"{PREFIX}{split}.npz")


def read(builder, split: str) -> dict | None:
    """The cached arrays of ``split``, or None when absent, stale or unreadable."""
    path = cache_path(builder, split)
    if not _cacheable(builder, split) or not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if json.loads(str(data["sources"])) != _source_files(builder, split):
                return None
            return {"image": data["image"], "label": data["label"]}
    except Exception:  # a torn or foreign file: read through TFDS (and rewrite it)
        return None


def write(builder, split: str, arrays: dict) -> None:
    path = cache_path(builder, split)
    if not _cacheable(builder, split):
        return
    try:
        sources = json.dumps(_source_files(builder, split))
        fd, tmp = tempfile.mkstemp(prefix=f".{PREFIX}{split}-", suffix=".npz",
                                   dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, image=arrays["image"], label=arrays["label"],
                         sources=np.array(sources))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    except Exception:  # best-effort: a read-only or full data directory, an unexpected layout
        return


def load_split(builder, split: str) -> dict:
    """{'image': as stored, 'label': int32} of a whole prepared split: from the cache when valid,
    else through TFDS (then cached)."""
    arrays = read(builder, split)
    if arrays is not None:
        return arrays
    import tensorflow_datasets as tfds

    data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    arrays = {"image": np.asarray(data["image"]), "label": np.asarray(data["label"], np.int32)}
    write(builder, split, arrays)
    return arrays
