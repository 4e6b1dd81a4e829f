"""Gradient noise: exact per-example statistics vs a Python loop and a dense Hessian, the two-batch
estimator's unbiasedness over many random draws, and Smith & Le's noise scale."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import curvature_helpers as ch
from bsgap import curvature

SIZES = (7, 7, 10)  # unequal, and not multiples of the chunk size used below


@pytest.fixture(scope="module")
def problem():
    """Tiny MLP after 10 GD steps (B_simple ~ 10), its per-example gradients by an explicit
    loop, and its dense Hessian."""
    batches = ch.mlp_batches(sizes=SIZES, seed=3)
    params = ch.mlp_trained(ch.mlp_init(), batches, steps=10)
    _, unravel = ravel_pytree(params)
    grad_one = jax.jit(lambda p, ex: ravel_pytree(jax.grad(ch.mlp_loss)(p, ex))[0])
    per_example = []
    for batch in batches:
        for i in range(len(batch["y"])):
            example = {k: v[i:i + 1] for k, v in batch.items()}
            per_example.append(np.asarray(grad_one(params, example), np.float64))
    per_example = np.stack(per_example)
    hessian = ch.dense_hessian(ch.mlp_loss, params, batches)
    return params, batches, per_example, hessian


def _exact_stats(per_example):
    mean = per_example.mean(axis=0)
    deviations = per_example - mean
    trace_cov = np.sum(deviations ** 2) / (len(per_example) - 1)
    return mean, deviations, trace_cov


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_per_example_statistics_match_python_loop(problem, chunk_size):
    params, batches, per_example, _ = problem
    mean, _, trace_cov = _exact_stats(per_example)
    result = curvature.gradient_noise(ch.mlp_loss, params, batches, chunk_size=chunk_size)
    assert result.num_examples == sum(SIZES)
    np.testing.assert_allclose(result.trace_cov, trace_cov, rtol=1e-5)
    np.testing.assert_allclose(result.grad_norm_sq, mean @ mean, rtol=1e-4)
    np.testing.assert_allclose(result.b_simple, trace_cov / (mean @ mean), rtol=1e-4)
    assert result.b_noise is None and result.num_hvps == 0


def test_b_noise_exact_and_hutchinson_match_dense_hessian(problem):
    params, batches, per_example, hessian = problem
    mean, deviations, _ = _exact_stats(per_example)
    trace_h_cov = np.einsum("ij,jk,ik->", deviations, hessian, deviations) / (len(deviations) - 1)
    g_h_g = mean @ hessian @ mean
    exact = curvature.gradient_noise(ch.mlp_loss, params, batches, with_b_noise=True,
                                     chunk_size=5, bn_mode="eval")
    assert exact.b_noise_method == "exact" and exact.num_hvps == sum(SIZES) + 1
    assert exact.bn_mode == "eval"
    np.testing.assert_allclose(exact.trace_hess_cov, trace_h_cov, rtol=1e-4)
    np.testing.assert_allclose(exact.grad_hess_grad, g_h_g, rtol=1e-3)
    np.testing.assert_allclose(exact.b_noise, trace_h_cov / g_h_g, rtol=1e-3)
    probes = curvature.gradient_noise(ch.mlp_loss, params, batches, with_b_noise=True,
                                      b_noise_probes=400, seed=1)
    assert probes.b_noise_method == "hutchinson" and probes.num_hvps == 401
    assert abs(probes.trace_hess_cov - trace_h_cov) < 3 * probes.trace_hess_cov_stderr
    assert probes.trace_hess_cov_stderr < 0.2 * trace_h_cov


@pytest.mark.parametrize("replace", [True, False])
def test_two_batch_estimator_is_unbiased(problem, replace):
    """Per-draw estimates (one small + one big batch each); their mean must be within 3 standard
    errors of the exact value: (|G|^2, tr Sigma_1/n) with replacement, (|G|^2 - tr Sigma_u / N,
    tr Sigma_u) without (module docstring of noise_scale)."""
    _, _, per_example, _ = problem
    n = len(per_example)
    mean, _, trace_u = _exact_stats(per_example)
    draws = 4000
    g_sq = np.empty(draws)
    s = np.empty(draws)
    rng = np.random.default_rng(11 + replace)
    b_small, b_big = 2, 12
    for i in range(draws):  # one estimate per draw, so the spread gives the standard error
        idx_s = rng.choice(n, b_small, replace=replace)
        idx_b = rng.choice(n, b_big, replace=replace)
        est = curvature.two_batch_noise(np.sum(per_example[idx_s].mean(0) ** 2),
                                        np.sum(per_example[idx_b].mean(0) ** 2), b_small, b_big)
        g_sq[i], s[i] = est.grad_norm_sq, est.trace_cov
    if replace:
        expected_g, expected_s = mean @ mean, trace_u * (n - 1) / n
    else:
        expected_g, expected_s = mean @ mean - trace_u / n, trace_u
    for values, expected in ((g_sq, expected_g), (s, expected_s)):
        stderr = values.std(ddof=1) / np.sqrt(draws)
        assert abs(values.mean() - expected) < 3 * stderr, (values.mean(), expected, stderr)
        assert stderr < 0.1 * abs(expected)


def test_two_batch_array_input_and_jit():
    small = np.array([5.0, 7.0, 6.0])
    numpy_result = curvature.two_batch_noise(small, 2.5, 8, 24)
    np.testing.assert_allclose(numpy_result.grad_norm_sq, (24 * 2.5 - 8 * 6.0) / 16)
    np.testing.assert_allclose(numpy_result.trace_cov, (6.0 - 2.5) / (1 / 8 - 1 / 24))
    np.testing.assert_allclose(numpy_result.b_simple,
                               numpy_result.trace_cov / numpy_result.grad_norm_sq)
    jitted = jax.jit(lambda s, b: curvature.two_batch_noise(s, b, 8, 24, bn_mode="train"))(
        jnp.asarray(small), 2.5)
    np.testing.assert_allclose(jitted.trace_cov, numpy_result.trace_cov, rtol=1e-6)
    assert jitted.bn_mode == "train" and numpy_result.bn_mode is None
    assert isinstance(numpy_result.to_json()["trace_cov"], float)


def test_smith_le_noise_scale():
    expected = 0.1 * (50_000 / 128 - 1)
    assert curvature.smith_le_noise_scale(0.1, 50_000, 128) == pytest.approx(expected)
    assert curvature.smith_le_noise_scale(0.5, 1000, 1000) == 0.0
    scales = curvature.smith_le_noise_scale(jnp.asarray([0.1, 0.2]), 1000, 100)
    np.testing.assert_allclose(scales, [0.9, 1.8], rtol=1e-6)
    # Momentum m: the effective lr is eps / (1 - m) (Smith & Le 2018, sec. 5).
    assert curvature.smith_le_noise_scale(0.1, 50_000, 128, 0.9) == pytest.approx(10 * expected)
    with pytest.raises(ValueError, match=r"momentum=1.0 must satisfy 0 <= momentum < 1"):
        curvature.smith_le_noise_scale(0.1, 1000, 100, 1.0)
    from bsgap.scaling import smith_le_momentum
    assert [smith_le_momentum(o, 0.9) for o in ("sgd", "momentum", "nesterov", "adam")] == \
        [0.0, 0.9, 0.9, None]
