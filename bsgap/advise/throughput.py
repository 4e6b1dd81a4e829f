"""Computational speed per batch size on this machine: the real compiled train step, timed.

For a batch size B the config's own step is built and compiled by the trainer (its layout: devices,
accumulation microbatches -- ``microbatch_size='auto'`` picks the largest that fits memory -- and
the BN group, which the config fixes), then timed over steady-state steps two ways:
  * ``examples_per_second``: with the input pipeline (each step's batch read from the training
    stream and put on the devices, as the trainer does);
  * ``examples_per_second_step_alone``: the compiled step on one device-resident batch.
Each is timed in ``chunks`` equal parts after ``warmup_steps`` untimed ones, the two ways
interleaved chunk by chunk; the best chunk (the least disturbed by other work on the machine) is
the reported rate and the median is kept beside it. ``input_limited`` is True where the pipeline costs more than 10% of the step alone's rate.
"""
from __future__ import annotations

import statistics
import tempfile
import time

INPUT_LIMITED_FRACTION = 0.9


def measurement_config(config, **overrides):
    """A copy of ``config`` for one measurement: no checkpoints, TensorBoard, progress bar or
    target, ``overrides`` applied (a budget given there replaces the config's)."""
    c = config.copy_and_resolve_references()
    with c.unlocked():
        c.checkpoint_every_steps, c.tensorboard, c.progress_bar = None, False, False
        c.trials = None
        if any(k in overrides for k in ("num_steps", "num_epochs", "num_examples")):
            c.num_steps = c.num_epochs = c.num_examples = None
        for key, value in overrides.items():
            c[key] = value
    return c


def _rates(run_step, state, num_steps: int, chunks: int, examples_per_step: int, ways: dict):
    """Best and median examples/s of each way of feeding the step ({name: batch_at(step)}) over
    ``chunks`` chunks of ``num_steps // chunks`` steps, the ways interleaved chunk by chunk (so
    that a change in the machine's load hits them alike)."""
    import jax

    per_chunk = max(1, num_steps // chunks)
    rates = {name: [] for name in ways}
    step = 0
    for _ in range(chunks):
        for name, batch_at in ways.items():
            start = time.perf_counter()
            for _ in range(per_chunk):
                state, metrics = run_step(state, batch_at(step))
                step += 1
            jax.block_until_ready((state, metrics))
            rates[name].append(per_chunk * examples_per_step / (time.perf_counter() - start))
    return state, {name: (max(r), statistics.median(r)) for name, r in rates.items()}


def measure_throughput(config, batch_size: int, *, min_examples: int = 20_000,
                       min_steps: int = 10, warmup_steps: int = 2, chunks: int = 5) -> dict:
    """Examples/s of ``config``'s train step at ``batch_size`` (see the module docstring)."""
    import jax

    from bsgap.trainer import Trainer, data_seed

    steps = max(min_steps, chunks, -(-min_examples // batch_size))
    steps -= steps % chunks
    c = measurement_config(config, batch_size=batch_size, num_steps=warmup_steps + 2 * steps,
                           target_accuracy=None)
    with tempfile.TemporaryDirectory(prefix="bsgap-throughput-") as tmp:
        trainer = Trainer(c, f"{tmp}/run")
        try:
            trainer.compile()
            # The batches as the trainer's loop feeds its step (uint8 images where the step
            # normalizes them, indices only where the train split stays on the devices).
            piped = trainer.device_batch_fn([trainer.data.train_stream(
                batch_size, data_seed(c), jax.process_index(), jax.process_count(), wire=True)])

            resident = piped(0)
            state = trainer.state
            for s in range(warmup_steps):
                state, metrics = trainer.step_fn(state, piped(s))
            jax.block_until_ready(metrics)
            state, rates = _rates(trainer.step_fn, state, steps, chunks, batch_size,
                                  {"alone": lambda s: resident,
                                   "piped": lambda s: piped(warmup_steps + s)})
            (alone, alone_median), (e2e, e2e_median) = rates["alone"], rates["piped"]
            layout = trainer.resolved.layout
            return {"batch_size": batch_size, "examples_per_second": e2e,
                    "examples_per_second_median": e2e_median,
                    "examples_per_second_step_alone": alone,
                    "examples_per_second_step_alone_median": alone_median,
                    "input_limited": bool(e2e < INPUT_LIMITED_FRACTION * alone),
                    "timed_steps": steps, "chunks": chunks, "warmup_steps": warmup_steps,
                    "layout": layout.to_json(), "accumulation_steps": layout.accumulation_steps,
                    "accumulation_loop": trainer.accumulation_loop,
                    "step_bytes_per_device": trainer.step_bytes,
                    "memory": trainer.memory_record, "compile_seconds": trainer.compile_seconds,
                    "platform": jax.devices()[0].platform,
                    "device_kind": jax.devices()[0].device_kind}
        finally:
            trainer.release()
