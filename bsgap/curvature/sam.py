"""SAM-style rho-sharpness (Foret et al. 2021, eq. 1-2):

    S_rho(x) = max_{||e||_2 <= rho} f(x + e) - f(x),

with f the full-dataset loss (size-weighted average of `loss_fn` over `batches`, not SAM's
per-minibatch m-sharpness). The inner max is approximated by normalized gradient ascent projected
onto the rho-ball: e_0 = 0,

    e_{t+1} = Proj_rho(e_t + step_size * g_t / ||g_t||),  g_t = grad f(x + e_t),

with step_size = rho by default, so one step gives SAM's first-order solution
e = rho g / ||g|| (eq. 2) and f(x + e) - f(x) = rho ||g|| + O(rho^2); for a quadratic
f = 1/2 x^T A x + b^T x it is exactly rho ||g|| + rho^2 / 2 g^T A g / ||g||^2. The reported max is
the largest f over all iterates (each is feasible), so S >= 0 and it never decreases with steps.
At a point with zero gradient the ascent has no direction and S = 0 (a first-order method's blind
spot; eps-sharpness with a random start does not have it).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp

from bsgap.curvature import _checks
from bsgap.curvature.hvp import DatasetObjective, LossFn
from bsgap.curvature.results import SamSharpness


def project_to_ball(e: jnp.ndarray, rho: float) -> jnp.ndarray:
    """Euclidean projection of e onto {||e||_2 <= rho}."""
    norm = jnp.linalg.norm(e)
    return jnp.where(norm > rho, e * (rho / jnp.maximum(norm, 1e-30)), e)


def sam_sharpness(loss_fn: LossFn, params: Any, batches: Sequence[Any], rho: float = 0.05,
                  num_steps: int = 1, *, step_size: float | None = None,
                  bn_mode: str | None = None) -> SamSharpness:
    """rho-sharpness of the full-dataset loss at `params` by `num_steps` projected ascent steps.

    Cost: num_steps full-dataset gradients + 1 loss evaluation. Returns `sharpness` =
    max_loss - loss, `max_loss`, `loss` = f(x) and `grad_norm` = ||grad f(x)||.
    """
    _checks.check_positive("rho", rho)
    _checks.check_int("num_steps", num_steps, 1)
    if step_size is not None:
        _checks.check_positive("step_size", step_size)
    _checks.check_bn_mode(bn_mode)
    batch_list = _checks.check_batches(batches)
    _checks.check_params(params)
    objective = DatasetObjective(loss_fn, params, batch_list)
    step = float(rho if step_size is None else step_size)
    x = objective.flat
    e = jnp.zeros_like(x)
    loss, grad = objective.value_and_grad(x)
    grad_norm0 = float(jnp.linalg.norm(grad))
    max_loss = loss
    for t in range(num_steps):
        if t > 0:
            value, grad = objective.value_and_grad(x + e)
            max_loss = max(max_loss, value)
        grad_norm = float(jnp.linalg.norm(grad))
        if grad_norm == 0.0:
            break
        e = project_to_ball(e + (step / grad_norm) * grad, float(rho))
        if t == num_steps - 1:
            max_loss = max(max_loss, objective.loss(x + e))
    return SamSharpness(sharpness=max_loss - loss, max_loss=max_loss, loss=loss, rho=float(rho),
                        num_steps=int(num_steps), grad_norm=grad_norm0, bn_mode=bn_mode)
