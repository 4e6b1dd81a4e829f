"""Batch-size rules: learning-rate scaling, warmup, budgets, schedules, regime adaptation.

All quantities here are plain Python numbers resolved once per run and written to config.json:
    scaled_lr = learning_rate * f(batch_size / reference_batch_size),  f in {none, linear, sqrt}
    (linear: Goyal et al. 2017 sec. 2.1; sqrt: Krizhevsky 2014, Hoffer et al. 2017 sec. 4).
Budgets are given in exactly one of epochs, examples (Mishkin et al. 2017 hold examples fixed, so
iterations are proportional to 1/B) or steps. Regime adaptation (Hoffer et al. 2017 sec. 5)
multiplies the epochs and the epoch milestones by batch_size / reference_batch_size, so a large
batch gets as many updates as the reference batch.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Callable, Sequence

LR_SCALINGS = ("none", "linear", "sqrt")
SCHEDULES = ("constant", "step", "cosine", "linear", "poly")


def lr_scale_factor(batch_size: int, reference_batch_size: int, rule: str) -> float:
    """f(B / B_ref) for the rule: 1, B/B_ref, or sqrt(B/B_ref)."""
    if rule not in LR_SCALINGS:
        raise ValueError(f"lr_scaling={rule!r} is not one of {LR_SCALINGS}")
    if reference_batch_size <= 0:
        raise ValueError(f"reference_batch_size={reference_batch_size} must be positive")
    ratio = batch_size / reference_batch_size
    return {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[rule]


@dataclasses.dataclass(frozen=True)
class Budget:
    total_steps: int
    total_examples: int
    epochs: float            # total_examples / num_train_examples
    steps_per_epoch: float   # num_train_examples / batch_size (fractional)


def resolve_budget(*, num_train_examples: int, batch_size: int, num_epochs=None,
                   num_examples=None, num_steps=None, regime_adaptation: bool = False,
                   reference_batch_size: int = 0) -> Budget:
    """Total optimizer steps for exactly one of epochs / examples / steps (rounded, at least 1)."""
    given = {k: v for k, v in dict(num_epochs=num_epochs, num_examples=num_examples,
                                   num_steps=num_steps).items() if v is not None}
    if len(given) != 1:
        raise ValueError("set exactly one of num_epochs / num_examples / num_steps; got "
                         f"{given or 'none'} (set the others to None)")
    (name, value), = given.items()
    if value <= 0:
        raise ValueError(f"{name}={value} must be positive")
    steps_per_epoch = num_train_examples / batch_size
    if name == "num_epochs":
        epochs = value * (batch_size / reference_batch_size if regime_adaptation else 1.0)
        steps = epochs * steps_per_epoch
    elif name == "num_examples":
        steps = value / batch_size
    else:
        steps = value
    total = max(1, int(round(steps)))
    return Budget(total, total * batch_size, total * batch_size / num_train_examples,
                  steps_per_epoch)


def epochs_to_steps(epochs: float, steps_per_epoch: float) -> int:
    return int(round(epochs * steps_per_epoch))


def milestone_steps(*, total_steps: int, steps_per_epoch: float,
                    milestones_epochs: Sequence[float] = (),
                    milestone_fractions: Sequence[float] = (),
                    adaptation_factor: float = 1.0) -> tuple[int, ...]:
    """Step-schedule boundaries from epochs (times the regime-adaptation factor) or budget fractions."""
    for f in milestone_fractions:
        if not 0 < f < 1:
            raise ValueError(f"schedule_milestone_fractions entry {f} must be in (0, 1)")
    steps = [epochs_to_steps(m * adaptation_factor, steps_per_epoch) for m in milestones_epochs]
    steps += [int(round(f * total_steps)) for f in milestone_fractions]
    return tuple(sorted(steps))


def schedule_factor_fn(*, schedule: str, total_steps: int, warmup_steps: int,
                       warmup_start_factor: float, milestones: Sequence[int] = (),
                       gamma: float = 0.1, poly_power: float = 2.0) -> Callable:
    """Multiplier of the peak lr at a step (jnp-traceable): linear warmup, then the decay.

    ``factor(step)`` uses the warmup given here; ``factor(step, warmup_steps, start)`` takes them
    as (traced) arguments, which is how per-trial warmups enter a vmapped multi-trial step.

    Warmup (Goyal et al. 2017 sec. 2.2, "gradual warmup") rises linearly from
    ``warmup_start_factor`` x peak at step 0 to the peak at ``warmup_steps``. The decay:
    constant; step (x gamma at each milestone); cosine / linear / poly (1 - t)^p from the end of
    warmup to 0 at ``total_steps``.
    """
    import jax.numpy as jnp

    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is not one of {SCHEDULES}")
    milestones = tuple(milestones)

    def factor(step, warmup_steps=warmup_steps, warmup_start_factor=warmup_start_factor):
        # Warmup length and start may be traced arrays (per-trial hyperparameters).
        step = jnp.asarray(step, jnp.float32)
        warm_len = jnp.asarray(warmup_steps, jnp.float32)
        w = jnp.where(warm_len > 0, jnp.clip(step / jnp.maximum(warm_len, 1.0), 0.0, 1.0), 1.0)
        warm = warmup_start_factor + (1.0 - warmup_start_factor) * w
        t = jnp.clip((step - warm_len) / jnp.maximum(1.0, total_steps - warm_len), 0.0, 1.0)
        if schedule == "constant":
            decay = 1.0
        elif schedule == "step":
            passed = sum((step >= m).astype(jnp.float32) for m in milestones) if milestones else 0.0
            decay = gamma ** passed
        elif schedule == "cosine":
            decay = 0.5 * (1.0 + jnp.cos(jnp.pi * t))
        elif schedule == "linear":
            decay = 1.0 - t
        else:
            decay = (1.0 - t) ** poly_power
        return warm * decay

    return factor


def smith_le_momentum(optimizer: str, momentum: float) -> float | None:
    """The momentum m in Smith & Le's noise scale for a bsgap optimizer: 0 for sgd, ``momentum``
    for momentum / nesterov, None for adam / adamw (g is derived for SGD; not defined for them)."""
    if optimizer == "sgd":
        return 0.0
    if optimizer in ("momentum", "nesterov"):
        return float(momentum)
    if optimizer in ("adam", "adamw"):
        return None
    raise ValueError(f"optimizer={optimizer!r} is not one of sgd, momentum, nesterov, adam, adamw")


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def smith_le_noise_scale(learning_rate: Any, num_train_examples: Any, batch_size: Any,
                         momentum: Any = 0.0) -> Any:
    """Smith & Le (2018, "A Bayesian perspective on generalization and SGD") noise scale
    g = eps (N / B - 1) / (1 - m): learning rate eps, N training examples, batch size B, momentum
    m (their sec. 5: the effective lr of momentum SGD is eps / (1 - m); m = 0 is their sec. 4
    g = eps (N / B - 1) ~= eps N / B for B << N). bsgap's one definition of it.

    Elementwise on numpy / JAX arrays and pandas columns; a float for Python numbers, which are
    checked: learning_rate > 0, 1 <= batch_size <= num_train_examples, 0 <= momentum < 1.
    """
    if _number(learning_rate) and learning_rate <= 0:
        raise ValueError(f"learning_rate={learning_rate!r} must be > 0")
    if _number(num_train_examples) and _number(batch_size):
        if not 1 <= batch_size <= num_train_examples:
            raise ValueError(f"batch_size={batch_size!r} must satisfy 1 <= batch_size <= "
                             f"num_train_examples={num_train_examples!r}")
    if _number(momentum) and not 0 <= momentum < 1:
        raise ValueError(f"momentum={momentum!r} must satisfy 0 <= momentum < 1")
    scale = learning_rate * (num_train_examples / batch_size - 1) / (1 - momentum)
    if all(_number(v) for v in (learning_rate, num_train_examples, batch_size, momentum)):
        return float(scale)
    return scale
