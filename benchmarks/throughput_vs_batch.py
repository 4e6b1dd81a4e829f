"""Computational speed vs batch size: examples/s of the study's model at every batch size, alone.

The study (results/embedded/) ran two trials at a time on a shared 2-core machine, so its
examples/s are contended. This script measures, in one process and one batch size after another,
the same model and layout as configs/sweeps/study_fig8.py (cnn1d, ghost BN over 16 examples, one
device): the trainer's steady-state examples/s end to end over `--examples` training examples,
then the compiled step alone on one device-resident batch for as many examples. Best of
`--repeats` (the least disturbed run) and the median are both reported.

    python benchmarks/throughput_vs_batch.py [--batch_sizes=16,32,...,2048] [--examples=40000]
        [--repeats=3] [--out=F.json]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(path):
    spec = importlib.util.spec_from_file_location("cfg", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def measure(batch_size: int, examples: int) -> dict:
    import jax

    from bsgap import parallel
    from bsgap.trainer import Trainer

    config = load_config(os.path.join(ROOT, "configs", "default.py"))
    steps = max(20, examples // batch_size)
    config.batch_size, config.ghost_batch_size, config.num_devices = batch_size, 16, 1
    config.num_epochs, config.num_steps = None, steps
    config.eval_every_steps, config.checkpoint_every_steps = steps, None
    config.log_every_steps = max(1, steps // 20)
    config.progress_bar, config.tensorboard, config.target_accuracy = False, False, None
    with tempfile.TemporaryDirectory() as workdir:
        trainer = Trainer(config, workdir)
        summary = trainer.run()
        host_batch = {k: v[:batch_size] for k, v in trainer.data.train.wire_arrays.items()}
        batch = parallel.global_batch(trainer.mesh, host_batch)
        state, metrics = trainer.step_fn(trainer.state, batch)
        jax.block_until_ready(metrics)
        start = time.perf_counter()
        for _ in range(steps):
            state, metrics = trainer.step_fn(state, batch)
        jax.block_until_ready((state, metrics))
        alone = steps * batch_size / (time.perf_counter() - start)
    return {"steps": steps, "end_to_end": summary["examples_per_second"], "alone": alone}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_sizes", default="16,32,64,128,256,512,1024,2048")
    parser.add_argument("--examples", type=int, default=40000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    import jax

    load_before = os.getloadavg()
    samples = {b: [] for b in batch_sizes}
    for _ in range(args.repeats):            # interleaved, so drifting load hits every B alike
        for b in batch_sizes:
            samples[b].append(measure(b, args.examples))
            print(f"B={b}: {samples[b][-1]}", file=sys.stderr)
    rows = []
    for b in batch_sizes:
        e2e = [s["end_to_end"] for s in samples[b]]
        alone = [s["alone"] for s in samples[b]]
        rows.append({"batch_size": b, "steps": samples[b][0]["steps"],
                     "end_to_end_best": max(e2e), "end_to_end_median": statistics.median(e2e),
                     "alone_best": max(alone), "alone_median": statistics.median(alone)})
    report = {"machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                          "jax": jax.__version__, "platform": jax.devices()[0].platform,
                          "load_average_before": load_before,
                          "load_average_after": os.getloadavg()},
              "examples_per_batch_size": args.examples, "repeats": args.repeats, "rows": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    print("| B | steps | end to end, best (median) ex/s | step alone, best (median) ex/s |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch_size']} | {r['steps']} | {r['end_to_end_best']:,.0f} "
              f"({r['end_to_end_median']:,.0f}) | {r['alone_best']:,.0f} "
              f"({r['alone_median']:,.0f}) |")


if __name__ == "__main__":
    main()
