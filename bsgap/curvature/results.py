"""Result records of the curvature library: small frozen dataclasses with `to_json()`.

Every result carries `bn_mode` ('train' = batch statistics, 'eval' = running averages, or None when
the model has no batch norm / the caller did not say), filled from the facade's `bn_mode=` kwarg:
the loss function closes over the batch-norm behaviour, so only the caller knows it, and the JSON of
every measurement must say which one it was.

`to_json()` returns a dict of plain Python types (float, int, bool, str, None, lists) that
`json.dumps` accepts; numpy / JAX arrays become (nested) lists, NaN stays float('nan').
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np


def _plain(value: Any) -> Any:
    """Convert numpy / JAX scalars and arrays (and containers of them) to plain Python."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.ndarray, jax.Array, np.generic)):
        array = np.asarray(value)
        return array.item() if array.ndim == 0 else array.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    raise TypeError(f"cannot convert {type(value).__name__} to JSON")


class _JsonMixin:
    def to_json(self) -> dict[str, Any]:
        """All fields as a dict of plain Python types (for the analysis CLIs' JSON)."""
        out = {"result": type(self).__name__}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            out[field.name] = _plain(getattr(self, field.name))
        return out


@dataclasses.dataclass(frozen=True)
class TopEigenvalues(_JsonMixin):
    """Top-k Hessian eigenvalues.

    eigenvalues: descending numpy array of length k. For 'lanczos' the algebraically largest
      Ritz values; for 'power' the k largest-magnitude eigenvalues found by deflation, sorted
      descending (the two agree when the top of the spectrum dominates in magnitude).
    residuals: relative residual ||H y_i - theta_i y_i|| / |theta_i| of each returned pair, the
      convergence criterion (<= tol): H has an eigenvalue within residual * |theta_i| of theta_i.
    num_hvps: Hessian-vector products of the full (all-batches) loss that were used.
    guard, min_steps: Lanczos's stopping rule (None for 'power'): the top k + guard Ritz values
      converged, after at least min_steps steps.
    """

    eigenvalues: np.ndarray
    num_hvps: int
    converged: bool
    method: str
    tol: float
    residuals: np.ndarray
    bn_mode: str | None = None
    guard: int | None = None
    min_steps: int | None = None


@dataclasses.dataclass(frozen=True)
class HessianTrace(_JsonMixin):
    """Hutchinson estimate of tr(H) with its standard error (std of probes / sqrt(num_probes))."""

    trace: float
    stderr: float
    num_hvps: int
    converged: bool
    tol: float
    bn_mode: str | None = None


@dataclasses.dataclass(frozen=True)
class SpectralDensity(_JsonMixin):
    """Stochastic Lanczos quadrature estimate of the Hessian eigenvalue density.

    nodes, weights: (num_probes, num_steps) Gauss quadrature nodes (Ritz values) and weights
      (squared first components of the Ritz vectors); each row's weights sum to 1 (padding nodes
      after an early Lanczos breakdown carry weight 0).
    grid, density: the Gaussian-smoothed density on a uniform grid; integrates to ~1.
    sigma: the Gaussian kernel's standard deviation (same units as the eigenvalues).
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    num_hvps: int
    bn_mode: str | None = None


@dataclasses.dataclass(frozen=True)
class EpsSharpness(_JsonMixin):
    """Keskar et al. (2017) eps-sharpness, Metric 2.1.

    phi = 100 (max_{y in C_eps} f(x + A y) - f(x)) / (1 + f(x)).

    sharpness: the percentage. max_loss: best f(x + A y) found (a lower bound on the true max).
    box_fraction: max_i |y_i| / bound_i of the maximizer (<= 1: it lies in C_eps).
    edge_fraction: the share of the maximizer's coordinates at the box edge (|y_i| = bound_i).
    subspace_dim: None for the full space (A = I), else p (A is n x p).
    method, num_iters, converged: the search that found max_loss ('sign_ascent' or 'lbfgsb'), its
      iterations, and whether it stopped on its own (True) or at max_iters (False).
    searches: every search's method, start, value, num_iters, num_evals, converged, message and
      edge_fraction, best first. num_loss_evals: full-dataset evaluations of all of them.
    """

    sharpness: float
    max_loss: float
    loss: float
    epsilon: float
    subspace_dim: int | None
    max_iters: int
    num_loss_evals: int
    box_fraction: float
    init: str
    bn_mode: str | None = None
    edge_fraction: float = float("nan")
    num_iters: int = 0
    converged: bool = False
    method: str = ""
    num_starts: int = 0
    searches: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class SamSharpness(_JsonMixin):
    """SAM-style rho-sharpness max_{||e|| <= rho} f(x + e) - f(x) (Foret et al. 2021, eq. 1-2).

    num_steps: the ascent steps used. converged: the ascent stopped on its own (gain per step below
    tol x sharpness, or no ascent direction); False at max_steps and for a fixed num_steps.
    tol, max_steps: the stopping rule (None for a fixed num_steps).
    """

    sharpness: float
    max_loss: float
    loss: float
    rho: float
    num_steps: int
    grad_norm: float
    bn_mode: str | None = None
    converged: bool = False
    tol: float | None = None
    max_steps: int | None = None


@dataclasses.dataclass(frozen=True)
class GradientNoise(_JsonMixin):
    """Exact per-example gradient statistics (McCandlish et al. 2018, sec. 2.2).

    trace_cov: tr(Sigma) of the per-example gradient covariance, unbiased 1/(n-1) estimator.
    grad_norm_sq: |G|^2 of the mean gradient over all examples given.
    b_simple: trace_cov / grad_norm_sq.
    b_noise: tr(H Sigma) / (G^T H G) when requested (else None); trace_hess_cov and
      grad_hess_grad are its numerator and denominator; b_noise_method is 'exact' or 'hutchinson'
      and trace_hess_cov_stderr the Hutchinson standard error (0 for exact).
    population_size: N, the dataset the examples were drawn from (None: infinite).
    grad_norm_sq_unbiased, b_simple_unbiased, grad_hess_grad_unbiased, b_noise_unbiased: the
      values corrected for a sample of n of N examples (E|G_n|^2 = |G_N|^2 + (1 - n/N) tr Sigma / n;
      bsgap/curvature/noise.py); NaN where the corrected denominator is <= 0.
    small_sample: n is not >> B_simple on a proper subsample (the raw values biased >= 10%).
    """

    trace_cov: float
    grad_norm_sq: float
    b_simple: float
    num_examples: int
    b_noise: float | None = None
    trace_hess_cov: float | None = None
    trace_hess_cov_stderr: float | None = None
    grad_hess_grad: float | None = None
    b_noise_method: str | None = None
    num_hvps: int = 0
    bn_mode: str | None = None
    population_size: int | None = None
    grad_norm_sq_unbiased: float = float("nan")
    b_simple_unbiased: float = float("nan")
    grad_hess_grad_unbiased: float | None = None
    b_noise_unbiased: float | None = None
    small_sample: bool = False


@dataclasses.dataclass(frozen=True)
class TwoBatchNoise(_JsonMixin):
    """McCandlish et al. (2018) App. A.1 two-batch estimates; a pytree (bn_mode is static
    metadata), so it can be returned from jit.

    grad_norm_sq: estimate of |G|^2. trace_cov: estimate of S = tr(Sigma).
    b_simple: trace_cov / grad_norm_sq (ratio of the two estimates, not itself unbiased).
    """

    grad_norm_sq: Any
    trace_cov: Any
    b_simple: Any
    bn_mode: str | None = None


jax.tree_util.register_dataclass(TwoBatchNoise,
                                 data_fields=["grad_norm_sq", "trace_cov", "b_simple"],
                                 meta_fields=["bn_mode"])


@dataclasses.dataclass(frozen=True)
class LineProfile(_JsonMixin):
    """Loss (and accuracy) along a line theta(alpha) in parameter space.

    kind: 'interpolation' for theta(alpha) = (1 - alpha) theta_a + alpha theta_b (Keskar Fig. 3) or
      'filter_normalized' for theta + alpha d with a filter-normalized random d (Li et al. 2018).
    accuracies: None unless an accuracy_fn was given.
    """

    alphas: np.ndarray
    losses: np.ndarray
    accuracies: np.ndarray | None
    kind: str
    bn_mode: str | None = None
