"""bsgap against the simplest peer a JAX user would otherwise write (issue 11), side by side.

The peer is the flax-examples step: ``jax.jit`` of ``value_and_grad`` of the cross-entropy of the
*same flax module* (BN statistics ``mutable``), the same optax update (L2 on kernels, momentum or
Adam, cosine schedule), nothing else. Per layout:
  * ``1x1``: one device, one microbatch -- the plain step;
  * ``1x8``: one device, 8 accumulation microbatches -- one jit with a Python loop of 8 gradient
    calls on 16-example slices, averaged;
  * ``8x1``: 8 devices -- ``jax.pmap`` of the plain step with ``lax.pmean`` of the gradients.
BN statistics are taken over each gradient call's examples in both (the BN group = the microbatch).
Measured, alternating ours and the peer's in one process, ``--repeats`` times:
  * the compiled step alone on one device-resident batch (examples/s);
  * end to end: ``Trainer.run()``'s steady-state examples/s (summary.json: log intervals after the
    first; no evaluation or checkpoints inside) vs a minimal loop over the same in-memory arrays
    (a permutation per epoch, numpy gather, device transfer, the loss fetched every 10 steps);
  * ``--trials``: K trials (different lrs) in one program vs K peer steps per step.
Prints a JSON report (medians; ratios ours/peer per repeat, their median -- each repeat's pair ran
back to back, so the paired ratio is the least disturbed number) and writes it to ``--out``.

    python benchmarks/peer_step.py --models=cnn1d,keskar_c1,resnet20 --layouts=1x1,1x8 --trials=4,16
    XLA_FLAGS=--xla_force_host_platform_device_count=8 NPROC=16 python benchmarks/peer_step.py --layouts=8x1
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

BATCH = 128
LOG_EVERY = 10  # steps per log interval; both loops exclude the first from their steady state
LAYOUTS = {"1x1": (1, None), "1x8": (1, 16), "8x1": (8, None)}  # (devices, microbatch)
MODELS = {  # name -> (config file, overrides)
    "cnn1d": ("configs/default.py", {}),
    "keskar_c1": ("configs/keskar_c1_cifar10.py", {"dataset": "digits32", "eval_batch_size": 360}),
    "resnet20": ("configs/cifar10_resnet20.py", {"dataset": "digits32", "eval_batch_size": 360,
                                                 "augment": "none", "pixel_mean": (),
                                                 "pixel_std": ()}),
}


def bench_config(model: str, layout: str, steps: int):
    from helpers import load_config

    path, overrides = MODELS[model]
    devices, micro = LAYOUTS[layout]
    c = load_config(path, **overrides)
    c.batch_size, c.reference_batch_size = BATCH, BATCH
    c.num_devices, c.microbatch_size = devices, micro
    c.normalization, c.ghost_batch_size = "batch", None   # BN over each microbatch, as the peer
    c.num_epochs, c.num_examples, c.num_steps = None, None, steps
    c.schedule, c.warmup_epochs, c.lr_scaling = "cosine", 0.0, "none"
    c.eval_every_steps, c.checkpoint_every_steps = steps, None
    c.log_every_steps, c.target_accuracy, c.patience_evals = LOG_EVERY, None, None
    c.progress_bar, c.tensorboard = False, False
    return c


# ------------------------------------------------------------------------------------- the peer
def peer_optimizer(c, total_steps: int):
    import optax

    from bsgap.optim import kernel_mask

    lr = optax.cosine_decay_schedule(c.learning_rate, total_steps)
    if c.optimizer in ("adam", "adamw"):
        core = optax.adam(lr, b1=c.momentum)
    else:
        core = optax.sgd(lr, momentum=c.momentum if c.optimizer != "sgd" else None)
    return optax.chain(optax.add_decayed_weights(c.weight_decay, kernel_mask), core)


def make_peer(model, tx, devices: int, micro: int | None):
    """``step(params, stats, opt, x, y, key) -> (params, stats, opt, loss)``, how to place the
    state and how to place a batch."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    def grads_of(params, stats, x, y, key):
        def loss_fn(p):
            logits, new = model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                      rngs={"dropout": key}, mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new
        (loss, new), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
        return loss, g, new.get("batch_stats", {})

    def step(params, stats, opt, x, y, key):
        if micro is None:
            loss, g, new_stats = grads_of(params, stats, x, y, key)
        else:  # a Python loop of gradient calls on slices, averaged
            n = x.shape[0] // micro
            parts = [grads_of(params, stats, x[i * micro:(i + 1) * micro],
                              y[i * micro:(i + 1) * micro], key) for i in range(n)]
            mean = lambda *t: sum(t) / n  # noqa: E731
            loss = mean(*[p[0] for p in parts])
            g = jax.tree_util.tree_map(mean, *[p[1] for p in parts])
            new_stats = jax.tree_util.tree_map(mean, *[p[2] for p in parts])
        if devices > 1:
            loss, g, new_stats = jax.lax.pmean((loss, g, new_stats), "devices")
        updates, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, updates), new_stats, opt, loss

    if devices == 1:
        return jax.jit(step, donate_argnums=(0, 1, 2)), (lambda t: t), (lambda a: jnp.asarray(a))
    pstep = jax.pmap(step, axis_name="devices", in_axes=(0, 0, 0, 0, 0, None),
                     donate_argnums=(0, 1, 2))
    replicate = lambda t: jax.tree_util.tree_map(  # noqa: E731 (pmap shards the leading axis)
        lambda x: np.stack([np.asarray(x)] * devices), t)
    shard = lambda a: jnp.asarray(a).reshape((devices, -1) + a.shape[1:])  # noqa: E731
    return pstep, replicate, shard


class Peer:
    def __init__(self, trainer, devices: int, micro: int | None, steps: int):
        import jax
        import numpy as np

        c = trainer.config
        self.model, self.tx = trainer.model, peer_optimizer(c, steps)
        variables = self.model.init(jax.random.PRNGKey(c.seed),
                                    trainer.data.sample_images(16), train=False)
        self.step, self.replicate, self.shard = make_peer(self.model, self.tx, devices, micro)
        self.key = jax.random.PRNGKey(1)
        self.variables = jax.tree_util.tree_map(np.asarray, variables)  # host copies: never donated
        self.reset()

    def reset(self):
        import jax
        import jax.numpy as jnp

        params, stats = self.variables["params"], self.variables.get("batch_stats", {})
        fresh = jax.tree_util.tree_map(jnp.array, (params, stats, self.tx.init(params)))
        self.state = self.replicate(fresh)

    def __call__(self, x, y):
        params, stats, opt, loss = self.step(*self.state, x, y, self.key)
        self.state = (params, stats, opt)
        return loss


# ------------------------------------------------------------------------------------- timing
def timed(fn, seconds: float = 2.0, min_steps: int = 5) -> float:
    """Seconds per call of ``fn`` (which returns something to block on), after a warm-up."""
    import jax

    jax.block_until_ready(fn())
    start, n = time.perf_counter(), 0
    while True:
        out = fn()
        n += 1
        if n >= min_steps and time.perf_counter() - start > seconds:
            break
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / n


def peer_loop_examples_per_second(peer, arrays, steps: int, seed: int = 0) -> float:
    """The minimal end-to-end loop; steady state = after the first ``LOG_EVERY`` steps."""
    import jax
    import numpy as np

    rng = np.random.default_rng(seed)
    n = arrays["label"].shape[0]
    per_epoch = n // BATCH
    order, start, losses = None, None, []
    for step in range(steps):
        if step % per_epoch == 0:
            order = rng.permutation(n)
        idx = order[(step % per_epoch) * BATCH:(step % per_epoch + 1) * BATCH]
        losses.append(peer(peer.shard(arrays["image"][idx]), peer.shard(arrays["label"][idx])))
        if (step + 1) % LOG_EVERY == 0:
            jax.device_get(losses)
            losses = []
            if step + 1 == LOG_EVERY:
                start = time.perf_counter()
    jax.device_get(losses)
    return (steps - LOG_EVERY) * BATCH / (time.perf_counter() - start)


def measure(model: str, layout: str, repeats: int, e2e_steps: int, step_seconds: float,
            trials: list[int]) -> dict:
    import jax

    from bsgap import parallel
    from bsgap.trainer import Trainer

    devices, micro = LAYOUTS[layout]
    rows = {"step": [], "end_to_end": []}
    with tempfile.TemporaryDirectory() as root:
        config = bench_config(model, layout, max(e2e_steps, LOG_EVERY + 1))
        trainer = Trainer(config, os.path.join(root, "probe"))
        trainer.compile()
        peer = Peer(trainer, devices, micro, config.num_steps)
        arrays = trainer.data.train.arrays   # the peer: normalized on the host, float32
        host = {k: v[:BATCH] for k, v in arrays.items()}
        # Ours as the trainer sends them (uint8 images of digits32, normalized in the step).
        batch = parallel.global_batch(trainer.mesh, {k: v[:BATCH] for k, v in
                                                     trainer.data.train.wire_arrays.items()})
        px, py = peer.shard(host["image"]), peer.shard(host["label"])
        holder = {"state": trainer.state}

        def ours():
            holder["state"], m = trainer.step_fn(holder["state"], batch)
            return m["train_loss"]

        for r in range(repeats):
            t_ours = timed(ours, step_seconds)
            t_peer = timed(lambda: peer(px, py), step_seconds)
            rows["step"].append({"ours": BATCH / t_ours, "peer": BATCH / t_peer})
            if e2e_steps <= LOG_EVERY:  # --slow_e2e_steps=0: the compiled step only
                continue
            summary = Trainer(config, os.path.join(root, f"e2e{r}")).run()
            peer.reset()
            rows["end_to_end"].append({"ours": summary["examples_per_second"],
                                       "peer": peer_loop_examples_per_second(peer, arrays,
                                                                             e2e_steps)})
        report = {"model": model, "layout": layout, "accumulation_loop": trainer.accumulation_loop,
                  "conv_gradients": trainer.conv_gradients,
                  "compile_seconds": trainer.compile_seconds}
        for k in trials:
            specs = [(bench_config(model, layout, config.num_steps),
                      os.path.join(root, f"k{k}", str(i))) for i in range(k)]
            for i, (c, _) in enumerate(specs):
                c.learning_rate = config.learning_rate * (1 + 0.1 * i)
            for loop in ("map", "vmap"):
                multi = Trainer.for_trials(specs, trials_loop=loop)
                multi.compile()
                holder["state"] = multi.state

                def ours_k(multi=multi):
                    holder["state"], m = multi.step_fn(holder["state"], batch)
                    return m["train_loss"]

                peers = [Peer(trainer, devices, micro, config.num_steps) for _ in range(k)]
                runs = []
                for r in range(repeats):
                    t_ours = timed(ours_k, step_seconds)
                    t_peer = timed(lambda: [p(px, py) for p in peers], step_seconds)
                    runs.append({"ours": k * BATCH / t_ours, "peer": k * BATCH / t_peer})
                rows[f"trials{k}_{loop}"] = runs
        del jax
    for name, runs in rows.items():
        if not runs:
            continue
        ours_med = statistics.median(x["ours"] for x in runs)
        peer_med = statistics.median(x["peer"] for x in runs)
        report[name] = {"ours_examples_per_second": round(ours_med),
                        "peer_examples_per_second": round(peer_med),
                        "ratio_of_medians": round(ours_med / peer_med, 3),
                        "median_paired_ratio": round(statistics.median(
                            x["ours"] / x["peer"] for x in runs), 3),
                        "ratios": [round(x["ours"] / x["peer"], 3) for x in runs]}
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="cnn1d,keskar_c1,resnet20")
    parser.add_argument("--layouts", default="1x1,1x8")
    parser.add_argument("--trials", default="", help="K values, e.g. 4,16 (with the first model)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--e2e_steps", type=int, default=300)
    parser.add_argument("--slow_e2e_steps", type=int, default=30,
                        help="end-to-end steps for keskar_c1 and resnet20 (~1-10 s a step on 2 "
                        "cores); 0: their compiled step only")
    parser.add_argument("--step_seconds", type=float, default=2.0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    import jax

    models, layouts = args.models.split(","), args.layouts.split(",")
    bad = [m for m in models if m not in MODELS] + [x for x in layouts if x not in LAYOUTS]
    if bad:
        parser.error(f"unknown {bad}; models {sorted(MODELS)}, layouts {sorted(LAYOUTS)}")
    trials = [int(k) for k in args.trials.split(",") if k]
    results = []
    for model in models:
        for layout in layouts:
            if LAYOUTS[layout][0] > jax.device_count():
                print(f"skip {layout}: {jax.device_count()} device(s)", file=sys.stderr)
                continue
            e2e = args.e2e_steps if model == "cnn1d" else args.slow_e2e_steps
            results.append(measure(model, layout, args.repeats, e2e, args.step_seconds,
                                   trials if model == models[0] and layout == "1x1" else []))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    report = {"date": time.strftime("%Y-%m-%d"), "load_average_at_start": load_at_start,
              "cpu_count": os.cpu_count(), "devices": jax.device_count(),
              "platform": jax.devices()[0].platform, "python": platform.python_version(),
              "jax": jax.__version__, "xla_flags": os.environ.get("XLA_FLAGS", ""),
              "batch_size": BATCH, "results": results,
              "load_average_at_end": os.getloadavg()}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
