"""Which config fields may differ between trials that share one compiled program.

Kept free of TensorFlow and JAX imports so that the sweep runner can group trials cheaply.
"""
from __future__ import annotations

from bsgap.workdir import plain_config

TRIAL_FIELDS = ("learning_rate", "lr_scaling", "momentum", "weight_decay", "warmup_epochs",
                "seed", "data_seed", "target_accuracy", "stop_at_target", "patience_evals")


class TrialMismatchError(ValueError):
    """Two trials differ in a field outside TRIAL_FIELDS."""


def check_shareable(configs) -> None:
    """Trials share one program only if every field outside TRIAL_FIELDS is equal."""
    first = {k: v for k, v in plain_config(configs[0]).items() if k not in TRIAL_FIELDS}
    for i, config in enumerate(configs[1:], 1):
        other = {k: v for k, v in plain_config(config).items() if k not in TRIAL_FIELDS}
        diff = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
        if diff:
            raise TrialMismatchError(
                f"trial {i} differs from trial 0 in {diff}; trials in one program may differ only "
                f"in {TRIAL_FIELDS}")
