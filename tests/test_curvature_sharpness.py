"""Keskar eps-sharpness and SAM rho-sharpness against brute-force / closed-form maxima."""
import itertools

import numpy as np
import pytest

import curvature_helpers as ch
from bsgap import curvature
from bsgap.curvature.sharpness import (KESKAR_EPSILONS, box_half_widths, maximize_in_box,
                                       random_subspace)

DIM = 4


@pytest.fixture(scope="module")
def quadratic():
    a = ch.symmetric_with_spectrum([0.5, 1.0, 2.0, 3.0], seed=4)
    b = np.array([3.0, -2.5, 2.0, -3.5])
    x = np.array([0.3, -0.2, 0.5, 0.1])
    return a, b, x


def _vertex_max(a, b, x, basis, half_widths) -> float:
    """Brute force: a convex quadratic's max over a box is attained at one of its vertices."""
    return max(ch.quadratic_value(a, b, x + basis @ (np.array(signs) * half_widths))
               for signs in itertools.product([-1.0, 1.0], repeat=len(half_widths)))


def _single_local_max(a, b, x, basis, half_widths) -> bool:
    """Every partial derivative of y -> f(x + B y) keeps its sign over the box, so the vertex
    sign(gradient) is the only local maximum and a local method must find the global one."""
    grad = basis.T @ (a @ x + b)
    hess = basis.T @ a @ basis
    return bool(np.all(np.abs(grad) > np.abs(hess) @ half_widths))


@pytest.mark.parametrize("subspace_dim", [None, 2])
def test_eps_sharpness_matches_vertex_brute_force(quadratic, subspace_dim):
    a, b, x = quadratic
    epsilon, seed = 0.05, 7
    basis = (np.eye(DIM) if subspace_dim is None
             else random_subspace(DIM, subspace_dim, np.random.default_rng(seed)))
    # Keskar et al. (2017) eq. 3: C_eps = {|z_i| <= eps (|(A^+ x)_i| + 1)}, A = I or the basis.
    half_widths = epsilon * (np.abs(np.linalg.pinv(basis) @ x) + 1.0)
    if subspace_dim is None:
        np.testing.assert_allclose(half_widths, epsilon * (np.abs(x) + 1.0), rtol=1e-12)
    np.testing.assert_allclose(box_half_widths(x, None if subspace_dim is None else basis, epsilon),
                               half_widths, rtol=1e-12)
    assert _single_local_max(a, b, x, basis, half_widths)
    expected_max = _vertex_max(a, b, x, basis, half_widths)
    result = curvature.eps_sharpness(ch.quadratic_loss(a, b), {"theta": x.astype(np.float32)},
                                     ch.dummy_batches(), epsilon=epsilon,
                                     subspace_dim=subspace_dim, seed=seed)
    f_x = ch.quadratic_value(a, b, x)
    np.testing.assert_allclose(result.loss, f_x, rtol=1e-6)
    np.testing.assert_allclose(result.max_loss, expected_max, rtol=1e-5)
    np.testing.assert_allclose(result.sharpness, 100 * (expected_max - f_x) / (1 + f_x), rtol=1e-4)
    np.testing.assert_allclose(result.box_fraction, 1.0, rtol=1e-6)  # the maximizer is a vertex


def test_eps_sharpness_is_a_lower_bound_inside_the_box(quadratic):
    """With several local maxima (large box) the 10-iteration local search stays feasible and
    never exceeds the true maximum."""
    a, b, x = quadratic
    for seed in range(3):
        result = curvature.eps_sharpness(ch.quadratic_loss(a, b), {"theta": x.astype(np.float32)},
                                         ch.dummy_batches(), epsilon=1.0, seed=seed)
        true_max = _vertex_max(a, b, x, np.eye(DIM), box_half_widths(x, None, 1.0))
        assert result.loss <= result.max_loss <= true_max * (1 + 1e-6)
        assert result.box_fraction <= 1.0 + 1e-9


def test_maximize_in_box_keeps_iterates_feasible():
    """The returned maximizer of a function increasing without bound lies in C_eps (on a face)."""
    half_widths = np.array([0.1, 0.5, 2.0])
    def value_and_grad(y):
        return float(np.sum(np.exp(y))), np.exp(y)
    y, f, evals = maximize_in_box(value_and_grad, half_widths, np.zeros(3), max_iters=10)
    assert np.all(np.abs(y) <= half_widths * (1 + 1e-12)) and evals >= 2
    np.testing.assert_allclose(y, half_widths, rtol=1e-6)
    np.testing.assert_allclose(f, np.sum(np.exp(half_widths)), rtol=1e-9)


def test_eps_zero_gives_zero_and_zero_start_is_the_minimum_trap(quadratic):
    """At the minimizer (theta = 0 of f = theta^T A theta / 2 >= 0) the gradient vanishes: L-BFGS-B
    started at y = 0 finds nothing (the trap), while the sign ascents from the corner and from
    random points reach the best vertex, which is what eps_sharpness reports."""
    a, _, _ = quadratic
    minimizer = {"theta": np.zeros(DIM, np.float32)}
    loss_fn, batches = ch.quadratic_loss(a), ch.dummy_batches()
    none = curvature.eps_sharpness(loss_fn, minimizer, batches, epsilon=0.0)
    assert none.sharpness == 0.0 and none.converged
    result = curvature.eps_sharpness(loss_fn, minimizer, batches, epsilon=1e-2, init="zero")
    (lbfgsb,) = [s for s in result.searches if s["method"] == "lbfgsb"]
    assert lbfgsb["value"] == 0.0 and lbfgsb["start"] == "zero"
    vertices = [ch.quadratic_value(a, None, 1e-2 * np.array(signs))
                for signs in itertools.product([-1.0, 1.0], repeat=DIM)]
    np.testing.assert_allclose(result.max_loss, max(vertices), rtol=1e-5)
    assert result.method == "sign_ascent" and result.edge_fraction == 1.0 and result.converged
    np.testing.assert_allclose(result.sharpness, 100 * result.max_loss, rtol=1e-6)


@pytest.fixture(scope="module")
def trained_mlp():
    batches = ch.mlp_batches()
    return ch.mlp_trained(ch.mlp_init(), batches), batches


def test_eps_sharpness_grows_with_epsilon_on_mlp(trained_mlp):
    params, batches = trained_mlp
    epsilons = sorted(KESKAR_EPSILONS) + [5e-3, 2e-2]
    results = [curvature.eps_sharpness(ch.mlp_loss, params, batches, epsilon=e, bn_mode="eval")
               for e in epsilons]
    values = [r.sharpness for r in results]
    assert values[0] > 0 and np.all(np.diff(values) > 0)
    assert all(r.box_fraction <= 1 + 1e-9 and r.bn_mode == "eval" for r in results)
    np.testing.assert_allclose(results[0].loss, ch.full_loss_value(ch.mlp_loss, params, batches),
                               rtol=1e-5)
    sub = curvature.eps_sharpness(ch.mlp_loss, params, batches, epsilon=1e-2, subspace_dim=5)
    assert 0 < sub.sharpness and sub.subspace_dim == 5


def _sam_quadratic(a, b, x, rho, num_steps):
    return curvature.sam_sharpness(ch.quadratic_loss(a, b), ch.split_params(x),
                                   ch.dummy_batches(), rho=rho, num_steps=num_steps)


def test_sam_single_step_matches_closed_form(quadratic):
    a, b, x = quadratic
    rho = 0.1
    g = a @ x + b
    expected = rho * np.linalg.norm(g) + 0.5 * rho ** 2 * g @ a @ g / (g @ g)
    result = _sam_quadratic(a, b, x, rho, 1)
    np.testing.assert_allclose(result.sharpness, expected, rtol=1e-4)
    np.testing.assert_allclose(result.grad_norm, np.linalg.norm(g), rtol=1e-5)


def _ball_max(a, g, rho) -> float:
    """max_{|e| <= rho} g^T e + e^T A e / 2 (trust-region subproblem): e = (mu I - A)^-1 g with
    mu > lambda_max and |e| = rho, mu found by bisection."""
    lam_max = np.linalg.eigvalsh(a)[-1]
    lo, hi = lam_max + 1e-12, lam_max + np.linalg.norm(g) / rho + 10.0
    for _ in range(200):
        mu = (lo + hi) / 2
        e = np.linalg.solve(mu * np.eye(len(g)) - a, g)
        lo, hi = (mu, hi) if np.linalg.norm(e) > rho else (lo, mu)
    return float(g @ e + 0.5 * e @ a @ e)


def test_sam_multi_step_approaches_ball_maximum(quadratic):
    a, b, x = quadratic
    rho, g = 1.0, a @ x + b
    one, many = _sam_quadratic(a, b, x, rho, 1), _sam_quadratic(a, b, x, rho, 20)
    best = _ball_max(a, g, rho)
    assert one.sharpness < many.sharpness <= best * (1 + 1e-5)
    np.testing.assert_allclose(many.sharpness, best, rtol=1e-4)


def test_sam_at_stationary_points(quadratic):
    """Exactly zero gradient: no ascent direction, S = 0. A float32-rounded minimizer
    (|g| ~ 1e-7): the direction is noise but S = rho^2 / 2 u^T A u lies in
    [rho^2 lam_min / 2, rho^2 lam_max / 2]."""
    a, b, _ = quadratic
    exact = curvature.sam_sharpness(ch.quadratic_loss(a), {"theta": np.zeros(DIM, np.float32)},
                                    ch.dummy_batches(), rho=0.05)
    assert exact.sharpness == 0.0 and exact.grad_norm == 0.0
    rho, lams = 0.05, np.linalg.eigvalsh(a)
    rounded = _sam_quadratic(a, b, -np.linalg.solve(a, b), rho, 1)
    assert rounded.grad_norm < 1e-5
    assert 0.5 * rho ** 2 * lams[0] * 0.99 < rounded.sharpness < 0.5 * rho ** 2 * lams[-1] * 1.01
