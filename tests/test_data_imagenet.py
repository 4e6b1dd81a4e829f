"""ImageNet through TFDS's own imagenet2012 builder, offline: a miniature ILSVRC2012 pair of tars in
the real layout is prepared from manual_dir, then streamed with the mishkin/inception presets.
Checks: labels (train from the synset tars, validation from TFDS's official label file), shapes,
seeds, resume == uninterrupted, per-process shards disjoint and complete, eval counts."""
import os
import types

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from bsgap.data import DataError, load_dataset
from bsgap.data.streaming import StreamingTrainStream, TfdsSplit
from bsgap.data.testing import official_validation_labels, write_ilsvrc2012_tars

SYNSETS = ("n01440764", "n01443537", "n01484850", "n01491361")
PER_CLASS, NUM_VAL, SHARDS = 12, 10, 4
NUM_TRAIN = PER_CLASS * len(SYNSETS)


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("ilsvrc2012")
    manual, data_dir = str(root / "manual"), str(root / "tfds")
    truth = write_ilsvrc2012_tars(manual, SYNSETS, PER_CLASS, NUM_VAL)
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=manual, num_shards=SHARDS))  # several tfrecord files: several blocks
    return types.SimpleNamespace(manual=manual, data_dir=data_dir, truth=truth, builder=builder,
                                 root=root)


def _load(mini, augment="mishkin", image_size=64, **kw):
    return load_dataset("imagenet2012", data_dir=mini.data_dir, eval_split="validation",
                        augment=augment, image_size=image_size, **kw)


def _file_names(stream, start_step, count):
    """File names of the records a stream reads, in order, from ``start_step``."""
    parse = stream.split.builder.info.features.deserialize_example
    names = stream.records(start_step).map(lambda record, meta: parse(record)["file_name"])
    return [n.decode() for n in names.take(count).as_numpy_iterator()]


def test_tfds_builder_prepares_the_mini_tars_offline(mini):
    info = mini.builder.info
    assert info.splits["train"].num_examples == NUM_TRAIN
    assert info.splits["validation"].num_examples == NUM_VAL
    assert len(info.splits["train"].file_instructions) == SHARDS
    names = info.features["label"].names
    for split in ("train", "validation"):
        for ex in tfds.as_numpy(mini.builder.as_dataset(split=split)):
            file_name = ex["file_name"].decode()
            assert names[ex["label"]] == mini.truth[split][file_name]
            assert ex["image"].ndim == 3 and ex["image"].shape[2] == 3
    # Validation labels are TFDS's official ones: image 1 is n01751748 (a sea snake).
    assert mini.truth["validation"]["ILSVRC2012_val_00000001.JPEG"] == "n01751748"
    assert official_validation_labels(3) == ["n01751748", "n09193705", "n02105855"]


def test_load_dataset_prepares_from_manual_dir_once(mini, tmp_path):
    ds = _load(types.SimpleNamespace(data_dir=str(tmp_path)), manual_dir=mini.manual)
    assert isinstance(ds.train, TfdsSplit) and ds.train.num_examples == NUM_TRAIN
    assert ds.eval.num_examples == NUM_VAL and ds.num_classes == 1000
    assert tfds.builder("imagenet2012", data_dir=str(tmp_path)).is_prepared()
    assert ds.element_spec == {"image": ((64, 64, 3), np.dtype(np.float32)),
                               "label": ((), np.dtype(np.int32))}


def test_stream_shapes_labels_and_seed(mini):
    ds = _load(mini)
    classes = {mini.builder.info.features["label"].str2int(s) for s in SYNSETS}
    a, b, other = (ds.train_stream(8, seed=s) for s in (0, 0, 1))
    assert a.steps_per_epoch == NUM_TRAIN // 8
    for step in range(8):
        x, y = a.batch(step), b.batch(step)
        assert x["image"].shape == (8, 64, 64, 3) and x["image"].dtype == np.float32
        assert x["label"].dtype == np.int32 and set(x["label"]) <= classes
        assert 0.0 <= x["image"].min() and x["image"].max() <= 1.0
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["label"], y["label"])
    assert not np.array_equal(a.batch(0)["image"], other.batch(0)["image"])


@pytest.mark.parametrize("cycle_length,shuffle_buffer", [(2, 5), (16, 10_000)])
def test_resume_equals_uninterrupted(mini, cycle_length, shuffle_buffer):
    ds = _load(mini, augment="inception", image_size=32)

    def stream():
        return StreamingTrainStream(ds.train, ds.preprocess, 8, seed=3,
                                    cycle_length=cycle_length, shuffle_buffer=shuffle_buffer)

    full = stream()
    reference = [full.batch(step) for step in range(18)]  # three epochs of 6 steps
    for start in (3, 6, 7, 13):
        resumed = stream()
        for step in range(start, min(start + 4, 18)):
            batch = resumed.batch(step)
            np.testing.assert_array_equal(batch["image"], reference[step]["image"])
            np.testing.assert_array_equal(batch["label"], reference[step]["label"])


def test_each_epoch_reads_every_example_once_in_a_new_order(mini):
    stream = StreamingTrainStream(_load(mini).train, _load(mini).preprocess, 8, seed=0,
                                  cycle_length=2, shuffle_buffer=5)
    names = _file_names(stream, 0, 3 * NUM_TRAIN)
    epochs = [names[i * NUM_TRAIN:(i + 1) * NUM_TRAIN] for i in range(3)]
    for epoch in epochs:
        assert sorted(epoch) == sorted(mini.truth["train"])
    assert epochs[0] != epochs[1] != epochs[2]
    assert _file_names(stream, 9, 10) == names[9 * 8:9 * 8 + 10]  # the skip lands exactly


@pytest.mark.parametrize("processes", [2, 3])
def test_process_shards_are_disjoint_and_complete(mini, processes):
    ds = _load(mini)
    covered = {}
    for p in range(processes):
        for filename, skip, take in ds.train.blocks(p, processes):
            covered.setdefault(filename, []).extend(range(skip, skip + take))
    for filename, records in covered.items():
        assert sorted(records) == list(range(len(records))), filename
    assert sum(len(r) for r in covered.values()) == NUM_TRAIN
    rows = 4
    read = []
    for p in range(processes):
        stream = StreamingTrainStream(ds.train, ds.preprocess, rows * processes, seed=0,
                                      process_index=p, process_count=processes)
        assert stream.steps_per_epoch == NUM_TRAIN // processes // rows
        read.append(_file_names(stream, 0, stream.examples_per_epoch))
    flat = [n for r in read for n in r]
    assert len(flat) == len(set(flat)) == NUM_TRAIN  # disjoint, and the epoch covers the split


@pytest.mark.parametrize("processes", [1, 2, 3])
@pytest.mark.parametrize("global_batch", [6, 12, 30])
def test_eval_covers_the_split_once(mini, processes, global_batch):
    ds = _load(mini)
    str2int = mini.builder.info.features["label"].str2int
    expected = sorted(str2int(s) for s in official_validation_labels(NUM_VAL))
    labels, counts = [], set()
    for p in range(processes):
        batches = list(ds.eval_batches(global_batch, p, processes))
        counts.add(len(batches))
        for batch in batches:
            assert batch["image"].shape == (global_batch // processes, 64, 64, 3)
            labels += list(batch["label"][batch["mask"] > 0])
    assert len(counts) == 1  # every process runs the same number of eval steps
    assert sorted(labels) == expected


def test_missing_data_errors_say_where_and_how(mini, tmp_path):
    empty = str(tmp_path / "empty")
    with pytest.raises(DataError) as err:
        load_dataset("imagenet2012", data_dir=empty, eval_split="validation",
                     augment="mishkin", image_size=128)
    message = str(err.value)
    assert empty in message and "--config.manual_dir" in message
    assert "ILSVRC2012_img_train.tar" in message and "ILSVRC2012_img_val.tar" in message
    half = tmp_path / "half"
    half.mkdir()
    os.symlink(os.path.join(mini.manual, "ILSVRC2012_img_train.tar"),
               half / "ILSVRC2012_img_train.tar")
    with pytest.raises(DataError, match=r"lacks \['ILSVRC2012_img_val.tar'\]") as err:
        load_dataset("imagenet2012", data_dir=empty, manual_dir=str(half), eval_split="validation",
                     augment="mishkin", image_size=128)
    assert str(half) in str(err.value)
    with pytest.raises(DataError, match=r"dataset='cifar10' is not prepared") as err:
        load_dataset("cifar10", data_dir=empty)
    assert empty in str(err.value) and "--config.download=True" in str(err.value)
    with pytest.raises(DataError, match="variable shape .* need image_size"):
        _load(mini, augment="none", image_size=None)
    with pytest.raises(DataError, match=r"has no split 'test'"):
        load_dataset("imagenet2012", data_dir=mini.data_dir, augment="mishkin", image_size=64)
    assert not tf.io.gfile.exists(os.path.join(empty, "cifar10"))  # nothing was downloaded


def test_prepare_cli(mini, tmp_path, capsys):
    from bsgap.data import prepare

    out = str(tmp_path / "prepared")
    assert prepare.main(["--dataset=imagenet2012", f"--data_dir={out}",
                         f"--manual_dir={mini.manual}"]) == 0
    assert f"'train': {NUM_TRAIN}" in capsys.readouterr().out
    assert tfds.builder("imagenet2012", data_dir=out).is_prepared()
    assert prepare.main(["--dataset=imagenet2012", f"--data_dir={tmp_path / 'none'}"]) == 2
    assert "--config.manual_dir" in capsys.readouterr().err
