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
