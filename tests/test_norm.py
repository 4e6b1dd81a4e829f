"""Ghost batch norm equals plain flax BatchNorm run separately on each ghost chunk."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bsgap.models.norm import GhostBatchNorm, PerExampleDropout


@pytest.mark.parametrize("shape", [(32, 6), (16, 5, 5, 3)])
def test_ghost_bn_matches_plain_bn_per_chunk(shape):
    x = jax.random.normal(jax.random.PRNGKey(0), shape) * 3.0 + 1.5
    ghost = GhostBatchNorm(ghost_batch_size=8, momentum=0.9, epsilon=1e-5)
    variables = ghost.init(jax.random.PRNGKey(1), x, train=False)
    # Non-trivial affine parameters and running stats.
    params = {"scale": jnp.linspace(0.5, 2.0, shape[-1]), "bias": jnp.linspace(-1, 1, shape[-1])}
    stats = {"mean": jnp.full(shape[-1], 0.3), "var": jnp.full(shape[-1], 2.0)}
    y, new = ghost.apply({"params": params, "batch_stats": stats}, x, train=True,
                         mutable=["batch_stats"])

    plain = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
    outs, means, vars_ = [], [], []
    for chunk in np.split(np.asarray(x), shape[0] // 8):
        out, upd = plain.apply({"params": params, "batch_stats": stats}, chunk,
                               mutable=["batch_stats"])
        outs.append(out)
        means.append(upd["batch_stats"]["mean"])
        vars_.append(upd["batch_stats"]["var"])
    np.testing.assert_allclose(y, np.concatenate(outs), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new["batch_stats"]["mean"], np.mean(means, 0), rtol=1e-6)
    np.testing.assert_allclose(new["batch_stats"]["var"], np.mean(vars_, 0), rtol=1e-6)
    assert variables["batch_stats"]["mean"].shape == (shape[-1],)


def test_ghost_bn_eval_uses_running_averages():
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
    stats = {"mean": jnp.array([1.0, 2.0, 3.0]), "var": jnp.array([4.0, 1.0, 0.25])}
    params = {"scale": jnp.ones(3), "bias": jnp.zeros(3)}
    y = GhostBatchNorm(ghost_batch_size=2).apply({"params": params, "batch_stats": stats}, x,
                                                 train=False)
    expected = (np.asarray(x) - stats["mean"]) / np.sqrt(stats["var"] + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-5)


def test_ghost_bn_rejects_indivisible_batch():
    with pytest.raises(ValueError, match="not divisible by ghost_batch_size=8"):
        GhostBatchNorm(ghost_batch_size=8).init(jax.random.PRNGKey(0), jnp.ones((12, 3)),
                                                train=True)


def test_per_example_dropout_depends_only_on_global_id():
    x = jnp.ones((8, 100))
    layer = PerExampleDropout(0.5)
    key = {"dropout": jax.random.PRNGKey(3)}
    full = layer.apply({}, x, True, jnp.arange(8), rngs=key)
    # The same examples presented as two halves with their global ids: identical masks.
    first = layer.apply({}, x[:4], True, jnp.arange(4), rngs=key)
    second = layer.apply({}, x[4:], True, jnp.arange(4, 8), rngs=key)
    np.testing.assert_array_equal(full, np.concatenate([first, second]))
    kept = float(jnp.mean(full > 0))
    assert 0.4 < kept < 0.6 and float(full.max()) == pytest.approx(2.0)
    assert not np.array_equal(full[0], full[1])
