"""uint8 transfer with normalization on the device (config image_transfer; issue 16, part 11):
the batch the model sees from the uint8 path against the host-normalized float32 batch of the
old path and against the normalization computed independently in float64, the same examples and
augmentations in both, a training run's metrics both ways, and clear refusals."""
import json
import os

import jax
import numpy as np
import pytest

from bsgap.data import DataError, load_dataset
from bsgap.run_config import ConfigError, validate
from bsgap.trainer import Trainer

from helpers import tiny_config

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
# Device vs host normalization: XLA multiplies by 1/255 where numpy divides by 255 (1 ulp of
# x/255 <= 6e-8), then subtracts the mean and divides by std >= 0.2: a few 1e-7 at most.
ATOL = 1e-6


def _digits32(data_dir, **kw):
    return load_dataset("digits32", data_dir=data_dir, pixel_mean=MEAN, pixel_std=STD, **kw)


def _on_device(ds, image):
    """What the step's first line computes from a transferred batch."""
    return np.asarray(jax.jit(ds.transfer.to_model_input)(image))


def _independent(image_uint8):
    """(x / 255 - mean) / std in float64: the normalization computed another way."""
    x = np.asarray(image_uint8, np.float64) / 255.0
    return (x - np.array(MEAN)) / np.array(STD)


@pytest.mark.parametrize("cache,augment", [("memory", "none"), ("memory", "cifar"),
                                           ("none", "cifar")])
def test_device_normalized_uint8_batch_equals_host_normalized_float32_batch(data_dir, cache,
                                                                              augment):
    """numpy (in memory, no augmentation), tf.data over memory and streamed from the TFDS files,
    each with the cifar preset's random crops and flips: same examples, same augmentation, same
    model input to float32 rounding, for training steps across an epoch boundary and the whole
    padded eval split."""
    ds = _digits32(data_dir, cache=cache, augment=augment)
    assert ds.transfer.dtype == "uint8" and not ds.transfer.rounded   # auto: no pixel changes
    assert ds.wire_spec["image"] == (ds.element_spec["image"][0], np.dtype(np.uint8))
    sent, host = ds.train_stream(64, seed=3, wire=True), ds.train_stream(64, seed=3)
    steps = ds.train.num_examples // 64
    for step in (0, 1, steps, steps + 1):    # and the next epoch's permutation
        a, b = sent.batch(step), host.batch(step)
        assert a["image"].dtype == np.uint8 and b["image"].dtype == np.float32
        np.testing.assert_array_equal(a["label"], b["label"])
        on_device = _on_device(ds, a["image"])
        assert on_device.dtype == np.float32
        np.testing.assert_allclose(on_device, b["image"], rtol=0, atol=ATOL)
        np.testing.assert_allclose(on_device, _independent(a["image"]), rtol=0, atol=ATOL)
    evals = zip(ds.eval_batches(200, wire=True), ds.eval_batches(200), strict=True)
    for a, b in evals:
        np.testing.assert_array_equal(a["mask"], b["mask"])
        np.testing.assert_array_equal(a["label"], b["label"])
        real = a["mask"] > 0   # the streamed padding is zeros in either dtype (masked out)
        np.testing.assert_allclose(_on_device(ds, a["image"])[real], b["image"][real], rtol=0,
                                   atol=ATOL)


def test_resampling_preset_rounds_only_when_asked(data_dir):
    """mishkin resizes (bilinear): 'auto' keeps float32, 'uint8' sends the resized pixels rounded
    to integers, so the model input moves by at most 0.5/255/std from the float32 path's, and
    is exactly an integer pixel's normalization."""
    auto = _digits32(data_dir, cache="memory", augment="mishkin", image_size=24)
    assert auto.transfer.dtype == "float32" and "resamples" in auto.transfer.reason
    ds = _digits32(data_dir, cache="memory", augment="mishkin", image_size=24,
                   image_transfer="uint8")
    assert ds.transfer.dtype == "uint8" and ds.transfer.rounded
    a, b = ds.train_stream(32, seed=1, wire=True).batch(0), ds.train_stream(32, seed=1).batch(0)
    on_device = _on_device(ds, a["image"])
    bound = 0.5 / 255 / min(STD) + ATOL
    assert np.abs(on_device - b["image"]).max() <= bound
    assert np.abs(on_device - b["image"]).max() > ATOL      # the rounding is real
    np.testing.assert_allclose(on_device, _independent(a["image"]), rtol=0, atol=ATOL)


def test_float_datasets_stay_float32_and_bad_values_are_refused(data_dir, tmp_path):
    digits = load_dataset("sklearn_digits", data_dir=data_dir)
    assert digits.transfer.dtype == "float32" and digits.train.wire is None
    batch = digits.train_stream(32, 0, wire=True).batch(0)
    np.testing.assert_array_equal(batch["image"], digits.train_stream(32, 0).batch(0)["image"])
    with pytest.raises(DataError, match=r"image_transfer='uint8' needs uint8 images; "
                                        r"dataset='sklearn_digits' has float32"):
        load_dataset("sklearn_digits", data_dir=data_dir, image_transfer="uint8")
    with pytest.raises(ConfigError, match=r"image_transfer='uint16' is not one of "
                                          r"\('auto', 'uint8', 'float32'\)"):
        validate(tiny_config(data_dir, image_transfer="uint16"))
    with pytest.raises(DataError, match="needs uint8 images"):   # before anything compiles
        Trainer(tiny_config(data_dir, image_transfer="uint8"), str(tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()
    ds = _digits32(data_dir)
    with pytest.raises(TypeError, match="normalizes uint8 images on the device; got float32"):
        ds.transfer.to_model_input(ds.train_stream(8, 0).batch(0)["image"])


def _run(data_dir, workdir, transfer):
    config = tiny_config(data_dir, dataset="digits32", pixel_mean=MEAN, pixel_std=STD,
                         image_transfer=transfer, num_devices=2, batch_size=32, num_steps=10,
                         log_every_steps=5, eval_every_steps=5, eval_batch_size=100,
                         checkpoint_every_steps=None)
    summary = Trainer(config, workdir).run()

    def read(name):
        with open(os.path.join(workdir, name)) as f:
            return [json.loads(line) for line in f]
    with open(os.path.join(workdir, "config.json")) as f:
        recorded = json.load(f)["environment"]["image_transfer"]
    return summary, read("metrics.jsonl"), read("eval.jsonl"), recorded


def test_training_with_uint8_transfer_matches_float32_transfer(data_dir, tmp_path):
    """The digits32 MLP, 2 devices, 10 steps, both ways. Model inputs differ by <= a few 1e-7
    (above), so losses agree to 1e-4 relative (float32 SGD over 10 steps leaves such differences
    far below that) and the accuracies, counts of whole examples, exactly."""
    s8, m8, e8, rec8 = _run(data_dir, str(tmp_path / "u8"), "uint8")
    s32, m32, e32, rec32 = _run(data_dir, str(tmp_path / "f32"), "float32")
    assert rec8["dtype"] == "uint8" and rec8["normalized_on"] == "device"
    assert rec32["dtype"] == "float32" and rec32["normalized_on"] == "host"
    assert [m["step"] for m in m8] == [m["step"] for m in m32] == [5, 10]
    for a, b in zip(m8, m32, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["train_accuracy"] == b["train_accuracy"]
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    for a, b in zip(e8, e32, strict=True):
        assert a["num_examples"] == b["num_examples"] == 360
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["accuracy"] == b["accuracy"]
    assert s8["final_eval_accuracy"] == s32["final_eval_accuracy"]
