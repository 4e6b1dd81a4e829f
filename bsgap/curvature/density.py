"""Hessian eigenvalue density by stochastic Lanczos quadrature (SLQ; Ghorbani, Krishnan & Xiao
2019, sec. 2 and App. A; Ubaru, Chen & Saad 2017; Lin, Saad & Yang 2016).

The spectral density phi(t) = (1/n) sum_i delta(t - lambda_i) is smoothed with a Gaussian kernel
g_sigma and estimated, for a random unit vector v with E[v v^T] = I/n, from

    v^T g_sigma(t I - H) v  ~=  sum_{i=1}^m tau_i^2 g_sigma(t - theta_i),

where (theta_i, tau_i^2) are the Gauss quadrature nodes and weights of the m-step Lanczos
tridiagonal T_m started at v: theta_i the eigenvalues of T_m, tau_i the first components of its
eigenvectors (Golub & Meurant 1994). Gauss quadrature is exact for polynomials of degree < 2m:
sum_i tau_i^2 theta_i^p = v^T H^p v, so E[sum_i tau_i^2 theta_i^p] = tr(H^p) / n. The estimate is
averaged over `num_probes` independent v.

Choices (documented because the paper leaves them to the reader):
- probes are standard normal vectors normalized to unit norm (Ghorbani et al. draw v ~ N(0, I/n));
  the weights of each probe then sum to exactly 1;
- sigma defaults to (theta_max - theta_min) / num_steps, the resolution of an m-node quadrature
  (PyHessian instead uses a variance of 1e-5 * max(1, range), for log-scale plots: pass `sigma`);
- the grid spans [theta_min - pad, theta_max + pad] with pad = 5 sigma + 1% of the range, so the
  density integrates to 1 over it up to the Gaussian tails beyond 5 sigma (< 1e-6); it is NOT
  renormalized, so its integral is a check, not a given.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from bsgap.curvature import _checks
from bsgap.curvature.hvp import DatasetObjective, LossFn
from bsgap.curvature.lanczos import MatVec, lanczos_tridiagonal, tridiagonal_eigh
from bsgap.curvature.results import SpectralDensity


def slq_nodes_weights(matvec: MatVec, v0: jax.Array, num_steps: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Gauss quadrature nodes theta_i and weights tau_i^2 of the Lanczos tridiagonal from v0.

    Returns two (num_steps,) float64 arrays (num_steps is capped at dim). If Lanczos stops early
    on an invariant subspace after j < num_steps steps, the quadrature is already exact; the
    remaining slots repeat the last node with weight 0 so that probes stack into one array.
    """
    num_steps = min(int(num_steps), int(v0.shape[0]))
    alphas, betas, _, _ = lanczos_tridiagonal(matvec, v0, num_steps)
    values, vectors = tridiagonal_eigh(alphas, betas)
    weights = vectors[0] ** 2
    pad = num_steps - len(values)
    return (np.concatenate([values, np.full(pad, values[-1])]),
            np.concatenate([weights, np.zeros(pad)]))


def gaussian_density(nodes: np.ndarray, weights: np.ndarray, grid_size: int = 2000,
                     sigma: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Smoothed density (1/P) sum_p sum_i w_pi N(t; theta_pi, sigma^2) on a uniform grid.

    nodes, weights: (P, m). Returns (grid, density, sigma). See the module docstring for the
    default sigma and the grid's extent.
    """
    nodes = np.atleast_2d(np.asarray(nodes, dtype=np.float64))
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    live = nodes[weights > 0] if np.any(weights > 0) else nodes.ravel()
    low, high = float(live.min()), float(live.max())
    width = high - low if high > low else max(abs(high), 1.0)
    if sigma is None:
        sigma = width / nodes.shape[1]
    pad = 5.0 * sigma + 0.01 * width
    grid = np.linspace(low - pad, high + pad, grid_size)
    z = (grid[:, None, None] - nodes[None]) / sigma  # (grid, P, m)
    kernel = np.exp(-0.5 * z * z) / (sigma * np.sqrt(2.0 * np.pi))
    density = np.einsum("gpm,pm->g", kernel, weights) / nodes.shape[0]
    return grid, density, float(sigma)


def spectral_density(loss_fn: LossFn, params: Any, batches: Sequence[Any], num_steps: int = 90,
                     num_probes: int = 1, seed: int = 0, *, grid_size: int = 2000,
                     sigma: float | None = None, bn_mode: str | None = None) -> SpectralDensity:
    """SLQ estimate of the eigenvalue density of the full-dataset Hessian.

    num_steps Lanczos steps (HVPs, capped at the number of parameters) per probe; num_probes
    independent unit Gaussian probes from `jax.random.key(seed)`. Returns the per-probe nodes and
    weights (num_probes, num_steps) and the Gaussian-smoothed density on `grid_size` points.
    `bn_mode` is only recorded.
    """
    _checks.check_int("num_steps", num_steps, 1)
    _checks.check_int("num_probes", num_probes, 1)
    _checks.check_int("grid_size", grid_size, 2)
    if sigma is not None:
        _checks.check_positive("sigma", sigma)
    _checks.check_bn_mode(bn_mode)
    batch_list = _checks.check_batches(batches)
    _checks.check_params(params)
    objective = DatasetObjective(loss_fn, params, batch_list)
    key = jax.random.key(seed)
    all_nodes, all_weights = [], []
    for p in range(num_probes):
        v0 = jax.random.normal(jax.random.fold_in(key, p), (objective.dim,), objective.dtype)
        nodes, weights = slq_nodes_weights(objective.hvp, v0, num_steps)
        all_nodes.append(nodes)
        all_weights.append(weights)
    nodes, weights = np.stack(all_nodes), np.stack(all_weights)
    grid, density, sigma_used = gaussian_density(nodes, weights, grid_size, sigma)
    return SpectralDensity(grid=grid, density=density, nodes=nodes, weights=weights,
                           sigma=sigma_used, num_hvps=objective.num_hvps, bn_mode=bn_mode)
