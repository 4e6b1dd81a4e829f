"""One-dimensional loss profiles in parameter space.

- `interpolate`: the line theta(alpha) = (1 - alpha) theta_a + alpha theta_b between two
  solutions (Goodfellow et al. 2015; Keskar et al. 2017, Fig. 3 with alpha in [-1, 2]).
- `random_direction_profile`: theta + alpha d along one random Gaussian direction d made
  filter-normalized (Li et al. 2018, sec. 4, eq. 1): every filter of d is rescaled to the norm of
  the corresponding filter of theta, d_{ij} <- d_{ij} / ||d_{ij}|| * ||theta_{ij}||, so that
  the profile is comparable across networks with different weight scales.

Filter mapping to flax (Li et al.'s code is PyTorch, filters along the leading output axis): a
flax Dense kernel is (in, out) and a Conv kernel is (h, w, in, out), so a "filter" here is a slice
along the LAST axis (all weights feeding one output unit / channel), the norm is taken over all
other axes. Leaves with ndim <= 1 (biases, batch-norm scale and bias) follow Li et al.'s code:
`one_dim='zero'` (their default 'biasbn') sets d = 0 there, `one_dim='keep'` sets d = theta there.
Batch-norm running statistics are not parameters: `loss_fn` closes over them and they stay fixed.

Both evaluate the full-dataset loss (size-weighted mean of `loss_fn` over `batches`) and, when
`accuracy_fn(params, batch) -> mean accuracy of the batch` is given, the size-weighted accuracy.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from bsgap.curvature import _checks
from bsgap.curvature.hvp import DatasetObjective, LossFn
from bsgap.curvature.results import LineProfile

ONE_DIM_CHOICES = ("zero", "keep")


def _check_alphas(alphas: Any) -> np.ndarray:
    array = np.asarray(alphas, dtype=np.float64)
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
        raise ValueError(f"alphas={alphas!r} must be a non-empty 1-D sequence of finite numbers")
    return array


def _profile(objective: DatasetObjective, accuracy_fn: Callable | None, points: Sequence[Any],
             alphas: np.ndarray, kind: str, bn_mode: str | None) -> LineProfile:
    """Loss (and accuracy) at each flat point; one jit per function, reused along the line."""
    losses = np.array([objective.loss(p) for p in points])
    accuracies = None
    if accuracy_fn is not None:
        unravel = objective.unravel
        acc = jax.jit(lambda flat, batch: accuracy_fn(unravel(flat), batch))
        accuracies = np.array([float(objective.average(lambda b, p=p: acc(p, b)))
                               for p in points])
    return LineProfile(alphas=alphas, losses=losses, accuracies=accuracies, kind=kind,
                       bn_mode=bn_mode)


def interpolate(loss_fn: LossFn, params_a: Any, params_b: Any, batches: Sequence[Any],
                alphas: Sequence[float] | None = None, accuracy_fn: Callable | None = None, *,
                bn_mode: str | None = None) -> LineProfile:
    """Loss (and accuracy) at theta(alpha) = (1 - alpha) theta_a + alpha theta_b.

    alphas defaults to 31 points on [-1, 2] (Keskar et al. 2017, Fig. 3). params_a and params_b
    must have the same pytree structure and shapes. `bn_mode` is only recorded.
    """
    alphas = _check_alphas(np.linspace(-1.0, 2.0, 31) if alphas is None else alphas)
    _checks.check_bn_mode(bn_mode)
    batch_list = _checks.check_batches(batches)
    _checks.check_params(params_a)
    struct_a = jax.tree_util.tree_structure(params_a)
    struct_b = jax.tree_util.tree_structure(params_b)
    shapes_a = [np.shape(x) for x in jax.tree_util.tree_leaves(params_a)]
    shapes_b = [np.shape(x) for x in jax.tree_util.tree_leaves(params_b)]
    if struct_a != struct_b or shapes_a != shapes_b:
        raise ValueError("params_a and params_b differ in pytree structure or leaf shapes")
    objective = DatasetObjective(loss_fn, params_a, batch_list)
    flat_a = objective.flat
    flat_b = ravel_pytree(params_b)[0].astype(flat_a.dtype)
    points = [(1.0 - float(a)) * flat_a + float(a) * flat_b for a in alphas]
    return _profile(objective, accuracy_fn, points, alphas, "interpolation", bn_mode)


def filter_normalized_direction(params: Any, key: jax.Array, one_dim: str = "zero") -> Any:
    """A Gaussian direction with the pytree structure of params, filter-normalized (Li et al.).

    For a leaf with ndim >= 2, each slice along the last (output) axis is rescaled to the L2 norm
    of the same slice of params (the norm over all other axes); ndim <= 1 leaves are zero
    (one_dim='zero') or a copy of params (one_dim='keep'). See the module docstring.
    """
    _checks.check_choice("one_dim", one_dim, ONE_DIM_CHOICES)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, max(len(leaves), 1))
    out = []
    for leaf, leaf_key in zip(leaves, keys):
        leaf = jnp.asarray(leaf)
        if leaf.ndim <= 1:
            out.append(jnp.zeros_like(leaf) if one_dim == "zero" else leaf)
            continue
        d = jax.random.normal(leaf_key, leaf.shape, leaf.dtype)
        axes = tuple(range(leaf.ndim - 1))
        d_norm = jnp.sqrt(jnp.sum(d * d, axis=axes, keepdims=True))
        w_norm = jnp.sqrt(jnp.sum(leaf * leaf, axis=axes, keepdims=True))
        out.append(d * (w_norm / (d_norm + 1e-10)))
    return jax.tree_util.tree_unflatten(treedef, out)


def random_direction_profile(loss_fn: LossFn, params: Any, batches: Sequence[Any],
                             alphas: Sequence[float] | None = None,
                             accuracy_fn: Callable | None = None, seed: int = 0, *,
                             one_dim: str = "zero", bn_mode: str | None = None) -> LineProfile:
    """Loss (and accuracy) at theta + alpha d for a filter-normalized random direction d.

    d = filter_normalized_direction(params, jax.random.key(seed), one_dim); alphas defaults to 41
    points on [-1, 1] (Li et al. 2018 plot on [-1, 1]). `bn_mode` is only recorded.
    """
    alphas = _check_alphas(np.linspace(-1.0, 1.0, 41) if alphas is None else alphas)
    _checks.check_choice("one_dim", one_dim, ONE_DIM_CHOICES)
    _checks.check_bn_mode(bn_mode)
    batch_list = _checks.check_batches(batches)
    _checks.check_params(params)
    objective = DatasetObjective(loss_fn, params, batch_list)
    direction = filter_normalized_direction(params, jax.random.key(seed), one_dim)
    flat_d = ravel_pytree(direction)[0].astype(objective.dtype)
    points = [objective.flat + float(a) * flat_d for a in alphas]
    return _profile(objective, accuracy_fn, points, alphas, "filter_normalized", bn_mode)
