"""Maximizers of a smooth f over a box |y_i| <= h_i, for Keskar eps-sharpness (sharpness.py).

Every maximizer works in the unit-box coordinates z = y / h (|z_i| <= 1), so boxes whose widths
differ by orders of magnitude across coordinates are searched alike, and none of them depends on
the scale of f or of its gradient: multiplying f by c > 0 gives the same iterates (up to rounding).

- `sign_ascent`: projected sign-gradient ascent z <- clip(z + s sign(grad_z f), -1, 1) with the
  step s (in half-widths) starting at 1 and halved whenever a step does not increase f; only
  signs of the gradient and comparisons of f are used, hence the invariance. From z = 0 the first
  step lands on the box corner sign(grad f(0)), the maximizer of f's linearization. It stops on its
  own at a fixed point (every coordinate at the edge its gradient points to: a vertex satisfying
  the KKT conditions of the box maximum) or when s < `min_step`, and at the limit after
  `max_iters` steps.
- `lbfgsb`: L-BFGS-B (scipy) on -(f(z) - f(z_0)) * c with c = sqrt(dim) / |grad_z f(z_0)|.
  L-BFGS-B's first step is a projected step along the gradient about as long as the gradient (its
  Hessian model starts as the identity), so this c makes the first step span the unit box
  (half-diagonal sqrt(dim)) whatever |grad f|. Without it, near a minimum (|grad f| ~ 0) the first
  steps are ~|grad f| long, the curvature pairs of a locally concave -f are skipped
  (s^T y <= 0) and the search barely moves (issue 12: 0.00001% against a box maximum of
  >= 0.00136%). pgtol = 0; it stops on its own on scipy's relative-reduction test (ftol,
  relative, so scale-free) or a failed line search, at the limit after `max_iters` iterations.

Each returns a `BoxSearch`: the best point it evaluated (every iterate is feasible), its value, the
iterations and evaluations it used and whether it stopped on its own.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import scipy.optimize

# y (float64, box coordinates) -> (f(y), grad_y f(y)) in float64.
ValueAndGrad64 = Callable[[np.ndarray], tuple[float, np.ndarray]]
EDGE_TOL = 1e-9  # |z_i| >= 1 - EDGE_TOL counts as at the box edge


@dataclasses.dataclass(frozen=True)
class BoxSearch:
    """One maximizer run: its best point `y` (box coordinates) and value, how it ended."""

    method: str
    start: str
    y: np.ndarray
    value: float
    num_iters: int
    num_evals: int
    converged: bool  # stopped on its own (not at max_iters)
    message: str

    def summary(self, half_widths: np.ndarray) -> dict:
        """Plain-Python description of the run (no point), for the result's `searches`."""
        return {"method": self.method, "start": self.start, "value": self.value,
                "num_iters": self.num_iters, "num_evals": self.num_evals,
                "converged": self.converged, "message": self.message,
                "edge_fraction": edge_fraction(self.y, half_widths)}


def edge_fraction(y: np.ndarray, half_widths: np.ndarray) -> float:
    """Fraction of coordinates with a nonzero half-width at which |y_i| is at the box edge."""
    nonzero = half_widths > 0
    if not np.any(nonzero):
        return 0.0
    z = np.abs(y[nonzero]) / half_widths[nonzero]
    return float(np.mean(z >= 1.0 - EDGE_TOL))


def box_corner(half_widths: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """The vertex h * sign(grad) (sign 0 taken as +1): the maximizer of the linearization of f."""
    return np.where(np.asarray(grad) >= 0, 1.0, -1.0) * half_widths


class _Tracker:
    """Counts evaluations and keeps the best point seen."""

    def __init__(self, value_and_grad: ValueAndGrad64, half_widths: np.ndarray):
        self.value_and_grad, self.half_widths = value_and_grad, half_widths
        self.num_evals, self.best_value, self.best_y = 0, -np.inf, None

    def __call__(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        """f and grad_z f at unit-box point z."""
        y = np.clip(z, -1.0, 1.0) * self.half_widths
        value, grad = self.value_and_grad(y)
        self.num_evals += 1
        if value > self.best_value:
            self.best_value, self.best_y = float(value), y
        return float(value), np.asarray(grad, np.float64) * self.half_widths


def _unit(y0: np.ndarray, half_widths: np.ndarray) -> np.ndarray:
    safe = np.where(half_widths > 0, half_widths, 1.0)
    return np.where(half_widths > 0, np.asarray(y0, np.float64) / safe, 0.0)


def sign_ascent(value_and_grad: ValueAndGrad64, half_widths: np.ndarray, y0: np.ndarray,
                max_iters: int, start: str = "given", min_step: float = 1e-3) -> BoxSearch:
    """Projected sign-gradient ascent in the box from y0 (see the module docstring)."""
    track = _Tracker(value_and_grad, half_widths)
    fixed = half_widths <= 0  # a zero-width coordinate never moves
    z = _unit(y0, half_widths)
    value, grad = track(z)
    step, iters, converged, message = 1.0, 0, False, "max_iters reached"
    while iters < max_iters:
        direction = np.where(fixed, 0.0, np.sign(grad))
        z_new = np.clip(z + step * direction, -1.0, 1.0)
        if np.array_equal(z_new, z):
            converged, message = True, "fixed point (a KKT vertex of the box)"
            break
        iters += 1
        value_new, grad_new = track(z_new)
        if value_new > value:
            z, value, grad = z_new, value_new, grad_new
        else:
            step /= 2
            if step < min_step:
                converged, message = True, f"step below {min_step:g} half-widths"
                break
    return BoxSearch("sign_ascent", start, track.best_y, track.best_value, iters,
                     track.num_evals, converged, message)


def lbfgsb(value_and_grad: ValueAndGrad64, half_widths: np.ndarray, y0: np.ndarray,
           max_iters: int, start: str = "given") -> BoxSearch:
    """L-BFGS-B on the scaled objective from y0 (see the module docstring)."""
    track = _Tracker(value_and_grad, half_widths)
    z0 = _unit(y0, half_widths)
    value0, grad0 = track(z0)
    norm = float(np.linalg.norm(grad0))
    scale = np.sqrt(z0.size) / norm if norm > 0 else 1.0

    def negative(z):
        value, grad = track(z)
        return -(value - value0) * scale, -grad * scale

    bounds = np.stack([np.where(half_widths > 0, -1.0, 0.0),
                       np.where(half_widths > 0, 1.0, 0.0)], axis=1)
    result = scipy.optimize.minimize(negative, z0, jac=True, method="L-BFGS-B", bounds=bounds,
                                     options={"maxiter": int(max_iters), "gtol": 0.0})
    message = str(result.message)
    return BoxSearch("lbfgsb", start, track.best_y, track.best_value, int(result.get("nit", 0)),
                     track.num_evals, int(result.status) != 1, message)
