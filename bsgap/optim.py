"""optax optimizer from a config: SGD / momentum / Nesterov / Adam / AdamW with L2 on kernels.

The peak learning rate, momentum, weight decay and the warmup (length in steps, start factor) are
``optax.inject_hyperparams`` arrays in the optimizer state, so trials that differ only in them
share one compiled program (vmapped over a trial axis); the schedule multiplies the peak.
Weight decay for sgd/momentum/nesterov/adam is L2 regularization added to the gradient
(decay * w, i.e. the gradient of decay/2 * |w|^2); for adamw it is decoupled (Loshchilov & Hutter).
By default it applies to kernels only (parameters named 'kernel'), not biases or norm parameters.
"""
from __future__ import annotations

from typing import Callable

import jax
import optax

from bsgap.choices import OPTIMIZERS  # noqa: F401 (re-exported)


def kernel_mask(params):
    """True for leaves named 'kernel' (conv and dense weights)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) == "kernel", params)


HYPERPARAMS = ("learning_rate", "momentum", "weight_decay", "warmup_steps", "warmup_start_factor")


def make_optimizer(*, name: str, peak_lr: float, schedule_factor: Callable, momentum: float,
                   weight_decay: float, warmup_steps: float = 0.0,
                   warmup_start_factor: float = 1.0, decay_all: bool = False,
                   adam_b2: float = 0.999, adam_eps: float = 1e-8) -> optax.GradientTransformation:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer={name!r} is not one of {OPTIMIZERS}")
    mask = None if decay_all else kernel_mask

    def factory(learning_rate, momentum, weight_decay, warmup_steps, warmup_start_factor):
        decay = optax.add_decayed_weights(weight_decay, mask)
        scale = optax.scale_by_schedule(lambda count: -learning_rate * schedule_factor(
            count, warmup_steps, warmup_start_factor))
        if name == "sgd":
            core = [decay]
        elif name in ("momentum", "nesterov"):
            core = [decay, optax.trace(decay=momentum, nesterov=name == "nesterov")]
        elif name == "adam":
            core = [decay, optax.scale_by_adam(b1=momentum, b2=adam_b2, eps=adam_eps)]
        else:  # adamw: decoupled decay, scaled by the scheduled lr like optax.adamw
            core = [optax.scale_by_adam(b1=momentum, b2=adam_b2, eps=adam_eps), decay]
        return optax.chain(*core, scale)

    return optax.inject_hyperparams(factory)(
        learning_rate=peak_lr, momentum=momentum, weight_decay=weight_decay,
        warmup_steps=float(warmup_steps), warmup_start_factor=float(warmup_start_factor))


def current_learning_rate(opt_state, schedule_factor: Callable, step):
    """The lr applied at ``step``: injected peak x schedule factor (with the injected warmup)."""
    h = opt_state.hyperparams
    return h["learning_rate"] * schedule_factor(step, h["warmup_steps"], h["warmup_start_factor"])


def set_hyperparams(opt_state, **values):
    """A copy of an inject_hyperparams state with some hyperparameters replaced (float32 arrays)."""
    import jax.numpy as jnp

    unknown = set(values) - set(HYPERPARAMS)
    if unknown:
        raise ValueError(f"unknown hyperparameters {sorted(unknown)}; known: {HYPERPARAMS}")
    hyper = dict(opt_state.hyperparams)
    hyper.update({k: jnp.asarray(v, jnp.float32) for k, v in values.items()})
    return opt_state._replace(hyperparams=hyper)
