"""The trainer on the tf.data sources: ImageNet prepared from the manual tars by the trainer itself
(config.manual_dir) and streamed, and cached uint8 images with the cifar preset. A run resumed
from a mid-run checkpoint ends with the same parameters and the same logs as an uninterrupted run,
and evaluation counts the whole validation split."""
import os
import shutil

import jax
import numpy as np
import pytest

from bsgap import logbook
from bsgap.data.streaming import TfdsSplit
from bsgap.data.testing import write_ilsvrc2012_tars
from bsgap.trainer import Trainer, final_params
from helpers import tiny_config

TIMING = {"examples_per_second", "seconds_to_target", "train_seconds", "compile_seconds"}


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("ilsvrc") / "manual")
    write_ilsvrc2012_tars(path, ("n01440764", "n01443537", "n01484850"), 16, 10)
    return path


def _config(kind, data_dir, manual_dir, tmp_root):
    common = dict(model="mlp", model_kwargs={"hidden_sizes": (32,)}, batch_size=8, num_steps=8,
                  checkpoint_every_steps=4, eval_every_steps=4, log_every_steps=2,
                  num_devices=2, learning_rate=0.01, eval_batch_size=4)
    if kind == "imagenet":
        return tiny_config(str(tmp_root / "tfds"), dataset="imagenet2012", manual_dir=manual_dir,
                           eval_split="validation", augment="mishkin", image_size=32,
                           cache="none", **common)
    return tiny_config(data_dir, dataset="digits32", augment="cifar", image_size=32, **common)


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.mark.parametrize("kind", ["imagenet", "digits32"])
def test_resumed_run_equals_uninterrupted_run(kind, data_dir, manual_dir, tmp_path, capfd):
    config = _config(kind, data_dir, manual_dir, tmp_path)
    full = Trainer(config, str(tmp_path / "full"))
    if kind == "imagenet":
        assert isinstance(full.data.train, TfdsSplit)  # prepared from manual_dir, streamed
        assert full.resolved.num_train_examples == 48 and full.resolved.num_classes == 1000
    a = full.run()
    Trainer(config, str(tmp_path / "cut")).run()
    # Cut the second run back to its step-4 checkpoint, as if it had been killed after it.
    shutil.rmtree(tmp_path / "cut" / "checkpoints" / "8")
    os.remove(tmp_path / "cut" / logbook.SUMMARY_FILE)
    capfd.readouterr()
    b = Trainer(config, str(tmp_path / "cut")).run()
    assert "resuming from the checkpoint at step 4" in capfd.readouterr().err
    assert a["status"] == b["status"] == "complete" and b["steps"] == 8
    assert {k: v for k, v in a.items() if k not in TIMING} == \
        {k: v for k, v in b.items() if k not in TIMING}
    for name in (logbook.METRICS_FILE, logbook.EVAL_FILE):
        assert _strip(logbook.read_jsonl(str(tmp_path / "full" / name))) == \
            _strip(logbook.read_jsonl(str(tmp_path / "cut" / name)))
    for x, y in zip(jax.tree_util.tree_leaves(final_params(str(tmp_path / "full"))),
                    jax.tree_util.tree_leaves(final_params(str(tmp_path / "cut")))):
        np.testing.assert_array_equal(x, y)
    evals = logbook.read_jsonl(str(tmp_path / "full" / logbook.EVAL_FILE))
    assert [r["num_examples"] for r in evals] == [10 if kind == "imagenet" else 360] * 2
