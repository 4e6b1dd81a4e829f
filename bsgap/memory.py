"""Pick the microbatch from the compiled step's memory, so memory never changes the experiment.

The compiled step's footprint is XLA's own memory analysis of the executable
(arguments + outputs + temporaries - aliased/donated bytes). The limit is ``memory_limit_bytes`` from
the config, else the device's reported limit (``memory_stats()['bytes_limit']`` on GPU/TPU); the CPU
reports none, and then the whole per-device batch is used without a search.
"""
from __future__ import annotations

from typing import Callable

import jax

from bsgap.layout import BatchLayout, LayoutError, microbatch_candidates, with_microbatch


def compiled_bytes(compiled) -> int | None:
    analysis = compiled.memory_analysis()
    if analysis is None:
        return None
    return int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes
               + analysis.temp_size_in_bytes - analysis.alias_size_in_bytes)


def device_memory_limit() -> int | None:
    stats = jax.local_devices()[0].memory_stats() or {}
    return stats.get("bytes_limit")


def choose_microbatch(layout: BatchLayout, compile_for: Callable[[BatchLayout], object], *,
                      auto: bool, limit_bytes: int | None, log=print):
    """Return ``(layout, compiled, footprint_bytes)`` for the microbatch to use.

    ``auto``: the largest candidate microbatch (a divisor of the per-device batch, multiple of the
    BN group) whose compiled step fits ``limit_bytes``. Explicit: compile it and, when a limit is
    known, fail with a suggestion of 'auto' if it does not fit.
    """
    if not auto or limit_bytes is None:
        compiled = compile_for(layout)
        used = compiled_bytes(compiled)
        if limit_bytes is not None and used is not None and used > limit_bytes:
            raise LayoutError(
                f"microbatch {layout.microbatch} needs {used:,} bytes per device but the limit "
                f"is {limit_bytes:,}; set --config.microbatch_size=auto (or a smaller divisor of "
                f"the per-device batch {layout.per_device_batch})")
        if auto:
            log(f"microbatch_size=auto: no device memory limit known, using the whole per-device "
                f"batch {layout.per_device_batch}")
        return layout, compiled, used
    tried = []
    for micro in microbatch_candidates(layout):
        candidate = with_microbatch(layout, micro)
        compiled = compile_for(candidate)
        used = compiled_bytes(compiled)
        tried.append((micro, used))
        if used is None or used <= limit_bytes:
            log(f"microbatch_size=auto: chose microbatch {micro} x {candidate.accumulation_steps} "
                f"accumulation steps ({used:,} of {limit_bytes:,} bytes); tried {tried}")
            return candidate, compiled, used
    raise LayoutError(
        f"no microbatch fits in {limit_bytes:,} bytes per device (tried microbatch, bytes: "
        f"{tried}); use more devices, a smaller ghost_batch_size, or a smaller model")


# ------------------------------------------------------------------ trials per program (sweeps)
def max_trials_in_memory(limit_bytes: int, bytes_per_trial: int, fraction: float = 0.85) -> int:
    """How many trials fit one program: floor(limit x fraction / bytes per trial).

    Assumes the K-trial step's footprint is K times the single trial's: parameters, optimizer
    state and activations all get a leading trial axis, while a batch shared by the trials (one
    data seed) is counted K times although it is stored once, so the estimate errs high there.
    Measured with ``compiled_bytes`` on the CPU for K = 2, 4, 8: 0.92-1.0 x K for the digits MLP,
    1.00-1.024 x K for the default cnn1d. Trials looped with ``lax.map`` (the CPU default for
    K > 1) keep one trial's activations, but the loop's state buffers do not alias its inputs:
    1.13 x K at K = 2, 1.0 and 0.93 x K at K = 4, 8 for the MLP, 0.36-0.6 x K for the cnn1d.
    ``fraction`` leaves room for the worst of these and for what the step does not count (the eval
    step's buffers, the runtime's own). May return 0: not even one.
    """
    if limit_bytes <= 0 or bytes_per_trial <= 0:
        raise ValueError(f"need positive bytes (limit {limit_bytes}, per trial {bytes_per_trial})")
    return int(limit_bytes * fraction // bytes_per_trial)


def single_trial_footprint(config) -> dict:
    """Compile the train step of ``config`` run alone (K = 1, ``trials`` ignored) and return
    ``{"bytes_per_trial", "limit_bytes", "microbatch", "compile_seconds"}``: the compiled step's
    bytes per device (``compiled_bytes``; None where XLA gives no analysis) and the limit the
    trainer would use (``memory_limit_bytes``, else the device's; None on a CPU). With
    ``microbatch_size='auto'`` it is the footprint at the microbatch a lone trial picks. Nothing
    is written: the trainer is built on a workdir in a temporary directory (created only for its
    lock, removed after)."""
    import copy
    import os
    import tempfile

    from bsgap.trainer import Trainer  # the trainer imports this module

    alone = copy.deepcopy(config)
    alone.trials = None
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(alone, os.path.join(tmp, "not-written"))
        trainer._build()
        trainer._compile()
        trainer.release()
    return {"bytes_per_trial": trainer.step_bytes,
            "limit_bytes": alone.memory_limit_bytes or device_memory_limit(),
            "microbatch": trainer.resolved.layout.microbatch,
            "compile_seconds": round(trainer.compile_seconds, 3)}
