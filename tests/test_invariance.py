"""The most important test: the batch layout changes nothing but speed.

Same config (B=64, ghost BN groups of 8, dropout 0.5, momentum + weight decay): (a) 8 devices x 8
examples, (b) 1 device x 8 accumulation microbatches of 8, and (c) an independent single-device
reference without shard_map that applies the model to all 64 examples at once. After 3 steps the
parameters, BN running statistics and the evaluation agree at float32 tolerance.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bsgap import logbook
from bsgap.data import TrainStream, load_dataset
from bsgap.models import create_model
from bsgap.optim import make_optimizer
from bsgap.step import cross_entropy, dropout_base_key, init_key
from bsgap.trainer import Trainer
from helpers import init_variables, tiny_config

STEPS = 3


def _config(data_dir, **layout):
    return tiny_config(
        data_dir, model="keskar_c1", model_kwargs={"width": 8, "fc_width": 32},
        normalization="ghost", ghost_batch_size=8, dropout_rate=0.5, batch_size=64,
        num_steps=STEPS, eval_every_steps=STEPS, checkpoint_every_steps=None, schedule="constant",
        optimizer="momentum", learning_rate=0.1, weight_decay=1e-3, **layout)


def _run(config, workdir):
    trainer = Trainer(config, str(workdir))
    trainer.run()
    state = jax.device_get(trainer.trial_state(0))
    evals = logbook.read_jsonl(str(workdir / logbook.EVAL_FILE))
    return trainer, state, evals[-1]


def _reference(config, data):
    """Plain jax.grad of the mean loss over the whole global batch, one optax update per step."""
    model = create_model("keskar_c1", num_classes=10, normalization="ghost", ghost_batch_size=8,
                         dropout_rate=0.5, width=8, fc_width=32)
    variables = init_variables(model, init_key(config.seed),
                               jnp.asarray(data.train.arrays["image"][:8]))
    params, stats = variables["params"], variables["batch_stats"]
    tx = make_optimizer(name="momentum", peak_lr=0.1, schedule_factor=lambda s, *_: 1.0,
                        momentum=0.9, weight_decay=1e-3)
    opt_state = tx.init(params)
    stream = TrainStream(data.train, 64, config.seed)

    @jax.jit  # optax's update as one program (op by op: dozens of compiles per step)
    def apply(grads, opt_state, params):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    @jax.jit  # one compiled gradient of the whole batch (op by op it took ~25 s)
    def gradient(params, stats, image, label, key):
        def loss_fn(p):
            logits, new = model.apply({"params": p, "batch_stats": stats}, image,
                                      train=True, example_ids=jnp.arange(64), rngs={"dropout": key},
                                      mutable=["batch_stats"])
            return cross_entropy(logits, label, 10).mean(), new["batch_stats"]

        return jax.grad(loss_fn, has_aux=True)(params)

    for step in range(STEPS):
        batch = stream.batch(step)
        key = jax.random.fold_in(dropout_base_key(config.seed), step)
        grads, stats = gradient(params, stats, batch["image"], batch["label"], key)
        params, opt_state = apply(grads, opt_state, params)
    return params, stats


def _assert_trees_close(a, b, **tol):
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(leaves_a) == len(leaves_b) > 0
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tol)


def test_layout_invariance(data_dir, tmp_path):
    sharded_t, sharded, eval_a = _run(_config(data_dir, num_devices=8), tmp_path / "a")
    accum_t, accum, eval_b = _run(_config(data_dir, num_devices=1, microbatch_size=8),
                                  tmp_path / "b")
    la, lb = sharded_t.resolved.layout, accum_t.resolved.layout
    assert (la.num_devices, la.accumulation_steps, la.microbatch) == (8, 1, 8)
    assert (lb.num_devices, lb.accumulation_steps, lb.microbatch) == (1, 8, 8)
    assert int(sharded.step) == int(accum.step) == STEPS

    tol = dict(rtol=2e-5, atol=2e-6)
    _assert_trees_close(sharded.params, accum.params, **tol)
    _assert_trees_close(sharded.batch_stats, accum.batch_stats, **tol)
    assert eval_a["num_examples"] == eval_b["num_examples"] == 360
    np.testing.assert_allclose(eval_a["loss"], eval_b["loss"], rtol=1e-5)
    assert abs(eval_a["accuracy"] - eval_b["accuracy"]) <= 1 / 360 + 1e-9

    data = load_dataset("sklearn_digits", data_dir=data_dir)
    ref_params, ref_stats = _reference(_config(data_dir), data)
    _assert_trees_close(sharded.params, ref_params, **tol)
    _assert_trees_close(sharded.batch_stats, ref_stats, **tol)
    # The parameters moved: a test of a no-op would pass the comparisons above.
    init = init_variables(create_model("keskar_c1", num_classes=10, normalization="ghost",
                                       ghost_batch_size=8, width=8, fc_width=32),
                          init_key(0), jnp.asarray(data.train.arrays["image"][:8]))["params"]
    moved = max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(
        jax.tree_util.tree_leaves(init), jax.tree_util.tree_leaves(sharded.params)))
    assert moved > 1e-3


def test_gradient_is_mean_not_sum_over_devices(data_dir, tmp_path):
    """Guards the check_vma trap (DESIGN.md): one SGD step on 8 devices equals the reference."""
    config = _config(data_dir, num_devices=8)
    config.optimizer, config.weight_decay, config.num_steps = "sgd", 0.0, 1
    config.dropout_rate, config.eval_every_steps = 0.0, 1
    trainer = Trainer(config, str(tmp_path / "sgd"))
    trainer.run()
    data = load_dataset("sklearn_digits", data_dir=data_dir)
    model = trainer.model
    variables = init_variables(model, init_key(0), jnp.asarray(data.train.arrays["image"][:8]))
    batch = TrainStream(data.train, 64, 0).batch(0)

    def loss_fn(p):
        logits, _ = model.apply({"params": p, "batch_stats": variables["batch_stats"]},
                                batch["image"], train=True, mutable=["batch_stats"])
        return cross_entropy(logits, batch["label"], 10).mean()

    grads = jax.jit(jax.grad(loss_fn))(variables["params"])   # one program, not op by op
    expected = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, variables["params"], grads)
    _assert_trees_close(jax.device_get(trainer.trial_state(0).params), expected, rtol=2e-5, atol=2e-6)
