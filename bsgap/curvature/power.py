"""Power iteration with deflation: the simple reference for the top Hessian eigenvalues.

For eigenvalue i = 1..k, iterate v <- A' v / ||A' v|| on the deflated operator
A' = A - sum_{j<i} lambda_j u_j u_j^T (Hotelling deflation), keeping v orthogonal to the found
u_j, with the Rayleigh quotient lambda = v^T A' v as the estimate (the method PyHessian uses, Yao
et al. 2020, Alg. 1). Power iteration converges to the eigenvalue of largest *magnitude* of A', so
the result is the k largest-magnitude eigenvalues; they equal Lanczos's algebraically largest ones
when the top of the spectrum dominates negative curvature (usual near a minimum).

Convergence uses the same relative criterion as Lanczos: the residual ||P A' P v - lambda v|| <=
tol * |lambda|, with P the projector onto the complement of the found u_j (the operator actually
iterated; measuring the residual of A itself would stall at the error of the earlier u_j). This is
stricter than PyHessian's relative change of lambda between iterations; power iteration's residual
shrinks like |lambda_2 / lambda_1|^t, so close eigenvalues need many iterations.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bsgap.curvature.lanczos import MatVec


def _project_out(v: jax.Array, found: list[jax.Array]) -> jax.Array:
    for u in found:
        v = v - jnp.vdot(u, v) * u
    return v


def power_top_eigenvalues(matvec: MatVec, dim: int, dtype, k: int, tol: float, max_iters: int,
                          key: jax.Array) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """k largest-magnitude eigenvalues of A by power iteration with deflation.

    `max_iters` bounds the matvecs per eigenvalue. Start vectors are standard normal from
    `fold_in(key, i)`. Returns (eigenvalues sorted descending (k,), relative residuals (k,),
    total matvecs, all converged).
    """
    values: list[float] = []
    residuals: list[float] = []
    found: list[jax.Array] = []
    num_matvecs = 0
    all_converged = True
    for i in range(k):
        v = _project_out(jax.random.normal(jax.random.fold_in(key, i), (dim,), dtype), found)
        v = v / jnp.linalg.norm(v)
        value, rel_residual, converged = 0.0, np.inf, False
        for _ in range(max_iters):
            w = matvec(v)
            num_matvecs += 1
            for lam, u in zip(values, found):  # Hotelling deflation
                w = w - (lam * jnp.vdot(u, v)).astype(dtype) * u
            w = _project_out(w, found)
            value = float(jnp.vdot(v, w))
            residual = float(jnp.linalg.norm(w - value * v))
            rel_residual = residual / max(abs(value), np.finfo(float).tiny)
            w_norm = float(jnp.linalg.norm(w))
            if rel_residual <= tol or w_norm == 0.0:
                converged = True
                break
            v = w / w_norm
        values.append(value)
        residuals.append(rel_residual)
        found.append(v)
        all_converged = all_converged and converged
    order = np.argsort(values)[::-1]
    return np.array(values)[order], np.array(residuals)[order], num_matvecs, all_converged
