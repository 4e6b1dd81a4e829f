"""Hutchinson's stochastic trace estimator with Rademacher probes (Hutchinson 1990; Avron &
Toledo 2011; used for the Hessian trace by Yao et al. 2020, PyHessian, Alg. 2).

    tr(A) = E_z[z^T A z],  z_i iid uniform on {-1, +1},

estimated by the mean of z_p^T A z_p over probes p = 1..P with standard error
std(z_p^T A z_p, ddof=1) / sqrt(P). Rademacher probes have the smallest variance among iid
probes: Var(z^T A z) = 2 sum_{i != j} A_ij^2 (zero for a diagonal A).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bsgap.curvature import _checks
from bsgap.curvature.hvp import DatasetObjective, LossFn
from bsgap.curvature.lanczos import MatVec
from bsgap.curvature.results import HessianTrace

MIN_PROBES = 10


def hutchinson_trace_estimate(matvec: MatVec, dim: int, dtype, key: jax.Array, tol: float,
                              max_probes: int, min_probes: int = MIN_PROBES
                              ) -> tuple[float, float, int, bool]:
    """Hutchinson estimate of tr(A) with early stopping on relative standard error.

    Stops after probe P when P >= min(min_probes, max_probes), P >= 2 and
    stderr / |mean| <= tol, or at max_probes. Probe p is rademacher(fold_in(key, p)).
    Returns (trace, stderr (nan for a single probe), num_probes = matvecs, converged).
    """
    samples: list[float] = []
    trace, stderr, converged = 0.0, float("nan"), False
    for p in range(max_probes):
        z = jax.random.rademacher(jax.random.fold_in(key, p), (dim,), dtype)
        samples.append(float(jnp.vdot(z, matvec(z))))
        trace = float(np.mean(samples))
        if len(samples) >= 2:
            stderr = float(np.std(samples, ddof=1) / np.sqrt(len(samples)))
            if len(samples) >= min(min_probes, max_probes) and stderr <= tol * abs(trace):
                converged = True
                break
    return trace, stderr, len(samples), converged


def hessian_trace(loss_fn: LossFn, params: Any, batches: Sequence[Any], tol: float = 1e-3,
                  max_probes: int = 100, seed: int = 0, *, min_probes: int = MIN_PROBES,
                  bn_mode: str | None = None) -> HessianTrace:
    """tr(H) of the full-dataset (all `batches`, size-weighted) loss by Hutchinson's estimator.

    One Rademacher probe = one full-dataset HVP. Stops when stderr / |trace| <= tol after at least
    `min_probes` probes (default 10), or after `max_probes`. `bn_mode` is only recorded.
    """
    _checks.check_bn_mode(bn_mode)
    _checks.check_positive("tol", tol)
    _checks.check_int("max_probes", max_probes, 1)
    _checks.check_int("min_probes", min_probes, 1)
    batch_list = _checks.check_batches(batches)
    _checks.check_params(params)
    objective = DatasetObjective(loss_fn, params, batch_list)
    trace, stderr, num_probes, converged = hutchinson_trace_estimate(
        objective.hvp, objective.dim, objective.dtype, jax.random.key(seed), tol, max_probes,
        min_probes)
    return HessianTrace(trace=trace, stderr=stderr, num_hvps=objective.num_hvps,
                        converged=converged, tol=float(tol), bn_mode=bn_mode)
