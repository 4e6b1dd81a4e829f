"""SAM-style rho-sharpness (Foret et al. 2021, eq. 1-2):

    S_rho(x) = max_{||e||_2 <= rho} f(x + e) - f(x),

with f the full-dataset loss (size-weighted average of `loss_fn` over `batches`, not SAM's
per-minibatch m-sharpness). The inner max is approximated by normalized gradient ascent projected
onto the rho-ball: e_0 = 0,

    e_{t+1} = Proj_rho(e_t + step_size * g_t / ||g_t||),  g_t = grad f(x + e_t),

with step_size = rho by default, so one step (`num_steps=1`) gives SAM's first-order solution
e = rho g / ||g|| (eq. 2) and f(x + e) - f(x) = rho ||g|| + O(rho^2); for a quadratic
f = 1/2 x^T A x + b^T x it is exactly rho ||g|| + rho^2 / 2 g^T A g / ||g||^2. The reported max is
the largest f over all iterates (each is feasible), so S >= 0 and it never decreases with steps.
At a point with zero gradient the ascent has no direction and S = 0 (a first-order method's blind
spot; eps-sharpness with random starts does not have it).

One step is far from the maximum (issue 12, a 341-parameter MLP near a minimum, rho = 0.2: 1 step
0.00368, 5 steps 0.00790, 20 steps 0.01036, brute force 0.01087), so by default (`num_steps=None`)
the ascent runs to a tolerance: a step that does not increase f is undone and the step size
halved; it stops on its own when an accepted step raises the best f by less than `tol` times the
sharpness so far, or the step size falls below 1e-3 rho, and at the limit after `max_steps`
gradient steps (then `converged=False`). `num_steps=N` runs exactly N fixed-size steps, as before.
Either way the result is the local maximum reached from SAM's start, a lower bound on the ball's
maximum: on the float64 MLP of tests/test_curvature_mlp64.py at rho = 0.2 the ascent converges to
0.00244 (one step: 0.00032) while projected ascent from random points on the sphere reaches 0.0062.
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
                  num_steps: int | None = None, *, step_size: float | None = None,
                  tol: float = 1e-3, max_steps: int = 100,
                  bn_mode: str | None = None) -> SamSharpness:
    """rho-sharpness of the full-dataset loss at `params` by projected ascent: to a tolerance
    (num_steps=None, at most max_steps steps) or exactly num_steps steps (module docstring).

    Cost: one full-dataset gradient per step (+ 1 loss evaluation with num_steps). Returns
    `sharpness` = max_loss - loss, `max_loss`, `loss` = f(x), `grad_norm` = ||grad f(x)||, the
    steps used (`num_steps`) and whether the ascent stopped on its own (`converged`).
    """
    _checks.check_positive("rho", rho)
    if num_steps is not None:
        _checks.check_int("num_steps", num_steps, 1)
    _checks.check_int("max_steps", max_steps, 1)
    _checks.check_positive("tol", tol)
    if step_size is not None:
        _checks.check_positive("step_size", step_size)
    _checks.check_bn_mode(bn_mode)
    batch_list = _checks.check_batches(batches)
    _checks.check_params(params)
    objective = DatasetObjective(loss_fn, params, batch_list)
    step = float(rho if step_size is None else step_size)
    x = objective.flat
    loss, grad = objective.value_and_grad(x)
    grad_norm0 = float(jnp.linalg.norm(grad))
    if num_steps is None:
        max_loss, steps, converged = _ascent_to_tolerance(objective, loss, grad, float(rho), step,
                                                          float(tol), int(max_steps))
    else:
        max_loss, steps, converged = _fixed_steps(objective, loss, grad, float(rho), step,
                                                  int(num_steps))
    return SamSharpness(sharpness=max_loss - loss, max_loss=max_loss, loss=loss, rho=float(rho),
                        num_steps=steps, grad_norm=grad_norm0, bn_mode=bn_mode,
                        converged=converged, tol=None if num_steps is not None else float(tol),
                        max_steps=None if num_steps is not None else int(max_steps))


def _fixed_steps(objective: DatasetObjective, loss: float, grad: jnp.ndarray, rho: float,
                 step: float, num_steps: int) -> tuple[float, int, bool]:
    """Exactly num_steps steps of size `step`; the best f over the iterates (converged: False
    unless the gradient vanished, since nothing was checked)."""
    x = objective.flat
    e = jnp.zeros_like(x)
    max_loss = loss
    for t in range(num_steps):
        if t > 0:
            value, grad = objective.value_and_grad(x + e)
            max_loss = max(max_loss, value)
        grad_norm = float(jnp.linalg.norm(grad))
        if grad_norm == 0.0:
            return max_loss, t, True
        e = project_to_ball(e + (step / grad_norm) * grad, rho)
        if t == num_steps - 1:
            max_loss = max(max_loss, objective.loss(x + e))
    return max_loss, num_steps, False


def _ascent_to_tolerance(objective: DatasetObjective, loss: float, grad: jnp.ndarray, rho: float,
                         step: float, tol: float, max_steps: int) -> tuple[float, int, bool]:
    """Projected normalized ascent with step halving until the gain per step is < tol x S."""
    x = objective.flat
    e, best = jnp.zeros_like(x), loss
    min_step = 1e-3 * step
    for t in range(1, max_steps + 1):
        grad_norm = float(jnp.linalg.norm(grad))
        if grad_norm == 0.0:
            return best, t - 1, True
        e_new = project_to_ball(e + (step / grad_norm) * grad, rho)
        value, grad_new = objective.value_and_grad(x + e_new)
        if value > best:
            gain, best = value - best, value
            e, grad = e_new, grad_new
            if t > 1 and gain <= tol * (best - loss):
                return best, t, True
        else:
            step /= 2
            if step < min_step:
                return best, t, True
    return best, max_steps, False
