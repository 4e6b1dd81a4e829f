"""Cheap gradient-noise-scale estimators: pure functions of numbers, usable inside jit.

- McCandlish et al. (2018), App. A.1: the two-batch estimator. With G_B the mean gradient of a
  batch of B examples drawn with replacement, E|G_B|^2 = |G|^2 + tr(Sigma) / B, so two batch sizes
  B_small < B_big give unbiased estimates

      |G|^2 ~= (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small),
      S = tr(Sigma) ~= (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big),

  and B_simple ~= S / |G|^2 (a ratio of unbiased estimates, itself biased: McCandlish et al.
  average numerator and denominator separately, e.g. by EMAs, before dividing).
  Sampling *without* replacement from N examples gives E|G_B|^2 = |G|^2 + tr(Sigma_u) (1/B - 1/N)
  with Sigma_u the unbiased (1/(N-1)) covariance: then S estimates tr(Sigma_u) without bias and
  the |G|^2 estimate is |G|^2 - tr(Sigma_u) / N.
- Smith & Le (2018), "A Bayesian perspective on generalization and stochastic gradient
  descent" (ICLR 2018): the SGD noise scale g = eps (N / B - 1) (sec. 4, ~= eps N / B for B << N)
  for learning rate eps, training set size N and batch size B; with momentum m (sec. 5) the
  effective learning rate is eps / (1 - m), so g = eps (N / B - 1) / (1 - m). bsgap uses this one
  definition everywhere: ``bsgap.scaling.smith_le_noise_scale`` (JAX-free, for the figure
  scripts too), re-exported here.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bsgap.curvature import _checks
from bsgap.curvature.results import TwoBatchNoise
from bsgap.scaling import smith_le_momentum, smith_le_noise_scale  # noqa: F401 (re-exported)


def _is_traced_or_device(*values: Any) -> bool:
    return any(isinstance(v, jax.Array) for v in values)


def _concrete_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def two_batch_noise(small_grad_norms_sq: Any, big_grad_norm_sq: Any, b_small: Any,
                    b_big: Any, *, bn_mode: str | None = None) -> TwoBatchNoise:
    """McCandlish et al. (2018) App. A.1 estimates of |G|^2, tr(Sigma) and B_simple.

    small_grad_norms_sq: |G_small|^2, a scalar or an array of values each measured on its own
      batch of b_small examples (e.g. every device's gradient before the all-reduce); the array is
      averaged, which lowers the variance without adding bias.
    big_grad_norm_sq: |G_big|^2 of a batch of b_big examples (e.g. the all-reduced gradient).
    Computes in numpy float64 for host numbers and in jax.numpy (jit-safe) when any argument is a
    JAX array; argument checks (0 < b_small < b_big) run only on concrete Python/numpy numbers.
    `bn_mode` (the mode the gradients were taken in) is only recorded.
    """
    _checks.check_bn_mode(bn_mode)
    if _concrete_number(b_small) and _concrete_number(b_big):
        if not 0 < b_small < b_big:
            raise ValueError(f"b_small={b_small!r} and b_big={b_big!r} must satisfy "
                             "0 < b_small < b_big")
    xp = jnp if _is_traced_or_device(small_grad_norms_sq, big_grad_norm_sq, b_small, b_big) else np
    dtype = None if xp is jnp else np.float64
    small = xp.mean(xp.asarray(small_grad_norms_sq, dtype=dtype))
    big = xp.asarray(big_grad_norm_sq, dtype=dtype)
    b_small = xp.asarray(b_small, dtype=small.dtype)
    b_big = xp.asarray(b_big, dtype=small.dtype)
    grad_norm_sq = (b_big * big - b_small * small) / (b_big - b_small)
    trace_cov = (small - big) / (1.0 / b_small - 1.0 / b_big)
    if xp is np:
        grad_norm_sq, trace_cov = float(grad_norm_sq), float(trace_cov)
        b_simple = trace_cov / grad_norm_sq if grad_norm_sq != 0 else float("nan")
    else:
        b_simple = trace_cov / grad_norm_sq
    return TwoBatchNoise(grad_norm_sq=grad_norm_sq, trace_cov=trace_cov, b_simple=b_simple,
                         bn_mode=bn_mode)
