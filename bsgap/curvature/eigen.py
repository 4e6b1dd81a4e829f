"""Facade: top-k eigenvalues of the full-dataset loss Hessian (Lanczos or power iteration)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from bsgap.curvature import _checks
from bsgap.curvature.hvp import DatasetObjective, LossFn
from bsgap.curvature.lanczos import default_guard, default_min_steps, lanczos_top_eigenvalues
from bsgap.curvature.power import power_top_eigenvalues
from bsgap.curvature.results import TopEigenvalues

METHODS = ("lanczos", "power")


def top_eigenvalues(loss_fn: LossFn, params: Any, batches: Sequence[Any], k: int = 1,
                    method: str = "lanczos", tol: float = 1e-3, max_iters: int = 100,
                    seed: int = 0, *, guard: int | None = None, min_steps: int | None = None,
                    bn_mode: str | None = None) -> TopEigenvalues:
    """Top-k eigenvalues of the Hessian of L(theta) = sum_b (n_b / n) loss_fn(theta, batch_b).

    method='lanczos': Lanczos with full reorthogonalization; max_iters bounds the Lanczos steps
      (= HVPs; also capped at the number of parameters); returns the algebraically largest k.
    method='power': power iteration with Hotelling deflation; max_iters bounds the HVPs *per
      eigenvalue*; returns the k largest in magnitude, sorted descending.
    Both stop when each returned value theta_i has relative residual
    ||H y_i - theta_i y_i|| / |theta_i| <= tol (an eigenvalue of H lies within tol |theta_i|),
    and report `converged=False` if max_iters ran out first. Lanczos also needs the next `guard`
    Ritz values (default max(3, k)) converged and at least `min_steps` steps (default
    max(20, 2 (k + guard))) before it stops, so that a top eigenvalue the start vector barely
    overlaps has time to appear instead of a lower one converging in its place (see
    `lanczos_top_eigenvalues`). The start vector is standard normal from `jax.random.key(seed)`.
    `bn_mode` is only recorded.
    """
    _checks.check_choice("method", method, METHODS)
    _checks.check_int("k", k, 1)
    _checks.check_positive("tol", tol)
    _checks.check_int("max_iters", max_iters, 1)
    _checks.check_bn_mode(bn_mode)
    if method == "lanczos" and max_iters < k:
        raise ValueError(f"max_iters={max_iters} must be >= k={k} for Lanczos")
    if guard is not None:
        _checks.check_int("guard", guard, 0)
    if min_steps is not None:
        _checks.check_int("min_steps", min_steps, 1)
    guard = default_guard(k) if guard is None else int(guard)
    min_steps = default_min_steps(k, guard) if min_steps is None else int(min_steps)
    batch_list = _checks.check_batches(batches)
    _checks.check_params(params)
    objective = DatasetObjective(loss_fn, params, batch_list)
    if k > objective.dim:
        raise ValueError(f"k={k} exceeds the number of parameters {objective.dim}")
    key = jax.random.key(seed)
    if method == "lanczos":
        v0 = jax.random.normal(key, (objective.dim,), objective.dtype)
        values, residuals, _, converged = lanczos_top_eigenvalues(
            objective.hvp, v0, k, tol, max_iters, guard=guard, min_steps=min_steps)
        residuals = residuals / np.maximum(np.abs(values), np.finfo(float).tiny)
    else:
        values, residuals, _, converged = power_top_eigenvalues(
            objective.hvp, objective.dim, objective.dtype, k, tol, max_iters, key)
    return TopEigenvalues(eigenvalues=np.asarray(values, dtype=np.float64),
                          num_hvps=objective.num_hvps, converged=converged, method=method,
                          tol=float(tol), residuals=np.asarray(residuals, dtype=np.float64),
                          bn_mode=bn_mode,
                          guard=guard if method == "lanczos" else None,
                          min_steps=min_steps if method == "lanczos" else None)
