"""Small configs for tests: the default config with overrides, on the embedded datasets."""
from __future__ import annotations

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(path: str = "configs/default.py", **overrides):
    spec = importlib.util.spec_from_file_location("cfg", os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    for key, value in overrides.items():
        if isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    return config


def tiny_config(data_dir: str, **overrides):
    """An MLP on the 8x8 digits: compiles in ~1 s, a step in ~1 ms."""
    base = dict(dataset="sklearn_digits", data_dir=data_dir, model="mlp",
                model_kwargs={}, normalization="none", ghost_batch_size=None, batch_size=32,
                num_epochs=None, num_steps=20, log_every_steps=5, eval_every_steps=10,
                checkpoint_every_steps=10, eval_batch_size=200, tensorboard=False,
                progress_bar=False, target_accuracy=None, learning_rate=0.1)
    base.update(overrides)
    config = load_config(**{k: v for k, v in base.items() if k != "model_kwargs"})
    config.model_kwargs = base["model_kwargs"]
    return config


def drive_steps(trainer, num_steps: int, *, all_trials: bool = False):
    """Run a compiled ``Trainer``'s train step directly (no logging, no checkpoints).

    Yields ``(t, params_before, params_after, host_batch, metrics)`` for t = 0..num_steps-1, with
    host copies of the parameters either side of step t, the global batch that step saw (trial
    0's data order) and its metrics: what a test needs to recompute each update independently.
    Trial 0's slices, or with ``all_trials`` the stacked trees with their leading trial axis.
    """
    import jax

    from bsgap import parallel
    from bsgap.trainer import data_seed

    if not hasattr(trainer, "step_fn"):
        trainer.compile()
    seed = data_seed(trainer.config)
    # The step takes the batches as sent (uint8 images where image_transfer is uint8, normalized
    # in the step); a test recomputes from the model inputs, normalized on the host.
    stream = trainer.data.train_stream(trainer.config.batch_size, seed)
    sent = trainer.data.train_stream(trainer.config.batch_size, seed, wire=True)
    if not trainer.shared_data:
        raise ValueError("drive_steps feeds one data order: give the trials one data seed")
    pick = (lambda tree: tree) if all_trials else (
        lambda tree: jax.tree_util.tree_map(lambda x: x[0], tree))
    for t in range(num_steps):
        before = jax.device_get(pick(trainer.state.params))
        batch = stream.batch(t)
        trainer.state, metrics = trainer.step_fn(trainer.state, parallel.global_batch(
            trainer.mesh, sent.batch(t), trainer._batch_spec()))
        after = jax.device_get(pick(trainer.state.params))
        yield t, before, after, batch, jax.device_get(pick(metrics))


_GRAD_FNS: dict = {}
_INIT_FNS: dict = {}


def init_variables(model, key, sample):
    """``model.init(key, sample, train=False)`` as one jitted program (op by op, every
    initializer and layer compiles separately: hundreds of small compiles for a small CNN).
    Jitted once per model; the numbers are those of the eager call."""
    import jax

    if id(model) not in _INIT_FNS:
        _INIT_FNS[id(model)] = (model, jax.jit(lambda k, x: model.init(k, x, train=False)))
    return _INIT_FNS[id(model)][1](key, sample)


def mean_loss_grad(model, params, images, labels, num_classes: int):
    """Gradient of the mean softmax cross-entropy over ``images`` on one device, written out
    (log-softmax by hand) rather than through bsgap.step: the independent side of a comparison.
    Jitted once per model (and retraced per input shape)."""
    import jax
    import jax.numpy as jnp

    if id(model) not in _GRAD_FNS:
        def loss(p, x, y):
            logits = model.apply({"params": p}, x, train=True)
            log_p = logits - jax.scipy.special.logsumexp(logits, axis=-1, keepdims=True)
            return -jnp.mean(jnp.take_along_axis(log_p, y[:, None], -1))

        _GRAD_FNS[id(model)] = (model, jax.jit(jax.grad(loss)))   # keeps the model alive
    grad = _GRAD_FNS[id(model)][1]
    device = jax.devices()[0]
    return jax.device_get(grad(jax.device_put(params, device),
                               jax.device_put(jnp.asarray(images), device),
                               jax.device_put(jnp.asarray(labels), device)))
