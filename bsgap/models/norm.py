"""Normalization layers with an explicit batch-statistics group size: none, batch norm, ghost BN.

Ghost (virtual) batch norm (Hoffer et al. 2017, "Train longer, generalize better", Alg. 1): in
training, the examples are split into consecutive chunks of ``ghost_batch_size`` and each chunk is
normalized with its own mean and (biased) variance -- exactly what plain batch norm computes when it
is run separately on each chunk. The running averages used at evaluation are updated once per call
with the *mean over chunks* of the chunk statistics:

    running_mean <- momentum * running_mean + (1 - momentum) * mean_c(mean_c)
    running_var  <- momentum * running_var  + (1 - momentum) * mean_c(var_c)

which equals averaging the states that plain BN would produce if each chunk were applied to the same
starting state. Because every chunk starts from the same state, averaging the new states over
microbatches and devices (what the train step does) gives a result that does not depend on how
the global batch is laid out. ``kind='batch'`` is ghost BN with one group per call (the whole
microbatch); ``kind='none'`` is the identity.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from bsgap.choices import NORM_KINDS  # noqa: F401 (re-exported)


def check_norm_kind(kind: str) -> None:
    if kind not in NORM_KINDS:
        raise ValueError(f"normalization={kind!r} is not one of {NORM_KINDS}")


class GhostBatchNorm(nn.Module):
    """BatchNorm over the last axis with statistics per group of ``ghost_batch_size`` examples.

    ``ghost_batch_size=None`` uses the whole call batch as one group (plain BN).
    Statistics are computed in float32 whatever the compute dtype.
    """

    ghost_batch_size: int | None = None
    momentum: float = 0.9
    epsilon: float = 1e-5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32))

        if train:
            batch = x.shape[0]
            group = self.ghost_batch_size or batch
            if batch % group:
                raise ValueError(
                    f"batch of {batch} examples is not divisible by ghost_batch_size={group}")
            xf = x.astype(jnp.float32).reshape((batch // group, group) + x.shape[1:])
            reduce_axes = tuple(range(1, xf.ndim - 1))  # all but (chunk, features)
            mean = jnp.mean(xf, axis=reduce_axes, keepdims=True)
            var = jnp.mean(jnp.square(xf - mean), axis=reduce_axes, keepdims=True)
            y = (xf - mean) * (1.0 / jnp.sqrt(var + self.epsilon))
            y = y.reshape(x.shape)
            if not self.is_initializing():
                chunk_mean = mean.reshape(batch // group, features).mean(axis=0)
                chunk_var = var.reshape(batch // group, features).mean(axis=0)
                ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * chunk_mean
                ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * chunk_var
        else:
            y = (x.astype(jnp.float32) - ra_mean.value) / jnp.sqrt(ra_var.value + self.epsilon)
        return (y * scale + bias).astype(self.dtype)


class Norm(nn.Module):
    """Dispatch on ``kind``: 'none' (identity), 'batch' (per-call BN), 'ghost' (ghost BN)."""

    kind: str = "batch"
    ghost_batch_size: int | None = None
    momentum: float = 0.9
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        if self.kind == "none":
            return x
        group = self.ghost_batch_size if self.kind == "ghost" else None
        return GhostBatchNorm(ghost_batch_size=group, momentum=self.momentum, dtype=self.dtype)(
            x, train)


class PerExampleDropout(nn.Module):
    """Dropout whose mask for an example depends only on (dropout key, the example's global id).

    ``example_ids`` (shape [batch], int32) are the examples' positions in the *global* batch, so the
    same example gets the same mask whether it sits on device 3 or in accumulation microbatch 3: the
    layout of the global batch changes nothing but speed (the invariance test relies on this).
    """

    rate: float

    @nn.compact
    def __call__(self, x, train: bool, example_ids):
        if not train or self.rate == 0.0:
            return x
        import jax

        key = self.make_rng("dropout")
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(example_ids)
        keep = jax.vmap(lambda k: jax.random.bernoulli(k, 1.0 - self.rate, x.shape[1:]))(keys)
        return jnp.where(keep, x / (1.0 - self.rate), 0.0).astype(x.dtype)
