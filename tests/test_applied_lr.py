"""The learning rate a run actually applies, read from metrics.jsonl and measured in the updates,
against closed forms written out here (not bsgap.scaling's functions).

The 8x8 digits have 1,437 training examples, so a 32-example batch has 1437/32 steps per epoch.
The record for step s (after s updates) carries the lr of its last update, the one at index s-1.
"""
import math

import jax
import numpy as np
import pytest

from bsgap import logbook
from bsgap.trainer import Trainer
from bsgap.trials import expand_trials
from helpers import drive_steps, mean_loss_grad, tiny_config

STEPS_PER_EPOCH = 1437 / 32
WARMUP_4_STEPS = 4 / STEPS_PER_EPOCH   # epochs


def _warm(t, start, steps=4):
    return start + (1 - start) * min(t / steps, 1.0)


# (config overrides, lr at update index t for a 20-step budget)
CASES = {
    # linear rule, B = 2 B_ref: peak 0.2; Goyal warmup from the unscaled 0.1 (factor 0.5) over 4
    # steps; a step schedule at half the budget (update 10) with gamma 0.1.
    "linear_warmup_step": (
        dict(lr_scaling="linear", reference_batch_size=16, warmup_epochs=WARMUP_4_STEPS,
             schedule="step", schedule_milestone_fractions=(0.5,), schedule_gamma=0.1),
        lambda t: 0.2 * _warm(t, 0.5) * (0.1 if t >= 10 else 1.0)),
    # sqrt rule, B = 4 B_ref: peak 0.1 * 2; warmup then cosine from update 4 to 0 at update 20.
    "sqrt_warmup_cosine": (
        dict(lr_scaling="sqrt", reference_batch_size=8, warmup_epochs=WARMUP_4_STEPS,
             schedule="cosine"),
        lambda t: 0.2 * _warm(t, 0.5) * 0.5 * (1 + math.cos(math.pi * max(t - 4, 0) / 16))),
    # linear rule, B = B_ref / 2: peak 0.05, and warmup cannot start above the peak, so the lr is
    # the peak throughout the warmup.
    "linear_small_batch_no_rise": (
        dict(lr_scaling="linear", reference_batch_size=64, warmup_epochs=WARMUP_4_STEPS,
             schedule="constant"),
        lambda t: 0.05),
    # no rule; a milestone given in epochs: 0.2 epochs = round(8.98) = update 9, gamma 0.5.
    "epoch_milestone": (
        dict(lr_scaling="none", schedule="step", schedule_milestones=(0.2,), schedule_gamma=0.5),
        lambda t: 0.1 * (0.5 if t >= 9 else 1.0)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_logged_learning_rate_is_the_closed_form(data_dir, tmp_path, case):
    overrides, lr_at = CASES[case]
    config = tiny_config(data_dir, optimizer="sgd", learning_rate=0.1, batch_size=32,
                         num_steps=20, log_every_steps=1, num_devices=2, **overrides)
    Trainer(config, str(tmp_path)).run()
    records = logbook.read_jsonl(str(tmp_path / "metrics.jsonl"))
    assert [r["step"] for r in records] == list(range(1, 21))
    logged = np.array([r["learning_rate"] for r in records])
    np.testing.assert_allclose(logged, [lr_at(s - 1) for s in range(1, 21)], rtol=1e-5)  # fp32
    resolved = logbook.read_json(str(tmp_path / "config.json"))["resolved"]
    assert resolved["scaled_learning_rate"] == pytest.approx(max(lr_at(t) for t in range(20)))


class _Momentum:
    """Reference SGD with momentum and L2 on kernels, in numpy: v = m v + (g + wd w) (v = g at
    the first step; m = 0 is plain SGD), Δθ = -lr v (optax.trace, the lr outside the trace)."""

    def __init__(self, momentum: float, weight_decay: float):
        self.m, self.wd, self.velocity = momentum, weight_decay, None

    def update(self, grads, params, lr):
        grads = jax.tree_util.tree_map_with_path(
            lambda path, g, w: g + self.wd * w if path[-1].key == "kernel" else g, grads, params)
        self.velocity = grads if self.velocity is None else jax.tree_util.tree_map(
            lambda v, g: self.m * v + g, self.velocity, grads)
        return jax.tree_util.tree_map(lambda v: -lr * np.asarray(v), self.velocity)


def _assert_update(before, after, expected, where):
    """Δθ = expected for every tensor, to 0.2% of the tensor's largest entry (Δθ is a float32
    difference of parameters ~10-100x larger than one update)."""
    for (path, delta), want in zip(
            jax.tree_util.tree_leaves_with_path(jax.tree_util.tree_map(np.subtract, after, before)),
            jax.tree_util.tree_leaves(expected)):
        scale = np.abs(want).max()
        assert scale > 0, (where, path)
        np.testing.assert_allclose(delta, want, atol=2e-3 * scale, rtol=0,
                                   err_msg=f"{where}, {jax.tree_util.keystr(path)}")


@pytest.mark.parametrize("optimizer,momentum", [("sgd", 0.0), ("momentum", 0.9)])
def test_each_update_is_minus_lr_times_the_gradient(data_dir, tmp_path, optimizer, momentum):
    """Δθ over 12 updates that cross the warmup's end and the milestone, against the gradient
    of the whole batch computed on one device: sgd Δw = -lr (g + wd w), Δb = -lr g."""
    overrides, lr_at = CASES["linear_warmup_step"]
    config = tiny_config(data_dir, optimizer=optimizer, learning_rate=0.1, batch_size=32,
                         num_steps=20, num_devices=2, weight_decay=0.01, momentum=0.9,
                         **overrides)
    trainer, reference = Trainer(config, str(tmp_path)), _Momentum(momentum, 0.01)
    for t, before, after, batch, metrics in drive_steps(trainer, 12):
        assert float(metrics["learning_rate"]) == pytest.approx(lr_at(t), rel=1e-5)
        grads = mean_loss_grad(trainer.model, before, batch["image"], batch["label"], 10)
        _assert_update(before, after, reference.update(grads, before, lr_at(t)), f"update {t}")


# Three trials in one program, one data order: each with its own lr, rule, warmup, momentum and
# weight decay (reference batch 16, so linear and sqrt rules scale up and warmups rise).
TRIALS = (
    ({"name": "a", "learning_rate": 0.1, "momentum": 0.0, "lr_scaling": "none"},
     lambda t: 0.1 * (0.1 if t >= 10 else 1.0)),
    ({"name": "b", "learning_rate": 0.1, "momentum": 0.9, "lr_scaling": "linear",
      "warmup_epochs": WARMUP_4_STEPS},
     lambda t: 0.2 * _warm(t, 0.5) * (0.1 if t >= 10 else 1.0)),
    ({"name": "c", "learning_rate": 0.05, "momentum": 0.5, "lr_scaling": "sqrt",
      "weight_decay": 0.0, "warmup_epochs": 2 * WARMUP_4_STEPS},
     lambda t: 0.05 * math.sqrt(2) * _warm(t, 1 / math.sqrt(2), 8) * (0.1 if t >= 10 else 1.0)),
)


@pytest.mark.parametrize("loop", ["map", "vmap"])
def test_each_trial_of_a_program_applies_its_own_hyperparameters(data_dir, tmp_path, loop):
    config = tiny_config(data_dir, optimizer="momentum", batch_size=32, num_steps=20,
                         num_devices=2, weight_decay=0.01, reference_batch_size=16,
                         schedule="step", schedule_milestone_fractions=(0.5,), seed=3)
    config.trials = tuple(overrides for overrides, _ in TRIALS)
    trainer = Trainer.for_trials(expand_trials(config, str(tmp_path)), trials_loop=loop)
    references = [_Momentum(o["momentum"], o.get("weight_decay", 0.01)) for o, _ in TRIALS]
    for t, before, after, batch, metrics in drive_steps(trainer, 12, all_trials=True):
        for k, (reference, (_, lr_at)) in enumerate(zip(references, TRIALS)):
            assert float(metrics["learning_rate"][k]) == pytest.approx(lr_at(t), rel=1e-5)
            mine = lambda tree: jax.tree_util.tree_map(lambda x: x[k], tree)  # noqa: E731
            grads = mean_loss_grad(trainer.model, mine(before), batch["image"], batch["label"],
                                   10)
            _assert_update(mine(before), mine(after),
                           reference.update(grads, mine(before), lr_at(t)),
                           f"trial {k}, update {t}")
