"""The numpy copy of a prepared split (bsgap/data/array_cache.py) equals TFDS's own read, is
refreshed when the TFDS files change or the copy is damaged, and lets an in-memory run's data
and logging start without importing TensorFlow."""
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bsgap.data import array_cache, load_dataset
from bsgap.data.catalog import prepared_builder
from helpers import ROOT


@pytest.fixture
def own_data_dir(data_dir, tmp_path):
    """A private copy of the session's prepared digits (these tests touch its files)."""
    shutil.copytree(os.path.join(data_dir, "sklearn_digits"), tmp_path / "sklearn_digits")
    return str(tmp_path)


def _tfds_arrays(builder, split):
    import tensorflow_datasets as tfds

    data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    return data["image"], data["label"]


def test_cached_split_equals_the_tfds_read_and_is_refreshed(own_data_dir):
    builder = prepared_builder("sklearn_digits", data_dir=own_data_dir)
    path = array_cache.cache_path(builder, "train")
    for f in os.listdir(str(builder.data_dir)):
        if f.startswith(array_cache.PREFIX):
            os.remove(os.path.join(str(builder.data_dir), f))
    first = load_dataset("sklearn_digits", data_dir=own_data_dir)   # through TFDS, writes
    assert os.path.exists(path)
    image, label = _tfds_arrays(builder, "train")
    cached = array_cache.read(builder, "train")
    np.testing.assert_array_equal(cached["image"], image)
    np.testing.assert_array_equal(cached["label"], label)
    assert cached["label"].dtype == np.int32
    second = load_dataset("sklearn_digits", data_dir=own_data_dir)  # from the copy
    for a, b in ((first.train, second.train), (first.eval, second.eval)):
        for key in ("image", "label"):
            np.testing.assert_array_equal(a.arrays[key], b.arrays[key])

    # The TFDS files changed (re-prepared): the copy is stale and is rewritten.
    shard = os.path.join(str(builder.data_dir), builder.info.splits["train"].filenames[0])
    stat = os.stat(shard)
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert array_cache.read(builder, "train") is None
    load_dataset("sklearn_digits", data_dir=own_data_dir)
    assert array_cache.read(builder, "train") is not None

    # A damaged copy is ignored (and replaced), never an error.
    with open(path, "wb") as f:
        f.write(b"not an npz")
    assert array_cache.read(builder, "train") is None
    again = load_dataset("sklearn_digits", data_dir=own_data_dir)
    np.testing.assert_array_equal(again.train.arrays["label"], label)
    assert array_cache.read(builder, "train") is not None


def test_sliced_splits_and_unwritable_directories_are_not_cached(own_data_dir, monkeypatch):
    builder = prepared_builder("sklearn_digits", data_dir=own_data_dir)
    directory = str(builder.data_dir)
    array_cache.write(builder, "train[:10]", {"image": np.zeros(1), "label": np.zeros(1)})
    assert not any("[" in f for f in os.listdir(directory))
    for f in os.listdir(directory):
        if f.startswith(array_cache.PREFIX):
            os.remove(os.path.join(directory, f))

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", directory)

    monkeypatch.setattr(array_cache.tempfile, "mkstemp", read_only)
    data = load_dataset("sklearn_digits", data_dir=own_data_dir)   # best-effort: still loads
    assert data.train.num_examples == 1437
    assert not any(f.startswith(array_cache.PREFIX) or f.startswith("." + array_cache.PREFIX)
                   for f in os.listdir(directory))


def test_in_memory_data_and_logging_do_not_import_tensorflow(data_dir, tmp_path):
    load_dataset("sklearn_digits", data_dir=data_dir)   # makes sure the copy exists
    script = textwrap.dedent(f"""
        import sys
        from bsgap.data import load_dataset
        from bsgap.logbook import Logbook
        data = load_dataset("sklearn_digits", data_dir={data_dir!r})
        batch = data.train_stream(32, 0).batch(0)
        evals = list(data.eval_batches(200))
        book = Logbook({str(tmp_path)!r}, tensorboard=True)
        book.train({{"step": 1, "train_loss": 0.5}})
        book.close()
        print("tensorflow" in sys.modules, batch["image"].shape, len(evals))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "False", result.stdout
