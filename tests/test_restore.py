"""A run directory loads back for analysis: same parameters, same evaluation, clear errors."""
import jax
import numpy as np
import pytest

from bsgap import logbook
from bsgap.restore import RunNotFoundError, load_run
from bsgap.trainer import Trainer
from helpers import tiny_config


def test_load_run_reproduces_final_eval(data_dir, tmp_path):
    trainer = Trainer(tiny_config(data_dir, normalization="batch", num_steps=20,
                                  checkpoint_every_steps=10), str(tmp_path))
    trainer.run()
    run = load_run(str(tmp_path))
    assert run.step == 20 and run.config.batch_size == 32
    for a, b in zip(jax.tree_util.tree_leaves(jax.device_get(trainer.trial_state(0).params)),
                    jax.tree_util.tree_leaves(run.params)):
        np.testing.assert_array_equal(a, b)
    logits = run.model.apply(run.variables(), run.data.eval.arrays["image"], train=False)
    accuracy = float(np.mean(np.argmax(np.asarray(logits), -1) == run.data.eval.arrays["label"]))
    last = logbook.read_jsonl(str(tmp_path / "eval.jsonl"))[-1]
    assert accuracy == pytest.approx(last["accuracy"], abs=1e-9)
    assert load_run(str(tmp_path), step=10, with_data=False).step == 10
    with pytest.raises(RunNotFoundError, match=r"no checkpoint at step 15; it has \[10, 20\]"):
        load_run(str(tmp_path), step=15)
    with pytest.raises(RunNotFoundError, match="not a bsgap run directory"):
        load_run(str(tmp_path / "nowhere"))
