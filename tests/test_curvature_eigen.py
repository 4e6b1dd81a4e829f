"""Top eigenvalues (Lanczos, power), Hutchinson trace and the batch-weighted HVP, checked against
closed forms (quadratics with a chosen spectrum) and dense `jax.hessian` + `numpy.linalg.eigh`."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import curvature_helpers as ch
from bsgap import curvature
from bsgap.curvature.hvp import DatasetObjective
from bsgap.curvature.lanczos import lanczos_top_eigenvalues
from bsgap.curvature.power import power_top_eigenvalues

SPECTRUM = np.concatenate([[10.0, 7.0, 5.0], np.linspace(0.1, 2.0, 37)])  # n = 40


@pytest.fixture(scope="module")
def quadratic():
    a = ch.symmetric_with_spectrum(SPECTRUM, seed=0)
    b = np.random.default_rng(1).standard_normal(len(SPECTRUM))
    params = ch.split_params(np.random.default_rng(2).standard_normal(len(SPECTRUM)))
    return ch.quadratic_loss(a, b), params, ch.dummy_batches()


@pytest.fixture(scope="module")
def mlp():
    params, batches = ch.mlp_init(), ch.mlp_batches()
    hessian = ch.dense_hessian(ch.mlp_loss, params, batches)
    return params, batches, np.linalg.eigvalsh(hessian)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_top_k_on_quadratic_match_closed_form(quadratic, method):
    loss_fn, params, batches = quadratic
    result = curvature.top_eigenvalues(loss_fn, params, batches, k=3, method=method, tol=1e-3,
                                       max_iters=100, seed=3)
    assert result.converged
    np.testing.assert_allclose(result.eigenvalues, [10.0, 7.0, 5.0], rtol=1e-3)
    assert np.all(np.diff(result.eigenvalues) < 0)
    assert np.all(result.residuals <= 1e-3)
    assert 3 <= result.num_hvps <= (40 if method == "lanczos" else 300)


def test_lanczos_needs_far_fewer_hvps_than_dimension(quadratic):
    loss_fn, params, batches = quadratic
    result = curvature.top_eigenvalues(loss_fn, params, batches, k=1, tol=1e-4)
    assert result.converged and result.num_hvps < 30  # the top 1 + 3 guard values converged
    np.testing.assert_allclose(result.eigenvalues, [10.0], rtol=1e-4)
    bare = curvature.top_eigenvalues(loss_fn, params, batches, k=1, tol=1e-4, guard=0,
                                     min_steps=1)  # the rule before issue 12
    assert bare.converged and bare.num_hvps < 25
    np.testing.assert_allclose(bare.eigenvalues, [10.0], rtol=1e-4)


def test_algorithms_on_explicit_indefinite_matrix():
    """Lanczos returns the algebraically largest; power the largest in magnitude."""
    a = jnp.asarray(ch.symmetric_with_spectrum([-12.0, 9.0, 4.0, 1.0, 0.5, -0.3], seed=5),
                    jnp.float32)
    v0 = jax.random.normal(jax.random.key(0), (6,))
    values, _, steps, converged = lanczos_top_eigenvalues(lambda v: a @ v, v0, 2, 1e-4, 50)
    assert converged and steps <= 6
    np.testing.assert_allclose(values, [9.0, 4.0], rtol=1e-4)
    values, _, _, converged = power_top_eigenvalues(lambda v: a @ v, 6, jnp.float32, 2, 1e-4,
                                                    500, jax.random.key(1))
    assert converged
    np.testing.assert_allclose(values, [9.0, -12.0], rtol=1e-4)


def test_hvp_is_batch_size_weighted():
    loss_fn, params, batches, hessian = ch.least_squares_problem(sizes=(5, 5, 2))
    objective = DatasetObjective(loss_fn, params, batches)
    v = jnp.asarray(np.random.default_rng(0).standard_normal(hessian.shape[0]), jnp.float32)
    np.testing.assert_allclose(objective.hvp(v), hessian @ np.asarray(v), rtol=1e-5, atol=1e-5)
    many = objective.hvp_many(jnp.stack([v, 2 * v]))
    np.testing.assert_allclose(many[1], 2 * hessian @ np.asarray(v), rtol=1e-5, atol=1e-5)
    assert objective.num_hvps == 3
    top = curvature.top_eigenvalues(loss_fn, params, batches, k=2)
    np.testing.assert_allclose(top.eigenvalues, np.linalg.eigvalsh(hessian)[::-1][:2], rtol=1e-4)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_mlp_top_eigenvalues_match_dense_eigh(mlp, method):
    """At initialization the Hessian is indefinite (|lambda_min| ~ 0.45 vs lambda_max ~ 0.66)."""
    params, batches, dense = mlp
    k = 2
    result = curvature.top_eigenvalues(ch.mlp_loss, params, batches, k=k, method=method,
                                       tol=1e-4, max_iters=300)
    if method == "lanczos":
        expected = dense[::-1][:k]
    else:
        expected = np.sort(dense[np.argsort(np.abs(dense))[::-1][:k]])[::-1]
    assert result.converged
    np.testing.assert_allclose(result.eigenvalues, expected, rtol=1e-3, atol=1e-5)


def test_hutchinson_trace_quadratic_within_stderr(quadratic):
    loss_fn, params, batches = quadratic
    result = curvature.hessian_trace(loss_fn, params, batches, tol=1e-6, max_probes=200, seed=0)
    assert result.num_hvps == 200 and not result.converged
    assert result.stderr > 0
    assert abs(result.trace - SPECTRUM.sum()) < 3 * result.stderr
    assert result.stderr < 0.05 * SPECTRUM.sum()


def test_hutchinson_stops_at_relative_tolerance():
    """A diagonal Hessian has zero Rademacher variance: stop after the minimum of 10 probes."""
    diag = np.linspace(1.0, 3.0, 8)
    result = curvature.hessian_trace(ch.quadratic_loss(np.diag(diag)), ch.split_params(np.ones(8)),
                                     ch.dummy_batches(), tol=1e-3)
    assert result.converged and result.num_hvps == 10
    np.testing.assert_allclose(result.trace, diag.sum(), rtol=1e-6)
    assert result.stderr < 1e-5


def test_hutchinson_trace_mlp_matches_dense():
    """Near a minimum (after 200 GD steps), where the trace is not swamped by mixed signs."""
    batches = ch.mlp_batches()
    params = ch.mlp_trained(ch.mlp_init(), batches)
    dense = np.linalg.eigvalsh(ch.dense_hessian(ch.mlp_loss, params, batches))
    result = curvature.hessian_trace(ch.mlp_loss, params, batches, tol=1e-9, max_probes=300)
    assert abs(result.trace - dense.sum()) < 3 * result.stderr
    assert result.stderr < 0.05 * abs(dense.sum())
