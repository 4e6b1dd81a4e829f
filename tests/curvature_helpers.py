"""Small problems with closed-form or dense-matrix answers for the curvature tests.

- quadratic problems 0.5 theta^T A theta + b^T theta with a chosen spectrum (Hessian = A);
- a data-dependent least-squares quadratic (Hessian = X^T X / n over all examples);
- a tiny softmax-cross-entropy MLP (43 parameters) whose dense Hessian jax.hessian can build.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


def symmetric_with_spectrum(eigenvalues, seed: int = 0) -> np.ndarray:
    """Q diag(eigenvalues) Q^T for a random orthogonal Q (float64, exactly symmetric)."""
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(eigenvalues),) * 2))
    a = (q * eigenvalues) @ q.T
    return (a + a.T) / 2


def dummy_batches(sizes=(4, 3)) -> list[dict]:
    """Batches the data-independent quadratic ignores (sizes only matter for the weights)."""
    return [{"x": np.zeros((n, 2), np.float32)} for n in sizes]


def quadratic_loss(a: np.ndarray, b: np.ndarray | None = None):
    """loss(params, batch) = 0.5 theta^T A theta + b^T theta, theta = params['theta'] (pytree)."""
    a_j = jnp.asarray(a, jnp.float32)
    b_j = jnp.zeros(a.shape[0], jnp.float32) if b is None else jnp.asarray(b, jnp.float32)

    def loss_fn(params, batch):
        theta = ravel_pytree(params)[0]
        return 0.5 * theta @ a_j @ theta + b_j @ theta + 0.0 * jnp.sum(batch["x"])
    return loss_fn


def quadratic_value(a, b, theta) -> float:
    theta = np.asarray(theta, np.float64)
    return float(0.5 * theta @ a @ theta + (0.0 if b is None else b @ theta))


def split_params(theta: np.ndarray) -> dict:
    """A two-leaf pytree for a flat vector (first 3 entries 'head', the rest 'tail')."""
    theta = jnp.asarray(theta, jnp.float32)
    return {"head": theta[:3], "tail": theta[3:]}


def least_squares_problem(dim: int = 6, sizes=(5, 5, 2), seed: int = 0):
    """loss = mean_i 0.5 (x_i^T theta - y_i)^2 over unequal batches; H = X^T X / n (all data)."""
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    x = rng.standard_normal((n, dim)) * np.linspace(0.5, 2.0, dim)
    y = rng.standard_normal(n)
    bounds = np.cumsum((0,) + tuple(sizes))
    batches = [{"x": x[s:e].astype(np.float32), "y": y[s:e].astype(np.float32)}
               for s, e in zip(bounds[:-1], bounds[1:])]

    def loss_fn(params, batch):
        residual = batch["x"] @ params["theta"] - batch["y"]
        return 0.5 * jnp.mean(residual ** 2)
    params = {"theta": jnp.asarray(rng.standard_normal(dim), jnp.float32)}
    return loss_fn, params, batches, x.T @ x / n


def mlp_init(seed: int = 0, sizes=(4, 5, 3), dtype=jnp.float32) -> dict:
    """A one-hidden-layer tanh MLP's parameters (w0, b0, w1, b1), N(0, 1/fan_in) weights."""
    rng = np.random.default_rng(seed)
    params = {}
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        params[f"w{i}"] = jnp.asarray(rng.standard_normal((m, n)) / np.sqrt(m), dtype)
        params[f"b{i}"] = jnp.asarray(0.1 * rng.standard_normal(n), dtype)
    return params


def mlp_logits(params, x):
    h = jnp.tanh(x @ params["w0"] + params["b0"])
    return h @ params["w1"] + params["b1"]


def mlp_loss(params, batch):
    """Mean softmax cross-entropy of the tanh MLP."""
    logp = jax.nn.log_softmax(mlp_logits(params, batch["x"]))
    return -jnp.mean(jnp.take_along_axis(logp, batch["y"][:, None], axis=1))


def mlp_accuracy(params, batch):
    return jnp.mean(jnp.argmax(mlp_logits(params, batch["x"]), axis=1) == batch["y"])


def mlp_batches(sizes=(16, 16, 8), seed: int = 1) -> list[dict]:
    """Class-dependent Gaussian inputs (a learnable task), unequal batch sizes."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((3, 4))
    out = []
    for n in sizes:
        y = rng.integers(0, 3, n)
        x = centers[y] + 0.7 * rng.standard_normal((n, 4))
        out.append({"x": x.astype(np.float32), "y": y.astype(np.int32)})
    return out


def dense_hessian(loss_fn, params, batches) -> np.ndarray:
    """Dense Hessian (float64 numpy) of the size-weighted full loss, by jax.hessian."""
    flat, unravel = ravel_pytree(params)
    sizes = np.array([len(b["x"]) for b in batches], np.float64)
    weights = sizes / sizes.sum()

    def full_loss(f):
        return sum(w * loss_fn(unravel(f), b) for w, b in zip(weights, batches))
    h = np.asarray(jax.jit(jax.hessian(full_loss))(flat), np.float64)
    return (h + h.T) / 2


def full_loss_value(loss_fn, params, batches) -> float:
    sizes = np.array([len(b["x"]) for b in batches], np.float64)
    return float(sum(s * float(loss_fn(params, b)) for s, b in zip(sizes, batches)) / sizes.sum())


def mlp_trained(params, batches, steps: int = 200, learning_rate: float = 0.5) -> dict:
    """Full-batch gradient descent on all batches: a point near a minimum (mostly PSD Hessian)."""
    data = {k: jnp.concatenate([jnp.asarray(b[k]) for b in batches]) for k in batches[0]}

    def body(_, p):
        grads = jax.grad(mlp_loss)(p, data)
        return jax.tree_util.tree_map(lambda w, g: w - learning_rate * g, p, grads)
    return jax.jit(lambda p: jax.lax.fori_loop(0, steps, body, p))(params)


def trapezoid(y, x) -> float:
    """np.trapezoid (numpy >= 2) or np.trapz (numpy 1.26)."""
    return float((getattr(np, "trapezoid", None) or np.trapz)(y, x))
