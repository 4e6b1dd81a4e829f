"""Stochastic Lanczos quadrature: Gauss-quadrature moment exactness, probe-averaged moments vs
tr(A^p)/n, normalization of the smoothed density and its peaks at eigenvalue clusters."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import curvature_helpers as ch
from bsgap import curvature
from bsgap.curvature.density import gaussian_density, slq_nodes_weights

# 40 eigenvalues near 1 and 10 near 5: the density must peak at 1 and 5, mass 0.8 / 0.2.
RNG = np.random.default_rng(0)
CLUSTERED = np.concatenate([1.0 + 0.05 * RNG.standard_normal(40),
                            5.0 + 0.05 * RNG.standard_normal(10)])


@pytest.fixture(scope="module")
def clustered_density():
    a = ch.symmetric_with_spectrum(CLUSTERED, seed=1)
    params = ch.split_params(np.ones(len(CLUSTERED)))
    return a, curvature.spectral_density(ch.quadratic_loss(a), params, ch.dummy_batches(),
                                         num_steps=20, num_probes=8, seed=0)


def test_quadrature_reproduces_moments_of_the_probe():
    """sum_i tau_i^2 theta_i^p = v^T A^p v exactly for p < 2m (Gauss quadrature)."""
    a = ch.symmetric_with_spectrum(np.linspace(-1.0, 3.0, 30), seed=2)
    a32 = jnp.asarray(a, jnp.float32)
    v = jax.random.normal(jax.random.key(3), (30,))
    nodes, weights = slq_nodes_weights(lambda x: a32 @ x, v, num_steps=6)
    u = np.asarray(v, np.float64) / np.linalg.norm(np.asarray(v, np.float64))
    assert nodes.shape == weights.shape == (6,)
    for p in range(6):
        expected = u @ np.linalg.matrix_power(a, p) @ u
        np.testing.assert_allclose(np.sum(weights * nodes ** p), expected, rtol=1e-4, atol=1e-5)


def test_probe_average_moments_match_trace(clustered_density):
    a, result = clustered_density
    assert result.nodes.shape == result.weights.shape == (8, 20)
    np.testing.assert_allclose(result.weights.sum(axis=1), 1.0, rtol=1e-6)
    n = len(CLUSTERED)
    for p in (1, 2):
        per_probe = np.sum(result.weights * result.nodes ** p, axis=1)
        mean, stderr = per_probe.mean(), per_probe.std(ddof=1) / np.sqrt(len(per_probe))
        assert abs(mean - np.sum(CLUSTERED ** p) / n) < 3 * stderr + 1e-6
    assert result.num_hvps == 8 * 20


def test_density_integrates_to_one_and_peaks_at_clusters(clustered_density):
    _, result = clustered_density
    grid, density = result.grid, result.density
    np.testing.assert_allclose(ch.trapezoid(density, grid), 1.0, atol=1e-3)
    assert np.all(density >= 0)
    near = lambda c: (grid > c - 0.5) & (grid < c + 0.5)  # noqa: E731
    low_mass = ch.trapezoid(np.where(near(1.0), density, 0.0), grid)
    high_mass = ch.trapezoid(np.where(near(5.0), density, 0.0), grid)
    assert abs(low_mass - 0.8) < 0.1 and abs(high_mass - 0.2) < 0.1
    peak_low = grid[np.argmax(np.where(grid < 3.0, density, 0.0))]
    peak_high = grid[np.argmax(np.where(grid > 3.0, density, 0.0))]
    assert abs(peak_low - 1.0) < 0.2 and abs(peak_high - 5.0) < 0.2
    assert density[np.argmin(np.abs(grid - 3.0))] < 0.01 * density.max()


def test_gaussian_density_single_node_is_normal_pdf():
    grid, density, sigma = gaussian_density(np.array([[2.0, 0.0]]), np.array([[1.0, 0.0]]),
                                            grid_size=4001, sigma=0.1)
    assert sigma == 0.1
    np.testing.assert_allclose(density.max(), 1.0 / (0.1 * np.sqrt(2 * np.pi)), rtol=1e-3)
    np.testing.assert_allclose(grid[np.argmax(density)], 2.0, atol=1e-3)
    np.testing.assert_allclose(ch.trapezoid(density, grid), 1.0, atol=1e-6)


def test_num_steps_capped_at_dimension_and_records_bn_mode():
    a = ch.symmetric_with_spectrum([1.0, 2.0, 3.0, 4.0], seed=0)
    result = curvature.spectral_density(ch.quadratic_loss(a), ch.split_params(np.ones(4)),
                                        ch.dummy_batches(), num_steps=90, bn_mode="eval")
    assert result.nodes.shape == (1, 4) and result.bn_mode == "eval"
    live = result.weights[0] > 1e-8
    np.testing.assert_allclose(np.sort(result.nodes[0][live]), [1.0, 2.0, 3.0, 4.0], rtol=1e-4)
