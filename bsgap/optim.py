"""optax optimizer from a config: SGD / momentum / Nesterov / Adam / AdamW with L2 on kernels.

The peak learning rate, momentum and weight decay are ``optax.inject_hyperparams`` arrays in the
optimizer state (so trials can later be vmapped over them); the schedule multiplies the peak.
Weight decay for sgd/momentum/nesterov/adam is L2 regularization added to the gradient
(decay * w, i.e. the gradient of decay/2 * |w|^2); for adamw it is decoupled (Loshchilov & Hutter).
By default it applies to kernels only (parameters named 'kernel'), not biases or norm parameters.
"""
from __future__ import annotations

from typing import Callable

import jax
import optax

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")


def kernel_mask(params):
    """True for leaves named 'kernel' (conv and dense weights)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) == "kernel", params)


def make_optimizer(*, name: str, peak_lr: float, schedule_factor: Callable, momentum: float,
                   weight_decay: float, decay_all: bool = False, adam_b2: float = 0.999,
                   adam_eps: float = 1e-8) -> optax.GradientTransformation:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer={name!r} is not one of {OPTIMIZERS}")
    mask = None if decay_all else kernel_mask

    def factory(learning_rate, momentum, weight_decay):
        decay = optax.add_decayed_weights(weight_decay, mask)
        scale = optax.scale_by_schedule(lambda count: -learning_rate * schedule_factor(count))
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
        learning_rate=peak_lr, momentum=momentum, weight_decay=weight_decay)


def current_learning_rate(opt_state, schedule_factor: Callable, step):
    """The lr applied at ``step``: injected peak x schedule factor."""
    return opt_state.hyperparams["learning_rate"] * schedule_factor(step)
