"""Loss profiles: linear interpolation (Keskar Fig. 3) and filter-normalized random directions."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import curvature_helpers as ch
from bsgap import curvature
from bsgap.curvature.interpolation import filter_normalized_direction


def test_interpolation_endpoints_and_accuracy_on_mlp():
    batches = ch.mlp_batches()
    params_a = ch.mlp_init(seed=0)
    params_b = ch.mlp_trained(params_a, batches, steps=50)
    result = curvature.interpolate(ch.mlp_loss, params_a, params_b, batches,
                                   alphas=[-1.0, 0.0, 0.5, 1.0, 2.0],
                                   accuracy_fn=ch.mlp_accuracy, bn_mode="eval")
    assert result.kind == "interpolation" and result.bn_mode == "eval"
    np.testing.assert_allclose(result.losses[1], ch.full_loss_value(ch.mlp_loss, params_a, batches),
                               rtol=1e-5)
    np.testing.assert_allclose(result.losses[3], ch.full_loss_value(ch.mlp_loss, params_b, batches),
                               rtol=1e-5)
    expected_acc = ch.full_loss_value(ch.mlp_accuracy, params_b, batches)  # size-weighted mean
    np.testing.assert_allclose(result.accuracies[3], expected_acc, rtol=1e-6)
    assert result.losses[3] < result.losses[1]  # b is the trained end


def test_interpolation_on_quadratic_matches_closed_form():
    a = ch.symmetric_with_spectrum([0.5, 1.0, 2.0, 4.0, 8.0], seed=3)
    b = np.arange(5.0) - 2.0
    rng = np.random.default_rng(0)
    theta_a, theta_b = rng.standard_normal(5), rng.standard_normal(5)
    alphas = np.linspace(-1.0, 2.0, 13)
    result = curvature.interpolate(ch.quadratic_loss(a, b), ch.split_params(theta_a),
                                   ch.split_params(theta_b), ch.dummy_batches(), alphas)
    expected = [ch.quadratic_value(a, b, (1 - t) * theta_a + t * theta_b) for t in alphas]
    np.testing.assert_allclose(result.alphas, alphas)
    np.testing.assert_allclose(result.losses, expected, rtol=1e-5, atol=1e-5)
    assert result.accuracies is None


def test_filter_normalized_direction_norms():
    params = ch.mlp_init(seed=2)
    params["conv"] = jnp.asarray(np.random.default_rng(0).standard_normal((3, 3, 2, 4)),
                                 jnp.float32)
    direction = filter_normalized_direction(params, jax.random.key(0))
    for name, leaf in params.items():
        d = np.asarray(direction[name])
        if leaf.ndim == 1:
            assert np.all(d == 0)  # biases: Li et al.'s 'biasbn' choice
            continue
        axes = tuple(range(leaf.ndim - 1))  # each output unit / channel is one filter
        np.testing.assert_allclose(np.sqrt(np.sum(d ** 2, axis=axes)),
                                   np.sqrt(np.sum(np.asarray(leaf) ** 2, axis=axes)), rtol=1e-5)
        assert not np.allclose(d, leaf)
    kept = filter_normalized_direction(params, jax.random.key(0), one_dim="keep")
    np.testing.assert_array_equal(kept["b0"], params["b0"])


def test_random_direction_profile_on_quadratic():
    """theta = {'w': (3, 2) matrix, 'c': vector}: the profile is f(theta + alpha d) exactly."""
    rng = np.random.default_rng(5)
    params = {"w": jnp.asarray(rng.standard_normal((3, 2)), jnp.float32),
              "c": jnp.asarray(rng.standard_normal(2), jnp.float32)}
    dim = 8
    a = ch.symmetric_with_spectrum(np.linspace(1.0, 3.0, dim), seed=1)
    loss_fn = ch.quadratic_loss(a)
    alphas = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    result = curvature.random_direction_profile(loss_fn, params, ch.dummy_batches(), alphas,
                                                seed=4)
    flat = np.asarray(ravel_pytree(params)[0], np.float64)
    d = np.asarray(ravel_pytree(filter_normalized_direction(params, jax.random.key(4)))[0],
                   np.float64)
    assert np.all(d[:2] == 0) and np.all(d[2:] != 0)  # 'c' (ravelled first) is 1-D: zeroed
    expected = [ch.quadratic_value(a, None, flat + t * d) for t in alphas]
    assert result.kind == "filter_normalized"
    np.testing.assert_allclose(result.losses, expected, rtol=1e-5)
    np.testing.assert_allclose(result.losses[2], ch.quadratic_value(a, None, flat), rtol=1e-6)
