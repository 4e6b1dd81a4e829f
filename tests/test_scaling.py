"""Batch-size rules against closed forms: lr scaling, budgets, regime adaptation, schedules."""
import math

import numpy as np
import pytest

from bsgap import scaling


@pytest.mark.parametrize("rule,expected", [("none", 0.1), ("linear", 0.4), ("sqrt", 0.2)])
def test_lr_scaling_rules(rule, expected):
    assert 0.1 * scaling.lr_scale_factor(1024, 256, rule) == pytest.approx(expected)


def test_unknown_rule_named():
    with pytest.raises(ValueError, match=r"lr_scaling='cubic' is not one of"):
        scaling.lr_scale_factor(64, 32, "cubic")


def test_budgets_examples_fixed_steps_inverse_in_batch():
    # Mishkin et al.: 320K iterations at B=256 = 81.92M examples; at B=1024 that is 80K.
    for batch, steps in [(256, 320_000), (1024, 80_000), (32, 2_560_000)]:
        b = scaling.resolve_budget(num_train_examples=1_281_167, batch_size=batch,
                                   num_examples=81_920_000)
        assert b.total_steps == steps and b.total_examples == 81_920_000


def test_budget_epochs_and_regime_adaptation():
    b = scaling.resolve_budget(num_train_examples=50_000, batch_size=500, num_epochs=10)
    assert b.total_steps == 1000 and b.epochs == pytest.approx(10)
    # Hoffer et al.: epochs x B/B_ref, so the number of updates matches the reference batch.
    ref = scaling.resolve_budget(num_train_examples=50_000, batch_size=128, num_epochs=10)
    big = scaling.resolve_budget(num_train_examples=50_000, batch_size=1024, num_epochs=10,
                                 regime_adaptation=True, reference_batch_size=128)
    assert abs(big.total_steps - ref.total_steps) <= 1 and big.epochs == pytest.approx(80, 0.01)


def test_budget_needs_exactly_one():
    with pytest.raises(ValueError, match="exactly one"):
        scaling.resolve_budget(num_train_examples=10, batch_size=2, num_epochs=1, num_steps=5)


def test_milestones_from_fractions_and_epochs():
    steps = scaling.milestone_steps(total_steps=80_000, steps_per_epoch=1000,
                                    milestone_fractions=(0.3125, 0.625, 0.9375))
    assert steps == (25_000, 50_000, 75_000)   # Mishkin's B=1024 run: step every 25K
    steps = scaling.milestone_steps(total_steps=9000, steps_per_epoch=100,
                                    milestones_epochs=(30, 60), adaptation_factor=2)
    assert steps == (6000, 12000)


def test_schedules_closed_form():
    kw = dict(total_steps=110, warmup_steps=10, warmup_start_factor=0.25)
    step = scaling.schedule_factor_fn(schedule="step", milestones=(50, 80), gamma=0.1, **kw)
    cosine = scaling.schedule_factor_fn(schedule="cosine", **kw)
    linear = scaling.schedule_factor_fn(schedule="linear", **kw)
    poly = scaling.schedule_factor_fn(schedule="poly", poly_power=2.0, **kw)
    const = scaling.schedule_factor_fn(schedule="constant", **kw)
    # Warmup: linear from 0.25 to 1 over 10 steps (Goyal et al.: from the unscaled lr).
    assert float(const(0)) == pytest.approx(0.25) and float(const(5)) == pytest.approx(0.625)
    assert float(const(10)) == pytest.approx(1.0) and float(const(109)) == pytest.approx(1.0)
    assert [float(step(s)) for s in (49, 50, 79, 80)] == pytest.approx([1, 0.1, 0.1, 0.01])
    t = (60 - 10) / 100
    assert float(cosine(60)) == pytest.approx(0.5 * (1 + math.cos(math.pi * t)), rel=1e-6)
    assert float(linear(60)) == pytest.approx(1 - t, rel=1e-6)
    assert float(poly(60)) == pytest.approx((1 - t) ** 2, rel=1e-6)
    assert float(cosine(110)) == pytest.approx(0.0, abs=1e-7)
    values = np.array([float(cosine(s)) for s in range(10, 111)])
    assert np.all(np.diff(values) <= 1e-7)
