"""A small non-quadratic problem for the curvature estimators, in float64: a tanh MLP 8-24-5
(341 parameters) on 300 Gaussian examples labelled by a random teacher network, at its
initialization and at a near-minimum point reached by full-batch Adam.

Every function here must be called inside `with jax.enable_x64(True):` (the arrays and the jitted
functions are float64 only there); the fixtures that use it return numpy arrays.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from curvature_helpers import mlp_init, mlp_logits, mlp_loss

SIZES = (8, 24, 5)
NUM_EXAMPLES = 300


def init_params(seed: int = 0, sizes=SIZES) -> dict:
    return mlp_init(seed, sizes, jnp.float64)


logits, loss = mlp_logits, mlp_loss   # mean softmax cross-entropy over the batch


def data(seed: int = 1, num_examples: int = NUM_EXAMPLES) -> dict:
    """x ~ N(0, I_8); y = argmax of a random 8-16-5 teacher's logits plus Gumbel noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num_examples, SIZES[0]))
    w0, w1 = rng.standard_normal((SIZES[0], 16)), rng.standard_normal((16, SIZES[-1]))
    scores = np.tanh(x @ w0) @ w1 + 0.5 * rng.gumbel(size=(num_examples, SIZES[-1]))
    return {"x": x, "y": np.argmax(scores, axis=1).astype(np.int32)}


def batches_of(full: dict, sizes) -> list[dict]:
    """Consecutive unequal batches covering `full` (sizes sum to its length)."""
    bounds = np.cumsum((0,) + tuple(sizes))
    assert bounds[-1] == len(full["y"])
    return [{k: jnp.asarray(v[s:e]) for k, v in full.items()}
            for s, e in zip(bounds[:-1], bounds[1:])]


def flatten(params) -> jax.Array:
    """The parameters as one vector, in the order of `unflatten`."""
    return jnp.concatenate([jnp.ravel(params[k]) for k in ("w0", "b0", "w1", "b1")])


def unflatten(flat):
    shapes = {"w0": (SIZES[0], SIZES[1]), "b0": (SIZES[1],), "w1": (SIZES[1], SIZES[2]),
              "b1": (SIZES[2],)}
    out, start = {}, 0
    for key, shape in shapes.items():
        size = int(np.prod(shape))
        out[key] = flat[start:start + size].reshape(shape)
        start += size
    return out


def flat_loss(flat, batch):
    return loss(unflatten(flat), batch)


# Compiled once per session (module-level functions of arrays only).
value_and_grad_flat = jax.jit(jax.value_and_grad(flat_loss))
hessian_flat = jax.jit(jax.hessian(flat_loss))
per_example_grads_flat = jax.jit(jax.vmap(
    lambda flat, x, y: jax.grad(flat_loss)(flat, {"x": x[None], "y": y[None]}),
    in_axes=(None, 0, 0)))


@functools.partial(jax.jit, static_argnums=2)
def _adam(params, batch, steps: int, learning_rate: float):
    opt = optax.adam(learning_rate)

    def body(_, carry):
        p, state = carry
        updates, state = opt.update(jax.grad(loss)(p, batch), state, p)
        return optax.apply_updates(p, updates), state
    return jax.lax.fori_loop(0, steps, body, (params, opt.init(params)))[0]


def adam_trained(params, full: dict, steps: int, learning_rate: float = 0.02) -> dict:
    """Full-batch Adam for `steps` steps (one jitted fori_loop)."""
    return _adam(params, {k: jnp.asarray(v) for k, v in full.items()}, steps, learning_rate)
