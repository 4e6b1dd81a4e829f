"""Benchmark of the training core on the default config (issue 2's BENCHMARKS.md numbers).

Measures, in one process: compile time of the train step; the trainer's steady-state examples/s
end to end (input pipeline, host->device transfer, logging; excluding compile, eval, checkpoints);
and the compiled step alone fed one device-resident batch. Their ratio is the end-to-end
efficiency (1.0 = the loop adds nothing to the step).

    python benchmarks/core_step.py [--config=configs/default.py] [--steps=600] [--repeats=3]
        [--device_prefetch=N]   (batches made ahead in a background thread; 0: in the loop)
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def load_config(path):
    spec = importlib.util.spec_from_file_location("cfg", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/default.py")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--device_prefetch", type=int, default=None,
                        help="Trainer.device_prefetch (default: the trainer's own)")
    args = parser.parse_args()

    import jax

    from bsgap import parallel
    from bsgap.trainer import Trainer

    if args.device_prefetch is not None:
        Trainer.device_prefetch = args.device_prefetch
    config = load_config(args.config)
    config.num_epochs, config.num_steps = None, args.steps
    config.eval_every_steps, config.checkpoint_every_steps = args.steps, None
    config.progress_bar, config.tensorboard, config.target_accuracy = False, False, None
    if args.data_dir:
        config.data_dir = args.data_dir
    results = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as workdir:
            trainer = Trainer(config, workdir)
            summary = trainer.run()
            # The compiled step alone, on one batch that already lives on the devices.
            host_batch = {k: v[: config.batch_size] for k, v in trainer.data.train.arrays.items()}
            batch = parallel.global_batch(trainer.mesh, host_batch)
            state = trainer.state
            state, m = trainer.step_fn(state, batch)
            jax.block_until_ready(m)
            start = time.perf_counter()
            for _ in range(args.steps):
                state, m = trainer.step_fn(state, batch)
            jax.block_until_ready((state, m))
            alone = args.steps * config.batch_size / (time.perf_counter() - start)
        results.append({"compile_seconds": summary["compile_seconds"],
                        "end_to_end_examples_per_second": summary["examples_per_second"],
                        "step_alone_examples_per_second": alone,
                        "ratio": summary["examples_per_second"] / alone})
    report = {"config": args.config, "batch_size": config.batch_size, "steps": args.steps,
              "device_prefetch": Trainer.device_prefetch,
              "devices": jax.device_count(), "platform": jax.devices()[0].platform,
              "cpu_count": os.cpu_count(), "python": platform.python_version(),
              "jax": jax.__version__, "runs": results}
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
