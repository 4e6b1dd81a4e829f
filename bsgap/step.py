"""Per-device train and eval steps (pure; wrapped by parallel.data_parallel).

Train step on one device's ``per_device_batch`` examples, split into ``accumulation_steps``
microbatches folded by ``bsgap.accumulation`` (no loop for one microbatch, else ``lax.scan`` or an
unrolled loop), with canonical convolution gradients on the CPU (bsgap/models/conv_grad.py):
  * loss = mean cross-entropy (optionally label-smoothed) over the microbatch, float32;
  * gradient = mean over microbatches, then ``pmean`` over devices: the mean over all B examples;
  * BN running statistics: each microbatch updates from the same starting state and the new states
    are averaged over microbatches and devices, so replicas stay identical and the result does not
    depend on the layout (see models/norm.py);
  * dropout masks are drawn per example from (seed, step, global position in the batch);
  * online gradient noise scale (McCandlish et al. 2018, App. A.1): the squared norms of the
    per-(device, microbatch) gradients |g_small|^2 and of the all-reduced gradient |G_big|^2 give
    the unbiased two-batch estimates
        |G|^2 ~ (B_big |G_big|^2 - B_small |g_small|^2) / (B_big - B_small)
        S     ~ (|g_small|^2 - |G_big|^2) / (1/B_small - 1/B_big)
    each kept as a bias-corrected EMA; B_simple = S_ema / |G|^2_ema.
  * a step whose loss is not finite, or a trial that is no longer ``alive`` (diverged, or stopped by
    the host), leaves the parameters, optimizer, BN and noise state unchanged (the step counter
    counts the non-finite step, then stops): in a vmapped multi-trial program the other trials go
    on and the stopped one keeps exactly the state a run of it alone ends with.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax import lax

from bsgap.accumulation import accumulate
from bsgap.layout import BatchLayout
from bsgap.models.conv_grad import canonical_conv_gradients
from bsgap.optim import current_learning_rate, set_hyperparams
from bsgap.parallel import AXIS


@flax.struct.dataclass
class TrainState:
    step: jnp.ndarray            # int32 scalar: optimizer steps taken
    params: Any
    batch_stats: Any
    opt_state: Any
    noise: dict                  # EMAs of the two-batch estimators: g2, s, and the EMA weight
    seed: jnp.ndarray            # int32 scalar: the trial's seed (dropout keys)
    alive: jnp.ndarray           # bool scalar: False once diverged or stopped; updates frozen


def init_key(seed: int):
    """Key for parameter initialization (stream 0 of the seed)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), 0)


def dropout_base_key(seed: int):
    """Key whose fold with the step number gives that step's dropout key (stream 1 of the seed)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), 1)


def init_noise_state() -> dict:
    zero = jnp.zeros((), jnp.float32)
    return {"g2": zero, "s": zero, "weight": zero}


def make_init_fn(model, tx: optax.GradientTransformation):
    """``init(key, sample, hyperparams, seed) -> TrainState`` of one trial, jitted: parameters,
    optimizer state (with the injected hyperparameters, ``bsgap.optim.HYPERPARAMS``) and the rest.
    Run op by op, initialization compiles every primitive separately (4 s for the digits MLP, most
    of a small run's start-up); jitted it is one program, shared by trials (their numbers are
    arguments)."""

    def init(key, sample, hyper, seed):
        variables = model.init(key, sample, train=False)
        params = variables["params"]
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          batch_stats=variables.get("batch_stats", {}),
                          opt_state=set_hyperparams(tx.init(params), **hyper),
                          noise=init_noise_state(), seed=seed, alive=jnp.asarray(True))

    return jax.jit(init)


def cross_entropy(logits, labels, num_classes: int, label_smoothing: float = 0.0):
    """Per-example softmax cross-entropy in float32, with optional label smoothing."""
    targets = jax.nn.one_hot(labels, num_classes)
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def _tree_sq_norm(tree) -> jnp.ndarray:
    return sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree_util.tree_leaves(tree))


def _split_micro(batch, layout: BatchLayout):
    return jax.tree_util.tree_map(
        lambda x: x.reshape((layout.accumulation_steps, layout.microbatch) + x.shape[1:]), batch)


def make_train_step(*, model, tx: optax.GradientTransformation, layout: BatchLayout,
                    num_classes: int, label_smoothing: float = 0.0,
                    noise_ema_decay: float = 0.95, schedule_factor: Callable | None = None,
                    accumulation_loop: str, conv_gradients: str):
    """Per-device ``step(state, batch) -> (state', metrics)`` of one trial; run it inside
    ``shard_map`` (vmapped over a leading trial axis for several trials).

    ``accumulation_loop`` ('none', 'unroll', 'scan'; bsgap/accumulation.py) and ``conv_gradients``
    ('canonical', 'xla'; bsgap/models/conv_grad.py) say how it computes, not what: resolved values,
    chosen once by the trainer (which records them in config.json).
    """
    if conv_gradients not in ("canonical", "xla"):
        raise ValueError(f"conv_gradients={conv_gradients!r}: resolve it first "
                         "(resolve_conv_gradients)")
    num_small = layout.num_devices * layout.accumulation_steps
    b_small, b_big = layout.microbatch, layout.batch_size

    def local_step(state: TrainState, batch):
        device = lax.axis_index(AXIS)
        step_key = jax.random.fold_in(dropout_base_key(state.seed), state.step)
        micro = _split_micro(batch, layout)

        def one_microbatch(carry, inputs):
            grad_sum, stats_sum, loss_sum, correct_sum, small_sq_sum = carry
            mb, index = inputs
            ids = (device * layout.per_device_batch + index * layout.microbatch
                   + jnp.arange(layout.microbatch, dtype=jnp.int32))

            def loss_fn(params):
                logits, new_vars = model.apply(
                    {"params": params, "batch_stats": state.batch_stats}, mb["image"],
                    train=True, example_ids=ids, rngs={"dropout": step_key},
                    mutable=["batch_stats"])
                loss = cross_entropy(logits, mb["label"], num_classes, label_smoothing).mean()
                return loss, (logits, new_vars.get("batch_stats", {}))

            (loss, (logits, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                state.params)
            correct = jnp.sum(jnp.argmax(logits, -1) == mb["label"])
            add = lambda a, b: jax.tree_util.tree_map(jnp.add, a, b)  # noqa: E731
            return (add(grad_sum, grads), add(stats_sum, new_stats), loss_sum + loss,
                    correct_sum + correct, small_sq_sum + _tree_sq_norm(grads)), None

        zeros = lambda t: jax.tree_util.tree_map(jnp.zeros_like, t)  # noqa: E731
        init = (zeros(state.params), zeros(state.batch_stats), jnp.zeros((), jnp.float32),
                jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32))
        with canonical_conv_gradients(conv_gradients == "canonical"):
            grad_sum, stats_sum, loss_sum, correct, small_sq = accumulate(
                one_microbatch, init, micro, layout.accumulation_steps, accumulation_loop)

        scale = 1.0 / layout.accumulation_steps
        grads = lax.pmean(jax.tree_util.tree_map(lambda g: g * scale, grad_sum), AXIS)
        batch_stats = lax.pmean(jax.tree_util.tree_map(lambda s: s * scale, stats_sum), AXIS)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)

        metrics = {
            "train_loss": lax.pmean(loss_sum * scale, AXIS),
            "train_accuracy": lax.psum(correct, AXIS) / layout.batch_size,
            "grad_norm": jnp.sqrt(_tree_sq_norm(grads)),
        }
        noise = state.noise
        if num_small >= 2:
            small = lax.pmean(small_sq * scale, AXIS)   # mean of |g_small|^2 over n small batches
            big = _tree_sq_norm(grads)
            g2 = (b_big * big - b_small * small) / (b_big - b_small)
            s = (small - big) / (1.0 / b_small - 1.0 / b_big)
            d = noise_ema_decay
            noise = {"g2": d * noise["g2"] + (1 - d) * g2, "s": d * noise["s"] + (1 - d) * s,
                     "weight": d * noise["weight"] + (1 - d)}
            metrics["b_simple"] = noise["s"] / noise["g2"]  # the EMA weights cancel in the ratio
            metrics["noise_trace_cov"] = noise["s"] / noise["weight"]
            metrics["noise_grad_norm_sq"] = noise["g2"] / noise["weight"]
        if schedule_factor is not None:
            metrics["learning_rate"] = current_learning_rate(state.opt_state, schedule_factor,
                                                             state.step)
        update = state.alive & jnp.isfinite(metrics["train_loss"])
        keep = lambda new, old: jax.tree_util.tree_map(  # noqa: E731
            lambda n, o: jnp.where(update, n, o), new, old)
        new_state = state.replace(
            step=state.step + state.alive.astype(jnp.int32), params=keep(params, state.params),
            batch_stats=keep(batch_stats, state.batch_stats),
            opt_state=keep(opt_state, state.opt_state), noise=keep(noise, state.noise),
            alive=update)
        return new_state, metrics

    return local_step


def with_model_inputs(local_fn, to_model_input: Callable | None):
    """``fn(state, batch)`` that first makes ``batch['image']`` model inputs on the device with
    ``to_model_input`` (``ImageTransfer.to_model_input``: uint8 -> float32, scaled and
    standardized; bsgap/data/transfer.py), then calls ``local_fn``; ``local_fn`` for None."""
    if to_model_input is None:
        return local_fn

    def fn(state, batch, *rest):
        return local_fn(state, dict(batch, image=to_model_input(batch["image"])), *rest)

    return fn


def make_eval_step(*, model, num_classes: int):
    """Per-device ``eval(state, batch) -> sums``; ``batch['mask']`` marks real examples.

    Returns the *sums* over the global batch of loss, correct predictions and real examples, so
    that padded examples (mask 0) never count and a whole split is covered exactly once.
    """

    def local_eval(state: TrainState, batch):
        logits = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                             batch["image"], train=False)
        mask = batch["mask"].astype(jnp.float32)
        loss = cross_entropy(logits, batch["label"], num_classes)
        correct = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
        sums = {"loss_sum": jnp.sum(loss * mask), "correct": jnp.sum(correct * mask),
                "count": jnp.sum(mask)}
        return lax.psum(sums, AXIS)

    return local_eval
