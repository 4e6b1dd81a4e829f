"""Splits kept on the devices (config device_resident_bytes; issue 16, part 11): the gathered
batches are the streamed ones bit for bit, on 8 devices and per trial; a run with them resident
equals one without, exactly; the eval split is sent once, also through tf.data; the limit decides
what stays."""
import json
import os

import jax
import numpy as np
import pytest

from bsgap import parallel
from bsgap.data import load_dataset
from bsgap.device_resident import ResidentTrainSplit, plan_resident
from bsgap.run_config import ConfigError, validate
from bsgap.trainer import Trainer

from helpers import tiny_config


@pytest.mark.parametrize("dataset", ["digits32", "mnist1d/small"])
def test_resident_batches_are_the_streamed_batches(data_dir, dataset):
    """digits32 (uint8, as sent) and MNIST-1D (float32): 8 devices, steps across an epoch
    boundary, and two data orders stacked on a trial axis."""
    ds = load_dataset(dataset, data_dir=data_dir)
    mesh = parallel.make_mesh(8)
    streams = [ds.train_stream(64, seed=s, wire=True) for s in (0, 1)]
    one = ResidentTrainSplit(mesh, ds.train.wire_arrays)
    stacked = ResidentTrainSplit(mesh, ds.train.wire_arrays, (None, parallel.AXIS))
    for step in (0, 1, streams[0].steps_per_epoch, streams[0].steps_per_epoch + 3):
        host = streams[0].batch(step)
        device = jax.device_get(one.batch(streams[0].indices(step)))
        assert device["image"].dtype == host["image"].dtype
        for key in ("image", "label"):
            np.testing.assert_array_equal(device[key], host[key])
        both = jax.device_get(stacked.batch(np.stack([s.indices(step) for s in streams])))
        for k, s in enumerate(streams):
            np.testing.assert_array_equal(both["image"][k], s.batch(step)["image"])


def _run(data_dir, workdir, resident_bytes, monkeypatch=None):
    config = tiny_config(data_dir, num_devices=2, batch_size=32, num_steps=10, log_every_steps=5,
                         eval_every_steps=5, eval_batch_size=100, checkpoint_every_steps=None,
                         device_resident_bytes=resident_bytes)
    trainer = Trainer(config, workdir)
    calls = []
    if monkeypatch is not None:
        real = trainer.data.eval_batches
        monkeypatch.setattr(trainer.data, "eval_batches",
                            lambda *a, **k: calls.append(a) or real(*a, **k))
    trainer.run()

    def read(name):
        with open(os.path.join(workdir, name)) as f:
            return [json.loads(line) for line in f]
    with open(os.path.join(workdir, "config.json")) as f:
        plan = json.load(f)["environment"]["device_resident"]
    return read("metrics.jsonl"), read("eval.jsonl"), plan, calls


def _without_clock(records):
    return [{k: v for k, v in r.items() if k != "examples_per_second"} for r in records]


def test_run_with_resident_splits_equals_the_streamed_run(data_dir, tmp_path, monkeypatch):
    """The 8x8 digits MLP on 2 devices (uint8 batches gathered on the device: above)."""
    m_res, e_res, plan, calls = _run(data_dir, str(tmp_path / "res"), 64 << 20, monkeypatch)
    m_str, e_str, plan_off, _ = _run(data_dir, str(tmp_path / "off"), 0)
    assert plan["train"] and plan["eval"] and not plan_off["train"] and not plan_off["eval"]
    assert len(e_res) == 2 and len(calls) == 1           # two evaluations, the split sent once
    assert _without_clock(m_res) == _without_clock(m_str)   # bit for bit (floats from JSON)
    assert e_res == e_str


def test_the_limit_decides_and_bad_values_are_refused(data_dir):
    ds = load_dataset("digits32", data_dir=data_dir)
    train_bytes = ds.train.wire_arrays["image"].nbytes + ds.train.wire_arrays["label"].nbytes
    eval_bytes = 400 * (32 * 32 * 3 + 4 + 4) // 2    # 360 padded to 400, image + label + mask
    assert plan_resident(ds, limit_bytes=eval_bytes, eval_batch_size=100, num_devices=2) == {
        "limit_bytes": eval_bytes, "train": False, "eval": True, "bytes_per_device": eval_bytes,
        "reason": f"train split {train_bytes:,} bytes a device, eval split {eval_bytes:,}; "
                  f"limit {eval_bytes:,}"}
    both = plan_resident(ds, limit_bytes=eval_bytes + train_bytes, eval_batch_size=100,
                         num_devices=2)
    assert both["train"] and both["bytes_per_device"] == eval_bytes + train_bytes
    augmented = load_dataset("digits32", data_dir=data_dir, augment="cifar")   # through tf.data
    plan = plan_resident(augmented, limit_bytes=1 << 30, eval_batch_size=100, num_devices=2)
    assert plan["eval"] and not plan["train"] and plan["bytes_per_device"] == eval_bytes
    with pytest.raises(ConfigError, match=r"device_resident_bytes=-1 must be >= 0"):
        validate(tiny_config(data_dir, device_resident_bytes=-1))


def test_resident_eval_of_a_tf_data_split_equals_the_streamed_eval(data_dir, tmp_path):
    """digits32 through the cifar preset's tf.data pipeline: the eval split is kept (evaluation
    is deterministic), the train split is not; evaluations from the kept batches equal the
    streamed one exactly."""
    config = tiny_config(data_dir, dataset="digits32", augment="cifar", num_devices=2,
                         eval_batch_size=100)
    trainer = Trainer(config, str(tmp_path))
    trainer.compile()
    trainer.release()
    assert trainer.resident["eval"] and not trainer.resident["train"]
    kept = [trainer.evaluate(trainer.state) for _ in range(2)]
    trainer.resident = dict(trainer.resident, eval=False)
    assert kept[0] == kept[1] == trainer.evaluate(trainer.state)
    assert kept[0][0]["num_examples"] == 360
