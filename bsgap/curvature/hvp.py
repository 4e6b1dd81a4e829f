"""The full-dataset (or N-batch) loss, its gradient and Hessian-vector products on flat parameters.

`loss_fn(params, batch)` returns the *mean* loss over the batch's examples, so the loss of all
batches together is the batch-size-weighted average

    L(theta) = sum_b (n_b / n) L_b(theta),    n = sum_b n_b,

and so are its gradient and Hessian-vector products (linear in L). Parameters are handled as one
flat vector (`jax.flatten_util.ravel_pytree`), which is what the iterative eigen-solvers work on.

Hessian-vector products are forward-over-reverse (Pearlmutter 1994; the JAX autodiff cookbook):
H v = jvp(grad(L), (theta,), (v,))[1], which costs about one gradient evaluation and never forms H.

Parallelism: each batch is evaluated by a plain `jax.jit` on the default device and the weighted
average is accumulated by the host loop. Sharding the batch loop over a device mesh (shard_map +
psum, as the trainer does) would be the faster path on many devices; it is not done yet.

Batch norm: `loss_fn` decides (it closes over `variables` and the BN mode); callers record the
mode in the results' `bn_mode` field. With BN in 'train' mode the loss of a batch depends on the
batch composition, so "the full-dataset loss" means the average of per-batch losses at that
batching.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from bsgap.curvature import progress
from bsgap.curvature._checks import batch_size

LossFn = Callable[[Any, Any], jax.Array]


def batch_weights(batches: Sequence[Any]) -> np.ndarray:
    """Weights n_b / n of each batch in the full-dataset average (float64, sums to 1)."""
    sizes = np.array([batch_size(b) for b in batches], dtype=np.float64)
    return sizes / sizes.sum()


def flat_loss_fn(loss_fn: LossFn, unravel: Callable[[jax.Array], Any]) -> LossFn:
    """loss_fn on a flat parameter vector: (flat_params, batch) -> scalar mean loss."""
    return lambda flat, batch: loss_fn(unravel(flat), batch)


def hvp_fn(flat_loss: LossFn) -> Callable[[jax.Array, jax.Array, Any], jax.Array]:
    """Forward-over-reverse HVP of one batch's loss: (flat, v, batch) -> H_b v."""
    def hvp(flat, v, batch):
        return jax.jvp(lambda p: jax.grad(flat_loss)(p, batch), (flat,), (v,))[1]
    return hvp


class DatasetObjective:
    """Loss, gradient and HVPs of the batch-size-weighted average of `loss_fn` over `batches`.

    Holds the flat parameters `flat` (the point at which curvature is measured), `unravel` to go
    back to the pytree, the batches (moved to the device once, so the whole set must fit in
    device memory) and jitted per-batch functions. `num_hvps` counts full-dataset HVPs (one call of
    `hvp` on one vector = one HVP, whatever the number of batches; `hvp_many` on k vectors = k).
    """

    def __init__(self, loss_fn: LossFn, params: Any, batches: Sequence[Any]):
        flat, unravel = ravel_pytree(params)
        self.flat = jnp.asarray(flat)
        self.unravel = unravel
        self.dim = int(self.flat.shape[0])
        self.dtype = self.flat.dtype
        self.batches = [jax.tree_util.tree_map(jnp.asarray, b) for b in batches]
        self.weights = batch_weights(batches)
        self.num_examples = int(sum(batch_size(b) for b in batches))
        self.num_hvps = 0
        self.num_loss_evals = 0
        flat_loss = flat_loss_fn(loss_fn, unravel)
        self.flat_loss = flat_loss
        self._loss = jax.jit(flat_loss)
        self._value_and_grad = jax.jit(jax.value_and_grad(flat_loss))
        self._hvp = jax.jit(hvp_fn(flat_loss))
        self._hvp_many = jax.jit(jax.vmap(hvp_fn(flat_loss), in_axes=(None, 0, None)))

    def average(self, fn: Callable[[Any], Any]) -> Any:
        """sum_b (n_b / n) fn(batch_b) for a pytree-valued fn (the full-dataset mean)."""
        def weighted(x, weight):
            x = jnp.asarray(x)
            if not jnp.issubdtype(x.dtype, jnp.inexact):  # e.g. a bool/int accuracy
                x = x.astype(self.dtype)
            return x * weight.astype(x.dtype)

        total = None
        for weight, batch in zip(self.weights, self.batches):
            value = jax.tree_util.tree_map(lambda x, w=weight: weighted(x, w), fn(batch))
            total = value if total is None else jax.tree_util.tree_map(jnp.add, total, value)
        return total

    def loss(self, flat: jax.Array | None = None) -> float:
        """Full-dataset mean loss at `flat` (default: the measurement point)."""
        flat = self.flat if flat is None else flat
        self.num_loss_evals += 1
        value = float(self.average(lambda b: self._loss(flat, b)))
        progress.report("loss")
        return value

    def value_and_grad(self, flat: jax.Array | None = None) -> tuple[float, jax.Array]:
        """Full-dataset mean loss and its gradient (flat) at `flat`."""
        flat = self.flat if flat is None else flat
        self.num_loss_evals += 1
        value, grad = self.average(lambda b: self._value_and_grad(flat, b))
        value = float(value)
        progress.report("grad")
        return value, grad

    def hvp(self, v: jax.Array, flat: jax.Array | None = None) -> jax.Array:
        """Full-dataset Hessian-vector product H v at `flat` (default: the measurement point)."""
        flat = self.flat if flat is None else flat
        self.num_hvps += 1
        result = self.average(lambda b: self._hvp(flat, v.astype(self.dtype), b))
        progress.report("hvp")
        return result

    def hvp_many(self, vs: jax.Array, flat: jax.Array | None = None) -> jax.Array:
        """H v for each row of `vs` (k, dim), vmapped over the rows in one pass over the batches."""
        flat = self.flat if flat is None else flat
        self.num_hvps += int(vs.shape[0])
        result = self.average(lambda b: self._hvp_many(flat, vs.astype(self.dtype), b))
        progress.report("hvp", int(vs.shape[0]))
        return result
