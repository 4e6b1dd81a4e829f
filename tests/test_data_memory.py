"""In-memory and image-folder sources through tf.data: the cache choice, augmentation of cached
uint8 images, batches that do not depend on the process count, resume by step, full-split eval,
and the previous numpy path kept for datasets that need no preprocessing."""
import numpy as np
import pytest
import tensorflow_datasets as tfds

from bsgap.data import ArraySplit, DataError, TrainStream, load_dataset
from bsgap.data.indexed import FileSplit, IndexedTrainStream
from bsgap.data.streaming import TfdsSplit
from bsgap.data.testing import write_image_folder


def _digits32(data_dir, **kw):
    return load_dataset("digits32", data_dir=data_dir, **kw)


def _raw_digits32(data_dir, split):
    data = tfds.as_numpy(tfds.builder("digits32", data_dir=data_dir).as_dataset(
        split=split, batch_size=-1))
    return data["image"], data["label"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    write_image_folder(str(root), ["cat", "dog", "eel"], {"train": 6}, fmt="JPEG")
    write_image_folder(str(root), ["cat", "dog", "eel"], {"test": 4}, fmt="PNG", seed=1)
    return str(root)


def test_cache_choice_and_the_unchanged_default_path(data_dir):
    plain = load_dataset("sklearn_digits", data_dir=data_dir)
    assert plain.preprocess is None and plain.train.arrays["image"].dtype == np.float32
    assert isinstance(plain.train_stream(32, 0), TrainStream)
    final = _digits32(data_dir)  # no augmentation: scaled to [0, 1] once, numpy batches
    image, _ = _raw_digits32(data_dir, "train")
    assert final.preprocess is None
    np.testing.assert_array_equal(final.train.arrays["image"], image / np.float32(255))
    cached = _digits32(data_dir, augment="cifar")
    assert cached.train.arrays["image"].dtype == np.uint8
    assert isinstance(cached.train_stream(32, 0), IndexedTrainStream)
    assert isinstance(_digits32(data_dir, augment="cifar", cache="none").train, TfdsSplit)


@pytest.mark.parametrize("kind", ["memory", "folder"])
def test_batches_do_not_depend_on_process_count_and_resume_by_step(data_dir, folder, kind):
    if kind == "memory":
        ds = _digits32(data_dir, augment="cifar")
    else:
        ds = load_dataset("image_folder", manual_dir=folder, augment="inception", image_size=24)
    batch = 12 if kind == "memory" else 6
    whole = ds.train_stream(batch, seed=7)
    steps = [0, 1, 2, whole.steps_per_epoch + 1, 3 * whole.steps_per_epoch]
    reference = {s: whole.batch(s) for s in steps}
    for processes in (2, 3):
        parts = [ds.train_stream(batch, 7, p, processes) for p in range(processes)]
        # Out of order (each batch is a function of the step: a rebuilt pipeline), then 1 and 2
        # read on from the running one (each rebuild costs ~0.4 s of tracing the augmentation).
        for s in steps[3:][::-1] + steps[:3]:
            rows = [part.batch(s) for part in parts]
            for key in ("image", "label"):
                np.testing.assert_array_equal(np.concatenate([r[key] for r in rows]),
                                              reference[s][key])
    other = ds.train_stream(batch, seed=8).batch(0)
    assert not np.array_equal(other["image"], reference[0]["image"])


def test_cached_images_are_crops_of_the_padded_originals(data_dir):
    ds = _digits32(data_dir, augment="cifar")
    stream = ds.train_stream(16, seed=1)
    order = TrainStream(ds.train, 16, seed=1)
    originals = ds.train.arrays["image"]
    for step in (0, 90):
        out = np.rint(stream.batch(step)["image"] * 255).astype(np.uint8)
        for image, index in zip(out, order.indices(step)):
            padded = np.pad(originals[index], ((4, 4), (4, 4), (0, 0)))
            windows = [padded[y:y + 32, x:x + 32] for y in range(9) for x in range(9)]
            assert any(np.array_equal(image, w) or np.array_equal(image, w[:, ::-1])
                       for w in windows)
        np.testing.assert_array_equal(stream.batch(step)["label"],
                                      ds.train.arrays["label"][order.indices(step)])


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_eval_is_the_whole_split_once(data_dir, folder, processes):
    image, label = _raw_digits32(data_dir, "test")
    for kw in ({"augment": "cifar"}, {"augment": "cifar", "cache": "none"}):
        ds = _digits32(data_dir, **kw)
        for global_batch in (48, 360, 1002):
            seen_images, seen_labels = [], []
            for p in range(processes):
                for batch in ds.eval_batches(global_batch, p, processes):
                    assert batch["image"].shape == (global_batch // processes, 32, 32, 3)
                    real = batch["mask"] > 0
                    seen_images.append(batch["image"][real])
                    seen_labels += list(batch["label"][real])
            assert len(seen_labels) == 360
            assert sorted(seen_labels) == sorted(label)
            got = np.concatenate(seen_images)  # eval of the cifar preset: the image itself
            order = np.lexsort(got.reshape(360, -1).T)
            expected = (image / np.float32(255))
            np.testing.assert_array_equal(got[order], expected[np.lexsort(
                expected.reshape(360, -1).T)])
    ds = load_dataset("image_folder", manual_dir=folder, augment="inception", image_size=24)
    labels = [lab for p in range(processes) for b in ds.eval_batches(6, p, processes)
              for lab in b["label"][b["mask"] > 0]]
    assert sorted(labels) == [0] * 4 + [1] * 4 + [2] * 4


def test_image_folder_labels_and_shapes(folder):
    ds = load_dataset("image_folder", manual_dir=folder, augment="mishkin", image_size=32)
    assert isinstance(ds.train, FileSplit) and ds.num_classes == 3
    assert ds.train.num_examples == 18 and ds.eval.num_examples == 12
    for path, label in zip(ds.train.paths, ds.train.labels):
        assert ["cat", "dog", "eel"][label] in path
    batch = ds.train_stream(6, seed=0).batch(0)
    assert batch["image"].shape == (6, 32, 32, 3) and set(batch["label"]) <= {0, 1, 2}
    assert ds.sample_images(2).shape == (2, 32, 32, 3)


def test_streamed_fixed_shape_dataset_trains_and_resumes(data_dir):
    ds = _digits32(data_dir, augment="cifar", cache="none")
    a, b = ds.train_stream(64, seed=2), ds.train_stream(64, seed=2)
    reference = [a.batch(s) for s in range(24)]  # past the epoch end (22 steps)
    for s in (21, 22, 23):
        np.testing.assert_array_equal(b.batch(s)["image"], reference[s]["image"])
    assert isinstance(ds.eval, TfdsSplit) and not isinstance(ds.train, ArraySplit)


EXIT_SCRIPT = """
import atexit, sys
def report():  # registered first, so it runs after bsgap's own exit handler
    from bsgap.data import indexed
    print("abandoned", len(indexed._ABANDONED), flush=True)
atexit.register(report)
from bsgap.data import load_dataset
ds = load_dataset("image_folder", manual_dir=sys.argv[1], augment="inception", image_size=24)
streams = [ds.train_stream(6, seed) for seed in range(3)]
for s in streams:
    s.batch(0)  # iterators running, prefetching, when the interpreter exits
streams[2].close()
"""


def test_live_streams_are_abandoned_not_destroyed_at_exit(folder):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, folder], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["abandoned", "2"]  # the closed stream had nothing to keep
    assert "FAILED_PRECONDITION" not in done.stderr


def test_data_threads_cap_the_pipelines(data_dir):
    """config data_threads: every tf.data pipeline (in-memory and streamed, train and eval) gets
    a private pool of that many threads and one thread per op; 0 keeps tf.data's defaults."""
    from bsgap.data.indexed import indexed_eval_dataset
    from bsgap.data.streaming import streaming_eval_dataset

    for cache in ("memory", "none"):
        for threads in (6, 0):
            ds = _digits32(data_dir, augment="cifar", cache=cache, data_threads=threads)
            evaluate = indexed_eval_dataset if cache == "memory" else streaming_eval_dataset
            for pipeline in (ds.train_stream(12, 0).dataset(0),
                             evaluate(ds.eval, ds.preprocess, 12, threads=ds.data_threads)):
                options = pipeline.options().threading
                if threads:
                    assert options.private_threadpool_size == 6, cache
                    assert options.max_intra_op_parallelism == 1, cache
                else:
                    assert options.private_threadpool_size is None, cache
                    assert options.max_intra_op_parallelism is None, cache
    assert load_dataset("sklearn_digits", data_dir=data_dir).data_threads == 48
    with pytest.raises(DataError, match=r"data_threads=-1 must be an integer >= 0"):
        _digits32(data_dir, data_threads=-1)
