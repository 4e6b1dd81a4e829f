"""Keskar et al. (2017) eps-sharpness (sec. 2.2.2, Metric 2.1).

    phi_{x,f}(eps, A) = (max_{y in C_eps} f(x + A y) - f(x)) / (1 + f(x)) * 100,
    C_eps = {z in R^p : |z_i| <= eps (|(A^+ x)_i| + 1)},

with f the training loss (here the size-weighted average of `loss_fn` over `batches`), x the
parameters, A = I_n (the full space, p = n) or a random n x p matrix (the paper uses p = 100) and
A^+ its pseudo-inverse. The paper reports eps = 1e-3 and 5e-4 (`KESKAR_EPSILONS`) and solves the
inner maximization with 10 iterations of L-BFGS-B.

The metric assumes a loss f >= 0 (the denominator 1 + f(x) >= 1 makes it relative); for f <= -1
it changes sign and means nothing.

The inner maximization (box_search.py) is the best of several local searches, none of which
depends on the scale of f or of |grad f|:
- projected sign-gradient ascent from the box corner h sign(grad f(x)) (the maximizer of f's
  linearization, and where the maximum of a locally convex f near a minimum usually is) and from
  `num_starts - 1` seeded points uniform in the box;
- L-BFGS-B from `init` ('zero': y = 0, the default; 'corner'; 'random': uniform in the box, seeded)
  on the objective scaled so that its first step spans the box.
Each runs at most `max_iters` iterations. A plain 10-iteration L-BFGS-B on f (this module before
issue 12, and our reading of the paper) takes first steps ~|grad f| long: near a minimum it barely
moves and reports far too little (on a 341-parameter MLP at loss 8.5e-4, eps = 1e-3: 0.00001% from
a random start, 0.0005% from zero, against >= 0.0014% by sign ascent; the random start was the
worse one, since it starts below f(x)). All of them are local methods: the maximum of a convex
function over a box sits at a vertex and there can be many local maxima, so the result is a lower
bound on the box maximum. The reported maximum is the largest f over every point any search
evaluated and over y = 0 (which is in C_eps), so phi >= 0.

The result says how far to trust it: `edge_fraction` (the share of coordinates of the maximizer at
the box edge; near a minimum, where f is locally convex, ~1), `num_iters` and `converged` (whether
the winning search stopped on its own, not at `max_iters`), and `searches`, one summary per search.

Keskar et al. never released their code; these are our choices, each one a keyword argument:
- A (subspace_dim = p): iid standard normal entries from numpy's default_rng(seed), each column
  scaled to unit L2 norm (so A y moves x by about |y| per coordinate of y, like A = I);
  A^+ x is computed as the minimum-norm least-squares solution (np.linalg.lstsq, float64, equal to
  pinv(A) @ x) without forming A^+. A is held on the host in float64 (n p doubles: 0.8 GB for
  n = 1e6, p = 100) and on the device in the parameter dtype.
- Precision: f and its gradient are computed by JAX in the parameter dtype (float32 by default);
  the searches run in float64 on the host, so y is cast to the parameter dtype before each
  evaluation and f and grad f back to float64. grad_y f(x + A y) = A^T grad f.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bsgap.curvature import _checks
from bsgap.curvature.box_search import (BoxSearch, ValueAndGrad64, box_corner, edge_fraction,
                                        lbfgsb, sign_ascent)
from bsgap.curvature.hvp import DatasetObjective, LossFn
from bsgap.curvature.results import EpsSharpness

KESKAR_EPSILONS = (1e-3, 5e-4)
INITS = ("zero", "random", "corner")


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
    """Maximize f(y) over the box |y_i| <= half_widths_i by scaled L-BFGS-B from y0 (float64).

    Returns (y_best, f_best, num_evals): the best of all points L-BFGS-B evaluated (y0 included).
    """
    search = lbfgsb(value_and_grad, half_widths, y0, max_iters)
    return search.y, search.value, search.num_evals


def best_in_box(value_and_grad: ValueAndGrad64, half_widths: np.ndarray, init: str,
                num_starts: int, max_iters: int, rng: np.random.Generator) -> list[BoxSearch]:
    """Every search of the module docstring, best first: sign ascent from the corner and from
    num_starts - 1 uniform points, and L-BFGS-B from `init`."""
    zero = np.zeros_like(half_widths)
    _, grad0 = value_and_grad(zero)
    corner = box_corner(half_widths, grad0)
    searches = [sign_ascent(value_and_grad, half_widths, corner, max_iters, start="corner")]
    for i in range(num_starts - 1):
        y0 = rng.uniform(-1.0, 1.0, size=half_widths.shape) * half_widths
        searches.append(sign_ascent(value_and_grad, half_widths, y0, max_iters,
                                    start=f"random{i}"))
    y0 = {"zero": zero, "corner": corner,
          "random": rng.uniform(-1.0, 1.0, size=half_widths.shape) * half_widths}[init]
    searches.append(lbfgsb(value_and_grad, half_widths, y0, max_iters, start=init))
    return sorted(searches, key=lambda s: -s.value)


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
                  subspace_dim: int | None = None, max_iters: int = 50, seed: int = 0, *,
                  init: str = "zero", num_starts: int = 4,
                  bn_mode: str | None = None) -> EpsSharpness:
    """Keskar et al. (2017) Metric 2.1 of the full-dataset loss at `params` (see module docstring).

    subspace_dim=None: A = I (full space). subspace_dim=p: random n x p A (p=100 in the paper).
    max_iters: iterations of each search (num_starts sign ascents and one L-BFGS-B).
    Returns the percentage `sharpness`, `max_loss` (best f in C_eps found), `loss` = f(x),
    `box_fraction` = max_i |y_i| / half_width_i of the maximizer (<= 1), `edge_fraction`,
    `num_iters`, `converged` and `method` of the winning search, every search's summary and the
    evaluation count.
    """
    _checks.check_nonnegative("epsilon", epsilon)
    if subspace_dim is not None:
        _checks.check_int("subspace_dim", subspace_dim, 1)
    _checks.check_int("max_iters", max_iters, 1)
    _checks.check_int("num_starts", num_starts, 1)
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
    loss = objective.loss()
    if not np.any(half_widths > 0):  # eps = 0: C_eps = {0}
        searches = [BoxSearch("none", "zero", np.zeros_like(half_widths), loss, 0, 0, True,
                              "the box is the point y = 0")]
    else:
        searches = best_in_box(subspace_value_and_grad(objective, a), half_widths, init,
                               int(num_starts), int(max_iters), rng)
    best = searches[0]
    y_best, max_loss = best.y, best.value
    if max_loss < loss:  # y = 0 beats every point the searches tried
        y_best, max_loss = np.zeros_like(half_widths), loss
    nonzero = half_widths > 0
    box_fraction = float(np.max(np.abs(y_best[nonzero]) / half_widths[nonzero], initial=0.0))
    return EpsSharpness(sharpness=100.0 * (max_loss - loss) / (1.0 + loss), max_loss=max_loss,
                        loss=loss, epsilon=float(epsilon), subspace_dim=subspace_dim,
                        max_iters=int(max_iters), num_loss_evals=objective.num_loss_evals,
                        box_fraction=box_fraction, init=init, bn_mode=bn_mode,
                        edge_fraction=edge_fraction(y_best, half_widths),
                        num_iters=best.num_iters, converged=best.converged, method=best.method,
                        num_starts=int(num_starts),
                        searches=[s.summary(half_widths) for s in searches])
