"""Benchmark of the training core on the default config (issue 2's BENCHMARKS.md numbers).

Measures, in one process: compile time of the train step; the trainer's steady-state examples/s
end to end (input pipeline, host->device transfer, logging; excluding compile, eval, checkpoints);
and the compiled step alone fed one device-resident batch. Their ratio is the end-to-end
efficiency (1.0 = the loop adds nothing to the step).

    python benchmarks/core_step.py [--config=configs/default.py] [--steps=600] [--repeats=3]
        [--device_prefetch=N]   (batches made ahead in a background thread; 0: in the loop)
        [--set=field=value ...]        (config overrides, e.g. --set=dataset=digits32)
        [--variant='field=value;...' ...]  (config overrides of each variant, run in turn)

With ``--variant`` given (several times), each repeat runs the variants back to back in this
process, and the report adds per repeat each one's ratio to the first's (make the first the
simplest peer, e.g. ``--variant='image_transfer=float32;device_resident_bytes=0'``) of the
end-to-end rate, of the compiled step alone and of ``input_batches_per_second``: the loop's own
input work per step alone (``Trainer.device_batch_fn``: this process's rows read and put on the
devices, or only their indices where the train split stays there, then waited for), in wall
time and in process CPU time per batch (all threads: steadier than wall time on a shared machine).
Then ``side_by_side`` alternates the variants' input work and compiled steps in chunks of 25
(``--side_by_side_chunks``), the least disturbed comparison on a loaded machine.
"""
from __future__ import annotations

import argparse
import ast
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


def override(config, item: str) -> None:
    field, value = item.split("=", 1)
    try:
        config[field] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        config[field] = value


def measure(config, steps: int, keep: list | None = None) -> dict:
    """One run's end-to-end rate, its input work per step alone, and its compiled step alone;
    ``keep`` gets (input work of one step, one compiled step) for ``side_by_side``."""
    import jax

    from bsgap.trainer import Trainer, data_seed

    with tempfile.TemporaryDirectory() as workdir:
        trainer = Trainer(config, workdir)
        summary = trainer.run()
        # The loop's host work alone: this process's rows, then global device arrays.
        device_batch = trainer.device_batch_fn(
            [trainer.data.train_stream(config.batch_size, data_seed(config), wire=True)])
        jax.block_until_ready(device_batch(0))
        start, cpu = time.perf_counter(), time.process_time()
        for step in range(1, steps + 1):
            batch = jax.block_until_ready(device_batch(step))
        input_rate = steps / (time.perf_counter() - start)
        input_cpu = (time.process_time() - cpu) / steps
        # The compiled step alone, on one batch that already lives on the devices.
        state = trainer.state
        state, m = trainer.step_fn(state, batch)
        jax.block_until_ready(m)
        start = time.perf_counter()
        for _ in range(steps):
            state, m = trainer.step_fn(state, batch)
        jax.block_until_ready((state, m))
        alone = steps * config.batch_size / (time.perf_counter() - start)
        if keep is not None:
            held = {"state": state}

            def one_step(batch=batch, step_fn=trainer.step_fn):
                held["state"], metrics = step_fn(held["state"], batch)
                return metrics
            keep.append((device_batch, one_step))
        image = trainer.data.wire_spec["image"]
        return {"compile_seconds": summary["compile_seconds"],
                "end_to_end_examples_per_second": summary["examples_per_second"],
                "input_batches_per_second": input_rate,
                "input_cpu_ms_per_batch": 1e3 * input_cpu,
                "step_alone_examples_per_second": alone,
                "ratio": summary["examples_per_second"] / alone,
                "sent_image": [list(image[0]), str(image[1])],
                "transfer": trainer.data.transfer.to_json(), "resident": trainer.resident}


def side_by_side(kept, chunks: int, per_chunk: int) -> dict:
    """The variants' input work and compiled steps alternated chunk by chunk in this process:
    per variant the median over chunks of wall and CPU milliseconds per batch and per step, and
    the medians of the per-chunk ratios to the first variant (the pairs least disturbed by other
    jobs on a shared machine)."""
    import jax
    import numpy as np

    rows = [{"input_wall_ms": [], "input_cpu_ms": [], "step_wall_ms": []} for _ in kept]
    step = 1
    for _ in range(chunks):
        for row, (device_batch, one_step) in zip(rows, kept):
            start, cpu = time.perf_counter(), time.process_time()
            for k in range(per_chunk):
                jax.block_until_ready(device_batch(step + k))
            row["input_wall_ms"].append(1e3 * (time.perf_counter() - start) / per_chunk)
            row["input_cpu_ms"].append(1e3 * (time.process_time() - cpu) / per_chunk)
            start = time.perf_counter()
            for _ in range(per_chunk):
                metrics = one_step()
            jax.block_until_ready(metrics)
            row["step_wall_ms"].append(1e3 * (time.perf_counter() - start) / per_chunk)
        step += per_chunk
    out = []
    for row in rows:
        summary = {k: float(np.median(v)) for k, v in row.items()}
        summary["vs_first_median_of_chunk_ratios"] = {
            k: float(np.median(np.array(v) / np.array(rows[0][k]))) for k, v in row.items()}
        out.append(summary)
    return {"chunks": chunks, "per_chunk": per_chunk, "variants": out}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/default.py")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--device_prefetch", type=int, default=None,
                        help="Trainer.device_prefetch (default: the trainer's own)")
    parser.add_argument("--set", action="append", default=[],
                        help="field=value config override (value a Python literal)")
    parser.add_argument("--variant", action="append", default=[],
                        help="'field=value;field=value' overrides of one variant, run in turn")
    parser.add_argument("--side_by_side_chunks", type=int, default=20,
                        help="with variants: chunks of the alternated input/step timing")
    args = parser.parse_args()

    import jax

    from bsgap.trainer import Trainer

    if args.device_prefetch is not None:
        Trainer.device_prefetch = args.device_prefetch
    config = load_config(args.config)
    config.num_epochs, config.num_steps = None, args.steps
    config.eval_every_steps, config.checkpoint_every_steps = args.steps, None
    config.progress_bar, config.tensorboard, config.target_accuracy = False, False, None
    if args.data_dir:
        config.data_dir = args.data_dir
    for item in args.set:
        override(config, item)
    variants = args.variant or [""]
    results, kept = [], []
    for repeat in range(args.repeats):
        for variant in variants:
            for item in filter(None, variant.split(";")):
                override(config, item)
            results.append(dict(measure(config, args.steps, kept if repeat == 0 else None),
                                repeat=repeat, variant=variant))
        if len(variants) > 1:
            first = results[-len(variants)]
            for row in results[-len(variants) + 1:]:
                row["vs_first"] = {k: row[k] / first[k] for k in (
                    "end_to_end_examples_per_second", "input_batches_per_second",
                    "input_cpu_ms_per_batch", "step_alone_examples_per_second")}
    report = {"config": args.config, "overrides": args.set, "batch_size": config.batch_size,
              "steps": args.steps, "device_prefetch": Trainer.device_prefetch,
              "load_average": os.getloadavg(),
              "devices": jax.device_count(), "platform": jax.devices()[0].platform,
              "cpu_count": os.cpu_count(), "python": platform.python_version(),
              "jax": jax.__version__, "runs": results}
    if len(variants) > 1:
        report["side_by_side"] = dict(side_by_side(kept, args.side_by_side_chunks, 25),
                                      variants_in_order=variants)
        report["load_average_after"] = os.getloadavg()
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
