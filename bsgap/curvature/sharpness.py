"""Keskar et al. (2017) eps-sharpness (sec. 2.2.2, Metric 2.1).

    phi_{x,f}(eps, A) = (max_{y in C_eps} f(x + A y) - f(x)) / (1 + f(x)) * 100,
    C_eps = {z in R^p : |z_i| <= eps (|(A^+ x)_i| + 1)},

with f the training loss (here the size-weighted average of `loss_fn` over `batches`), x the
parameters, A = I_n (the full space, p = n) or a random n x p matrix (the paper uses p = 100) and
A^+ its pseudo-inverse. The inner maximization uses L-BFGS-B (scipy.optimize.fmin_l_bfgs_b) on -f
with the box as bounds and, as in the paper, 10 iterations by default. The paper reports eps =
1e-3 and 5e-4 (`KESKAR_EPSILONS`).

The metric assumes a loss f >= 0 (the denominator 1 + f(x) >= 1 makes it relative); for f <= -1
it changes sign and means nothing. L-BFGS-B is a local method: the maximum of a convex function over
a box sits at a vertex and there can be many local maxima, so the result is the local maximum
reached from the start point, a lower bound on the box maximum.

Keskar et al. never released their code; these are our choices, each one a keyword argument:
- Start: y0 uniform in the box (`init='random'`, the default), seeded. Starting at y0 = 0
  (`init='zero'`) is a trap at a minimum: the gradient there is ~0, so L-BFGS-B's projected
  gradient test stops at once and phi ~ 0 however sharp the minimum is.
- Stopping: pgtol=0 (never stop on a small projected gradient, the loss is flat-ish near a
  minimum) and scipy's default factr; maxiter = `max_iters`, maxfun = 15000 (scipy's default).
- Reported maximum: the largest f over *every* point L-BFGS-B evaluated, and over y = 0 (which is
  in C_eps), so phi >= 0 and max_loss is a lower bound on the true box maximum (a 10-iteration
  local method cannot certify more).
- A (subspace_dim = p): iid standard normal entries from numpy's default_rng(seed), each column
  scaled to unit L2 norm (so A y moves x by about |y| per coordinate of y, like A = I);
  A^+ x is computed as the minimum-norm least-squares solution (np.linalg.lstsq, float64, equal to
  pinv(A) @ x) without forming A^+. A is held on the host in float64 (n p doubles: 0.8 GB for
  n = 1e6, p = 100) and on the device in the parameter dtype.
- Precision: f and its gradient are computed by JAX in the parameter dtype (float32 by default);
  L-BFGS-B runs in float64 on the host, so y is cast to float32 before each evaluation and f and
  grad f back to float64. grad_y f(x + A y) = A^T grad f.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from bsgap.curvature import _checks
from bsgap.curvature.hvp import DatasetObjective, LossFn
from bsgap.curvature.results import EpsSharpness

KESKAR_EPSILONS = (1e-3, 5e-4)
INITS = ("random", "zero")

ValueAndGrad64 = Callable[[np.ndarray], tuple[float, np.ndarray]]


def random_subspace(dim: int, subspace_dim: int, rng: np.random.Generator) -> np.ndarray:
    """A in R^{dim x subspace_dim}: iid N(0, 1) entries, unit-L2-norm columns (float64)."""
    a = rng.standard_normal((dim, subspace_dim))
    return a / np.linalg.norm(a, axis=0, keepdims=True)


def box_half_widths(x: np.ndarray, a: np.ndarray | None, epsilon: float) -> np.ndarray:
    """Half-widths eps (|(A^+ x)_i| + 1) of C_eps (A = None means A = I), float64."""
    x = np.asarray(x, dtype=np.float64)
    coords = x if a is None else np.linalg.lstsq(a, x, rcond=None)[0]
    return epsilon * (np.abs(coords) + 1.0)


def maximize_in_box(value_and_grad: ValueAndGrad64, half_widths: np.ndarray, y0: np.ndarray,
                    max_iters: int) -> tuple[np.ndarray, float, int]:
    """Maximize f(y) over the box |y_i| <= half_widths_i by L-BFGS-B on -f, from y0 (float64).

    Returns (y_best, f_best, num_evals): the best of all points L-BFGS-B evaluated (y0 included).
    """
    best = {"f": -np.inf, "y": y0, "evals": 0}

    def negative(y):
        value, grad = value_and_grad(y)
        best["evals"] += 1
        if value > best["f"]:
            best["f"], best["y"] = value, np.array(y, dtype=np.float64)
        return -value, -grad

    bounds = np.stack([-half_widths, half_widths], axis=1)
    scipy.optimize.fmin_l_bfgs_b(negative, np.asarray(y0, dtype=np.float64), bounds=bounds,
                                 maxiter=max_iters, pgtol=0.0)
    return best["y"], float(best["f"]), int(best["evals"])


def subspace_value_and_grad(objective: DatasetObjective, a: np.ndarray | None) -> ValueAndGrad64:
    """y (float64) -> (f(x + A y), A^T grad f(x + A y)) in float64, f the full-dataset loss."""
    x = objective.flat
    a_dev = None if a is None else jnp.asarray(a, dtype=objective.dtype)
    to_theta = jax.jit(lambda y: x + y if a_dev is None else x + a_dev @ y)
    to_y = jax.jit(lambda g: g if a_dev is None else a_dev.T @ g)

    def value_and_grad(y: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = objective.value_and_grad(to_theta(jnp.asarray(y, dtype=objective.dtype)))
        return float(value), np.asarray(to_y(grad), dtype=np.float64)
    return value_and_grad


def eps_sharpness(loss_fn: LossFn, params: Any, batches: Sequence[Any], epsilon: float = 1e-3,
                  subspace_dim: int | None = None, max_iters: int = 10, seed: int = 0, *,
                  init: str = "random", bn_mode: str | None = None) -> EpsSharpness:
    """Keskar et al. (2017) Metric 2.1 of the full-dataset loss at `params` (see module docstring).

    subspace_dim=None: A = I (full space). subspace_dim=p: random n x p A (p=100 in the paper).
    Returns the percentage `sharpness`, `max_loss` (best f in C_eps found), `loss` = f(x),
    `box_fraction` = max_i |y_i| / half_width_i of the maximizer (<= 1) and the evaluation count.
    """
    _checks.check_nonnegative("epsilon", epsilon)
    if subspace_dim is not None:
        _checks.check_int("subspace_dim", subspace_dim, 1)
    _checks.check_int("max_iters", max_iters, 1)
    _checks.check_choice("init", init, INITS)
    _checks.check_bn_mode(bn_mode)
    batch_list = _checks.check_batches(batches)
    _checks.check_params(params)
    objective = DatasetObjective(loss_fn, params, batch_list)
    if subspace_dim is not None and subspace_dim > objective.dim:
        raise ValueError(f"subspace_dim={subspace_dim} exceeds the number of parameters "
                         f"{objective.dim}; use subspace_dim <= {objective.dim} or None")
    rng = np.random.default_rng(seed)
    a = None if subspace_dim is None else random_subspace(objective.dim, subspace_dim, rng)
    half_widths = box_half_widths(np.asarray(objective.flat), a, float(epsilon))
    y0 = np.zeros_like(half_widths)
    if init == "random":
        y0 = rng.uniform(-1.0, 1.0, size=half_widths.shape) * half_widths
    loss = objective.loss()
    y_best, f_best, num_evals = maximize_in_box(
        subspace_value_and_grad(objective, a), half_widths, y0, max_iters)
    if f_best < loss:  # y = 0 beats every point L-BFGS-B tried
        y_best, f_best = np.zeros_like(half_widths), loss
    max_loss = f_best
    nonzero = half_widths > 0
    box_fraction = float(np.max(np.abs(y_best[nonzero]) / half_widths[nonzero], initial=0.0))
    return EpsSharpness(sharpness=100.0 * (max_loss - loss) / (1.0 + loss), max_loss=max_loss,
                        loss=loss, epsilon=float(epsilon), subspace_dim=subspace_dim,
                        max_iters=int(max_iters), num_loss_evals=num_evals + 1,
                        box_fraction=box_fraction, init=init, bn_mode=bn_mode)
