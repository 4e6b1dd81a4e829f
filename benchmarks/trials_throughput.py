"""Trials per hour: K trials in one program (vmapped, and looped with lax.map) vs the same K trials
run one after another.

Each trial is the default config (cnn1d on MNIST-1D) for ``--steps`` steps with its own learning
rate and seed; evaluation once at the end, one checkpoint at the end. Wall time includes loading,
compilation, evaluation and checkpointing, as a sweep would see it; the steady-state step time is
reported separately. JSON on stdout (after TFDS's own messages, if it builds the dataset first).

    python benchmarks/trials_throughput.py [--config=configs/default.py] [--steps=200] [--ks=1,4,16]
        [--loops=vmap,map]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def load_config(path, steps, data_dir):
    spec = importlib.util.spec_from_file_location("cfg", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config()
    c.num_epochs, c.num_steps = None, steps
    c.eval_every_steps, c.checkpoint_every_steps, c.log_every_steps = steps, None, 50
    c.progress_bar, c.tensorboard, c.target_accuracy = False, False, None
    if data_dir:
        c.data_dir = data_dir
    return c


def trial_overrides(k):
    return [{"learning_rate": 0.02 * (1.5 ** i), "seed": i} for i in range(k)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/default.py")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--ks", default="1,4,16")
    parser.add_argument("--loops", default="vmap,map",
                        help="how the program steps its trials (bsgap.trials.over_trials)")
    parser.add_argument("--data_dir", default=None)
    args = parser.parse_args()
    import jax

    from bsgap.trainer import Trainer
    from bsgap.trials import expand_trials

    loops, rows = args.loops.split(","), []
    # Warm-up: the first run in a process also pays for imports, TF init and the dataset load.
    with tempfile.TemporaryDirectory() as root:
        Trainer(load_config(args.config, 2, args.data_dir), os.path.join(root, "w")).run()
    for k in [int(x) for x in args.ks.split(",")]:
        base = load_config(args.config, args.steps, args.data_dir)
        with tempfile.TemporaryDirectory() as root:
            base.trials = tuple(trial_overrides(k))
            row = {"trials": k}
            for loop in loops:
                start = time.perf_counter()
                summaries = Trainer.for_trials(expand_trials(base, os.path.join(root, loop)),
                                               trials_loop=loop).run_all()
                seconds = time.perf_counter() - start
                row[f"{loop}_seconds"] = seconds
                row[f"{loop}_trials_per_hour"] = 3600 * k / seconds
                row[f"{loop}_steady_examples_per_second_per_trial"] = \
                    summaries[0]["examples_per_second"]
            start = time.perf_counter()
            for config, workdir in expand_trials(base, os.path.join(root, "s")):
                Trainer(config, workdir).run()
            sequential = time.perf_counter() - start
        row.update(sequential_seconds=sequential, sequential_trials_per_hour=3600 * k / sequential)
        for loop in loops:
            row[f"{loop}_speedup"] = sequential / row[f"{loop}_seconds"]
        rows.append(row)
        print(json.dumps(rows[-1]), file=sys.stderr)
    json.dump({"config": args.config, "steps": args.steps, "devices": jax.device_count(),
               "platform": jax.devices()[0].platform, "cpu_count": os.cpu_count(),
               "jax": jax.__version__, "rows": rows}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
