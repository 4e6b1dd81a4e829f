"""Exact gradient-noise statistics from per-example gradients (McCandlish et al. 2018, sec. 2.2).

With g_i the gradient of example i's loss, n examples and G = (1/n) sum_i g_i:

    tr(Sigma) = 1/(n-1) sum_i |g_i - G|^2        (the unbiased sample-covariance trace),
    B_simple  = tr(Sigma) / |G|^2,
    B_noise   = tr(H Sigma) / (G^T H G),  tr(H Sigma) = 1/(n-1) sum_i (g_i - G)^T H (g_i - G),

with H the Hessian of the loss averaged over the same examples. |G|^2 is the exact squared norm of
the mean over the examples given: it is |G|^2 of the dataset when `batches` cover it, and an
overestimate when they are a sample of n of the dataset's N examples (drawn without replacement):

    E |G_n|^2 = |G_N|^2 + (1 - n/N) tr(Sigma) / n,

so the raw B_simple is ~ B / (1 + B (1 - n/N) / n): on a subsample with n not >> B it is far too
low (issue 12: a true 6,313 reported as ~2,480 at n = 4,096). Every result therefore also carries
the bias-corrected (unbiased) |G|^2,

    grad_norm_sq_unbiased = |G_n|^2 - (1 - n/N) tr(Sigma) / n,

(tr(Sigma) with 1/(n-1) is unbiased for the dataset's, so this one is unbiased for |G_N|^2) and
b_simple_unbiased = tr(Sigma) / grad_norm_sq_unbiased (a ratio of unbiased estimates; NaN when the
corrected |G|^2 is <= 0, which happens when n is far below B_simple). The same holds for G^T H G
with tr(H Sigma) (taking H as fixed): grad_hess_grad_unbiased and b_noise_unbiased. N is the
`population_size` keyword (None: an infinite population, 1 - n/N = 1; N = n: no correction).
`small_sample` flags a result where n is not >> B_simple (n < 10 B_simple, raw or corrected, or a
corrected |G|^2 <= 0) on a proper subsample: the raw values are then biased by >= 10% and the
corrected ones noisy.

Per-example gradients: `jax.vmap(jax.grad(...))` over chunks of `chunk_size` examples, calling
`loss_fn` on one example at a time as a batch of size 1 (leading axis kept), so `loss_fn` must be
separable over examples: batch norm in 'train' mode on a batch of one is meaningless, use 'eval'.
Chunk statistics (mean, sum of squared deviations) are combined on the host in float64 with Chan,
Golub & LeVeque's (1979) pairwise update, which avoids the cancellation of sum |g_i|^2 - n |G|^2.

tr(H Sigma): b_noise_probes=None computes it exactly with one full-dataset HVP per example (n HVPs,
vmapped over a chunk at a time: only for small n, e.g. a subsample of batches); an integer P uses
Hutchinson over the example index, E_s[u^T H u] with u = sum_i s_i (g_i - G), s_i iid Rademacher,
which equals tr(D^T H D) for D = [g_1 - G, ...]; it costs P HVPs and the u's come from the same
single pass over per-example gradients.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bsgap.curvature import _checks, progress
from bsgap.curvature.hvp import DatasetObjective, LossFn
from bsgap.curvature.results import GradientNoise


def per_example_grads_fn(flat_loss: LossFn):
    """Jitted (flat_params, batch) -> (n_b, dim) per-example gradients via vmap of grad."""
    def one(flat, example):
        return jax.grad(flat_loss)(flat, jax.tree_util.tree_map(lambda a: a[None], example))
    return jax.jit(jax.vmap(one, in_axes=(None, 0)))


def iter_chunks(batch: Any, chunk_size: int | None) -> Iterator[Any]:
    """Consecutive slices of at most chunk_size examples of a batch (the whole batch if None)."""
    size = _checks.batch_size(batch)
    step = size if chunk_size is None else int(chunk_size)
    for start in range(0, size, step):
        yield jax.tree_util.tree_map(lambda a, s=start: a[s:s + step], batch)


@jax.jit
def _chunk_stats(grads: jax.Array, signs: jax.Array):
    mean = grads.mean(axis=0)
    m2 = jnp.sum(jnp.square(grads - mean))
    return mean, m2, signs @ grads


def combine_moments(n_a: int, mean_a: np.ndarray, m2_a: float, n_b: int, mean_b: np.ndarray,
                    m2_b: float) -> tuple[int, np.ndarray, float]:
    """Chan et al. (1979) merge of (count, mean vector, sum of squared deviations)."""
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), m2_a + m2_b + float(delta @ delta) * n_a * n_b / n


def _exact_trace_hess_cov(objective, grads_fn, mean: jax.Array, chunk_size: int | None) -> float:
    total = 0.0
    for batch in objective.batches:
        for chunk in iter_chunks(batch, chunk_size):
            deviations = grads_fn(objective.flat, chunk) - mean
            total += float(jnp.sum(deviations * objective.hvp_many(deviations)))
    return total


SMALL_SAMPLE_RATIO = 10.0  # n < this x B_simple on a subsample: flagged `small_sample`


def finite_population_factor(num_examples: int, population_size: int | None) -> float:
    """1 - n/N of sampling n of N examples without replacement (1 for N = None: infinite)."""
    return 1.0 if population_size is None else 1.0 - num_examples / population_size


def unbiased_square_norm(square_norm: float, trace: float, num_examples: int,
                         population_size: int | None) -> float:
    """|G_N|^2 estimated without bias from a sample's |G_n|^2 and tr(Sigma) (module docstring);
    the same correction for G^T H G with tr(H Sigma)."""
    factor = finite_population_factor(num_examples, population_size)
    return square_norm - factor * trace / num_examples


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


def is_small_sample(num_examples: int, population_size: int | None, b_simple: float,
                    b_simple_unbiased: float) -> bool:
    """True when a proper subsample's n is not >> B_simple (see the module docstring)."""
    if population_size is not None and num_examples >= population_size:
        return False
    if not np.isfinite(b_simple_unbiased):
        return True
    return num_examples < SMALL_SAMPLE_RATIO * max(b_simple, b_simple_unbiased)


def gradient_noise(loss_fn: LossFn, params: Any, batches: Sequence[Any], *,
                   with_b_noise: bool = False, b_noise_probes: int | None = None,
                   chunk_size: int | None = None, seed: int = 0,
                   population_size: int | None = None,
                   bn_mode: str | None = None) -> GradientNoise:
    """tr(Sigma) (unbiased 1/(n-1)), |G|^2 and B_simple from exact per-example gradients, and
    B_noise = tr(H Sigma) / G^T H G when with_b_noise=True (see the module docstring for cost),
    each also bias-corrected for a sample of n of `population_size` examples (None: infinite).

    chunk_size bounds how many per-example gradients (chunk_size x num_params floats) live at once.
    seed drives the Rademacher signs of the Hutchinson path. `bn_mode` is only recorded.
    """
    _checks.check_bn_mode(bn_mode)
    if chunk_size is not None:
        _checks.check_int("chunk_size", chunk_size, 1)
    if b_noise_probes is not None:
        _checks.check_int("b_noise_probes", b_noise_probes, 1)
    batch_list = _checks.check_batches(batches)
    _checks.check_params(params)
    num_examples = sum(_checks.batch_size(b) for b in batch_list)
    if num_examples < 2:
        raise ValueError(f"batches hold {num_examples} example; the covariance needs >= 2")
    if population_size is not None:
        _checks.check_int("population_size", population_size, 1)
        if population_size < num_examples:
            raise ValueError(f"population_size={population_size} is below the {num_examples} "
                             "examples in batches; pass the dataset size N >= n, or None")
    objective = DatasetObjective(loss_fn, params, batch_list)
    grads_fn = per_example_grads_fn(objective.flat_loss)
    rng = np.random.default_rng(seed)
    num_probes = b_noise_probes if (with_b_noise and b_noise_probes) else 0
    count, mean, m2 = 0, np.zeros(objective.dim), 0.0
    signed_sums = jnp.zeros((num_probes, objective.dim), objective.dtype)
    sign_totals = np.zeros(num_probes)
    for batch in objective.batches:
        for chunk in iter_chunks(batch, chunk_size):
            n_c = _checks.batch_size(chunk)
            signs = rng.choice(np.array([-1.0, 1.0]), size=(num_probes, n_c))
            c_mean, c_m2, c_signed = _chunk_stats(grads_fn(objective.flat, chunk),
                                                  jnp.asarray(signs, objective.dtype))
            count, mean, m2 = combine_moments(count, mean, m2, n_c,
                                              np.asarray(c_mean, np.float64), float(c_m2))
            signed_sums = signed_sums + c_signed
            sign_totals += signs.sum(axis=1)
            progress.report("examples", n_c)
    trace_cov = m2 / (count - 1)
    grad_norm_sq = float(mean @ mean)
    b_simple = trace_cov / grad_norm_sq if grad_norm_sq > 0 else float("nan")
    grad_norm_sq_unbiased = unbiased_square_norm(grad_norm_sq, trace_cov, count, population_size)
    b_simple_unbiased = _ratio(trace_cov, grad_norm_sq_unbiased)
    sample = dict(population_size=population_size,
                  grad_norm_sq_unbiased=grad_norm_sq_unbiased,
                  b_simple_unbiased=b_simple_unbiased,
                  small_sample=is_small_sample(count, population_size, b_simple,
                                               b_simple_unbiased))
    if not with_b_noise:
        return GradientNoise(trace_cov=trace_cov, grad_norm_sq=grad_norm_sq, b_simple=b_simple,
                             num_examples=count, bn_mode=bn_mode, **sample)
    mean_dev = jnp.asarray(mean, objective.dtype)
    grad_hess_grad = float(jnp.vdot(mean_dev, objective.hvp(mean_dev)))
    if num_probes:
        u = signed_sums - jnp.asarray(sign_totals, objective.dtype)[:, None] * mean_dev
        samples = np.asarray(jnp.sum(u * objective.hvp_many(u), axis=1), np.float64) / (count - 1)
        trace_hess_cov = float(samples.mean())
        stderr = (float(samples.std(ddof=1) / np.sqrt(num_probes)) if num_probes > 1
                  else float("nan"))
        method = "hutchinson"
    else:
        trace_hess_cov = _exact_trace_hess_cov(objective, grads_fn, mean_dev, chunk_size)
        trace_hess_cov /= count - 1
        stderr, method = 0.0, "exact"
    b_noise = trace_hess_cov / grad_hess_grad if grad_hess_grad != 0 else float("nan")
    grad_hess_grad_unbiased = unbiased_square_norm(grad_hess_grad, trace_hess_cov, count,
                                                   population_size)
    return GradientNoise(trace_cov=trace_cov, grad_norm_sq=grad_norm_sq, b_simple=b_simple,
                         num_examples=count, b_noise=b_noise, trace_hess_cov=trace_hess_cov,
                         trace_hess_cov_stderr=stderr, grad_hess_grad=grad_hess_grad,
                         b_noise_method=method, num_hvps=objective.num_hvps, bn_mode=bn_mode,
                         grad_hess_grad_unbiased=grad_hess_grad_unbiased,
                         b_noise_unbiased=_ratio(trace_hess_cov, grad_hess_grad_unbiased),
                         **sample)
