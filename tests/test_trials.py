"""K trials in one program (vmapped, or looped with lax.map) equal the same K trials run one by one
(issue 7): parameters, BN statistics, metrics and evaluations, with BN + dropout, and with one trial
diverging."""
import json
import math

import jax
import numpy as np
import pytest

from bsgap import logbook
from bsgap.run_config import ConfigError
from bsgap.trainer import Trainer
from bsgap.trials import expand_trials
from bsgap.workdir import plain_config
from helpers import tiny_config

TIMING = {"examples_per_second", "seconds_to_target", "train_seconds", "compile_seconds",
          "trials_in_program"}


def _base(data_dir, **overrides):
    base = dict(model="keskar_c1", model_kwargs={"width": 8, "fc_width": 32},
                normalization="ghost", ghost_batch_size=8, dropout_rate=0.3, batch_size=32,
                num_devices=2, num_steps=12, log_every_steps=3, eval_every_steps=6,
                checkpoint_every_steps=6, optimizer="momentum", schedule="cosine")
    base.update(overrides)
    return tiny_config(data_dir, **base)


def _records(path, name):
    return [{k: v for k, v in r.items() if k not in TIMING}
            for r in logbook.read_jsonl(str(path / name))]


def _close(a, b, examples: int):
    """Equal records. Accuracies are counts over ``examples`` examples: two compiled programs (a
    vmapped or looped trial vs the plain step of a run alone) round differently in float32, which
    can flip one near-tie argmax, so they may differ by one example and no more."""
    assert a.keys() == b.keys()
    for key in a:
        if key.endswith("accuracy") and isinstance(a[key], float) and b[key] is not None:
            assert abs(a[key] - b[key]) <= 1.0 / examples + 1e-9, key
        elif isinstance(a[key], float) and b[key] is not None:
            assert a[key] == pytest.approx(b[key], rel=2e-4, abs=1e-6), key
        else:
            assert a[key] == b[key], key


TRIALS = ({"learning_rate": 0.05, "seed": 0, "warmup_epochs": 0.1},
          {"learning_rate": 0.2, "seed": 1, "momentum": 0.5, "lr_scaling": "sqrt"},
          {"learning_rate": 0.1, "seed": 2, "weight_decay": 0.0},
          {"learning_rate": 1e38, "seed": 3, "name": "diverges"})


# lr 0.1, not 0.2: at 0.2 the second trial's training amplified the vmap-vs-alone rounding ~100x
# every 3 steps (grad_norm 2.8e-3 apart by step 12 on an AMD EPYC, 8.6e-7 at step 6): a test of
# the batched program, not of chaotic dynamics
SHARED = ({"learning_rate": 0.05, "seed": 5}, {"learning_rate": 0.1, "seed": 5})


def _cosine(peak, warmup=0, total=12):
    return lambda t: peak * 0.5 * (1 + math.cos(math.pi * min(max(t - warmup, 0) / (total - warmup),
                                                               1.0)))


# The lr at update t of each trial, written out: cosine over the 12 steps of _base, after the
# warmup (0.1 epochs = round(4.49) = 4 steps; with the 'none' rule the warmup starts at the peak,
# so it only delays the decay); 'sqrt' at B=32 vs the reference 128: x 0.5. None: diverged.
LR_AT = {id(TRIALS): (_cosine(0.05, warmup=4), _cosine(0.2 * 0.5), _cosine(0.1), None),
         id(SHARED): (_cosine(0.05), _cosine(0.1))}


@pytest.fixture(scope="module")
def alone_runs(tmp_path_factory):
    """Each trial run by itself, once per module (both loops compare against the same runs):
    ``alone_runs(config) -> (summary, final state on the host, run directory)``."""
    cache = {}

    def run(config):
        key = json.dumps(plain_config(config), sort_keys=True)
        if key not in cache:
            workdir = tmp_path_factory.mktemp("alone")
            trainer = Trainer(config, str(workdir))
            summary = trainer.run()
            cache[key] = summary, jax.device_get(trainer.trial_state(0)), workdir
        return cache[key]

    return run


@pytest.mark.parametrize("trials,loop", [(TRIALS, "vmap"), (TRIALS, "map"), (SHARED, "vmap"),
                                         (SHARED, "map")],
                         ids=["own-data-order-vmap", "own-data-order-map",
                              "shared-data-order-vmap", "shared-data-order-map"])
def test_vmapped_trials_equal_sequential_runs(data_dir, tmp_path, alone_runs, trials, loop):
    config = _base(data_dir)
    config.trials = trials
    specs = expand_trials(config, str(tmp_path / "vmapped"))
    trainer = Trainer.for_trials(specs, trials_loop=loop)
    assert trainer.trials_loop == loop
    assert trainer.shared_data == (len({t["seed"] for t in trials}) == 1)
    summaries = trainer.run_all()
    for k, (trial_config, workdir) in enumerate(specs):
        alone_summary, alone_state, alone_dir = alone_runs(trial_config)
        got = {k2: v for k2, v in summaries[k].items() if k2 not in TIMING}
        want = {k2: v for k2, v in alone_summary.items() if k2 not in TIMING}
        eval_examples = 360  # sklearn_digits' test split, evaluated whole
        _close(got, want, eval_examples)
        for name, examples in (("metrics.jsonl", config.log_every_steps * config.batch_size),
                               ("eval.jsonl", eval_examples)):
            a, b = _records(tmp_path / "vmapped" / workdir.split("/")[-1], name), \
                _records(alone_dir, name)
            assert len(a) == len(b) and (len(a) > 0 or summaries[k]["status"] == "diverged")
            for x, y in zip(a, b):
                _close(x, y, examples)
        # Per-entry tolerances. The lax.map loop runs each trial through the single trial's
        # program: equal up to float32 reassociation (2 of 1,600 entries of the shared-order
        # case differ by 1.4e-6 when XLA's CPU fusions are emitted the older way, as the tests
        # compile them: conftest.py). vmap batches the matmuls across trials,
        # which rounds differently; the diverged trial froze after one update with lr 1e38
        # (entries ~1e37 whose relative error is the gradient's, up to ~0.5% measured on
        # near-cancelling entries), so it gets a wider relative tolerance and, since a
        # near-cancelling entry's error is the float32 rounding of terms as large as the leaf's
        # largest, an absolute one of 1e-5 x that (measured: an entry of 4.7e32 in a leaf up to
        # 1.4e37 off by 5.0e30 = 3.5e-7 of the largest, AMD EPYC, jaxlib 0.10.2).
        diverged = summaries[k]["status"] == "diverged"
        rtol = {"map": 1e-5, "vmap": 1e-2 if diverged else 2e-4}[loop]
        for x, y in zip(jax.tree_util.tree_leaves(jax.device_get(trainer.trial_state(k))),
                        jax.tree_util.tree_leaves(alone_state)):
            x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
            atol = {"map": 2e-6, "vmap": 2e-5}[loop]
            if diverged and loop == "vmap" and y.size:
                assert np.isfinite(y).all() and np.isfinite(x).all()
                atol = max(atol, 1e-5 * float(np.max(np.abs(y))))
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
        # Each trial's own lr, rule and warmup, against the closed form (both sides above share
        # set_hyperparams / make_optimizer, so they cannot see a hyperparameter ignored by both).
        if not diverged:
            logged = [r["learning_rate"] for r in logbook.read_jsonl(workdir + "/metrics.jsonl")]
            np.testing.assert_allclose(logged, [LR_AT[id(trials)][k](s - 1) for s in (3, 6, 9, 12)],
                                       rtol=1e-5)
        stored = logbook.read_json(str(alone_dir / "config.json"))["config"]
        assert logbook.read_json(workdir + "/config.json")["config"] == stored
    statuses = [s["status"] for s in summaries]
    if len(trials) == 4:
        assert statuses == ["complete"] * 3 + ["diverged"]
        assert summaries[3]["diverged_at_step"] is not None


def test_trial_overrides_are_checked(data_dir, tmp_path):
    config = _base(data_dir)
    config.trials = ({"learning_rate": 0.1}, {"batch_size": 64})
    with pytest.raises(ConfigError, match=r"trials\[1\] overrides \['batch_size'\]"):
        expand_trials(config, str(tmp_path))
    config.trials = ({"seed": 1}, {"seed": 1})
    with pytest.raises(ConfigError, match="both named 'seed1'"):
        expand_trials(config, str(tmp_path))


def test_trials_loop_choice():
    """'auto' for every (platform, model kind): never vmap on the CPU (measured slower) nor for a
    conv model on a GPU (grouped convolutions, jax-ml/jax#13800); the reason names why."""
    from bsgap.choices import CONV_MODELS, MODEL_NAMES
    from bsgap.trials import choose_trials_loop

    assert set(MODEL_NAMES) - set(CONV_MODELS) == {"mlp"}
    expected = {("cpu", "conv"): "map", ("cpu", "mlp"): "map", ("gpu", "conv"): "map",
                ("gpu", "mlp"): "vmap", ("tpu", "conv"): "vmap", ("tpu", "mlp"): "vmap"}
    for model in MODEL_NAMES:
        kind = "mlp" if model == "mlp" else "conv"
        for platform in ("cpu", "gpu", "tpu"):
            loop, why = choose_trials_loop("auto", platform, model=model)
            assert loop == expected[platform, kind], (platform, model)
            assert platform in why.lower() and (platform != "gpu" or kind == "mlp"
                                                or "jax-ml/jax#13800" in why and model in why)
            # One trial is the plain step; an explicit loop is taken as asked.
            assert choose_trials_loop("auto", platform, 1, model=model)[0] == "vmap"
            assert choose_trials_loop("vmap", platform, model=model) == (
                "vmap", "trials_loop='vmap' was asked for")
    with pytest.raises(ConfigError,
                       match=r"trials_loop='scan' is not one of \('auto', 'vmap', 'map'\)"):
        choose_trials_loop("scan", "cpu", model="mlp")
