"""Pick the microbatch from the compiled programs' memory, so memory never changes the experiment.

The compiled step's footprint is XLA's own memory analysis of the executable (arguments + outputs +
temporaries - aliased/donated bytes). The limit is ``memory_limit_bytes`` from the config, else the
smallest ``memory_stats()['bytes_limit']`` of the devices of every process (GPU/TPU; the CPU reports
none, and then ``microbatch_size='auto'`` is refused: there is nothing to fit). A candidate fits
when what one device holds at the worst moment stays within ``(1 - memory_headroom_fraction)`` of
the limit (``MemoryBudget``):

    max(train step, eval step) + QUEUED_INPUT_BATCHES x one per-device train batch
        + the splits kept on the device (bsgap/device_resident.py)

The train and eval programs run one after the other on the same state, so the larger of the two
footprints (each counting the state once) is live at a time; the eval program is compiled ahead for
this. The batches queued for the next steps (as sent: uint8 images count one byte a value) and the
resident splits come on top. The headroom fraction covers what no
program reports: checkpoint slices copied to the host, the allocator's fragmentation and the
runtime's own buffers. A compile that XLA rejects as too big (``RESOURCE_EXHAUSTED``, as XLA:TPU
does at compile time) is "does not fit", like a footprint over the budget.

The search assumes the footprint shrinks with the microbatch (the 'auto' step accumulates with
``lax.scan``, bsgap/accumulation.py): it compiles the largest candidate, then gallops down the
candidates (1st, 2nd, 4th, 8th, ... next) and bisects between the last miss and the first fit, so
a per-device batch with n candidates costs at most ~2 log2(n) compiles instead of up to n.
Every process searches against the same limit and the chosen microbatch is checked to be the same
on all of them (different microbatches would be different programs, and the collectives would
hang).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import numpy as np

from bsgap.layout import BatchLayout, LayoutError, microbatch_candidates, with_microbatch

QUEUED_INPUT_BATCHES = 2          # train batches on the device ahead of the step that reads them
DEFAULT_HEADROOM_FRACTION = 0.1   # configs/default.py: memory_headroom_fraction
OUT_OF_MEMORY = "RESOURCE_EXHAUSTED"


def compiled_bytes(compiled) -> int | None:
    """Bytes one device holds while ``compiled`` runs; None where the backend gives no analysis."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return None
    return int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes
               + analysis.temp_size_in_bytes - analysis.alias_size_in_bytes)


def format_bytes(n) -> str:
    """``1,234,567`` bytes, or 'unknown' for None (a backend without memory analysis)."""
    return "unknown" if n is None else f"{int(n):,}"


def is_out_of_memory(err: BaseException) -> bool:
    """XLA's out-of-memory at compile (or run) time: a ``jax.errors.JaxRuntimeError`` (formerly
    ``XlaRuntimeError``, both RuntimeErrors) whose message carries the RESOURCE_EXHAUSTED status."""
    return isinstance(err, RuntimeError) and OUT_OF_MEMORY in str(err)


# ------------------------------------------------------------------ the limit, agreed by processes
def local_memory_limit() -> int | None:
    """The smallest ``bytes_limit`` among this process's devices (None where none reports one)."""
    limits = [(d.memory_stats() or {}).get("bytes_limit") for d in jax.local_devices()]
    known = [int(x) for x in limits if x]
    return min(known) if known else None


def _allgather_ints(value: int) -> list[int]:
    """``value`` (>= -1, up to 2^62) from every process, in process order. Sent as two int32
    halves: without jax_enable_x64 an int64 would be cut to int32 (a GPU's limit is ~1e11)."""
    if jax.process_count() == 1:
        return [value]
    from jax.experimental import multihost_utils

    halves = np.asarray([value >> 31, value & (2 ** 31 - 1)] if value >= 0 else [-1, -1],
                        np.int32)
    every = np.asarray(multihost_utils.process_allgather(halves)).reshape(-1, 2)
    return [-1 if hi < 0 else (int(hi) << 31) | int(lo) for hi, lo in every]


def device_memory_limit() -> int | None:
    """The per-device limit every process uses: the minimum over the devices of all processes
    (a collective with several processes: every process must call it)."""
    local = local_memory_limit()
    known = [v for v in _allgather_ints(-1 if local is None else local) if v >= 0]
    return min(known) if known else None


def check_same_microbatch(microbatch: int) -> None:
    """Refuse (on every process alike) a microbatch that differs between processes."""
    chosen = _allgather_ints(int(microbatch))
    if len(set(chosen)) > 1:
        raise LayoutError(
            "the processes chose different microbatches "
            f"({', '.join(f'process {i}: {m}' for i, m in enumerate(chosen))}) although they "
            "searched against the same memory limit (their compiled footprints differ); set "
            f"--config.microbatch_size to one of them explicitly")


# ------------------------------------------------------------------ what a candidate must fit
@dataclasses.dataclass(frozen=True)
class MemoryBudget:
    """What one device may hold: ``(1 - headroom_fraction) x limit_bytes`` for the larger of the
    train and eval programs plus the queued input batches (module docstring)."""
    limit_bytes: int
    headroom_fraction: float = DEFAULT_HEADROOM_FRACTION
    eval_step_bytes: int | None = None
    queued_input_bytes: int = 0
    resident_bytes: int = 0     # splits kept on the device (bsgap/device_resident.py)

    @property
    def usable_bytes(self) -> int:
        return int(self.limit_bytes * (1.0 - self.headroom_fraction))

    def needed_bytes(self, step_bytes: int) -> int:
        return (max(step_bytes, self.eval_step_bytes or 0) + self.queued_input_bytes
                + self.resident_bytes)

    def describe(self, step_bytes: int) -> str:
        return (f"{format_bytes(self.needed_bytes(step_bytes))} bytes = max(train step "
                f"{format_bytes(step_bytes)}, eval step {format_bytes(self.eval_step_bytes)}) + "
                f"{format_bytes(self.queued_input_bytes)} of queued input"
                + (f" + {format_bytes(self.resident_bytes)} of resident data"
                   if self.resident_bytes else ""))

    def to_json(self) -> dict:
        return dict(dataclasses.asdict(self), usable_bytes=self.usable_bytes)


def input_batch_bytes(element_spec: dict, examples: int) -> int:
    """Bytes of ``examples`` examples of ``{key: (shape, dtype)}`` (one device's batch)."""
    per_example = sum(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                      for shape, dtype in element_spec.values())
    return per_example * examples


def require_memory_limit(auto: bool, limit_bytes: int | None, platform: str) -> None:
    """'auto' needs a limit to fit: refuse it, naming what to set, when there is none."""
    if auto and limit_bytes is None:
        raise LayoutError(
            f"microbatch_size='auto' needs a per-device memory limit, but the devices "
            f"({platform}) report none (memory_stats() has no bytes_limit); set "
            "--config.memory_limit_bytes=<bytes per device>, or an explicit "
            "--config.microbatch_size (a divisor of the per-device batch)")


# ------------------------------------------------------------------ the search
def _candidate_order(n: int, fits: Callable[[int], bool]) -> int | None:
    """Index of the first True of a monotone ``fits`` over 0..n-1 (False..False True..True),
    or None: index 0, then 1, 3, 7, ... (galloping) until one fits, then bisection."""
    if n == 0:
        return None
    if fits(0):
        return 0
    miss, step = 0, 1
    while True:
        probe = miss + step
        if probe >= n:
            hit = n              # a sentinel past the end: the bisection tries up to n - 1
            break
        if fits(probe):
            hit = probe
            break
        miss, step = probe, step * 2
    while hit - miss > 1:
        mid = (miss + hit) // 2
        if fits(mid):
            hit = mid
        else:
            miss = mid
    return None if hit == n else hit


def choose_microbatch(layout: BatchLayout, compile_for: Callable[[BatchLayout], object], *,
                      auto: bool, budget: MemoryBudget | None, log=print):
    """Return ``(layout, compiled, footprint_bytes, tried)`` for the microbatch to use; ``tried``
    is ``[[microbatch, bytes or 'RESOURCE_EXHAUSTED'], ...]`` in the order compiled.

    ``auto``: the largest candidate microbatch (a divisor of the per-device batch, multiple of the
    BN group) that fits ``budget`` (required: ``require_memory_limit``). Explicit: compile it and,
    when a budget is known, fail with a suggestion of 'auto' if it does not fit the limit itself
    (the headroom is the search's margin, not imposed on a microbatch the user chose).
    """
    if not auto:
        try:
            compiled = compile_for(layout)
        except RuntimeError as err:
            if not is_out_of_memory(err):
                raise
            raise LayoutError(
                f"microbatch {layout.microbatch} does not fit the device: XLA rejected the "
                f"compiled step ({str(err).splitlines()[0][:200]}); set "
                "--config.microbatch_size=auto (or a smaller divisor of the per-device batch "
                f"{layout.per_device_batch})") from None
        used = compiled_bytes(compiled)
        over = (budget is not None and used is not None
                and budget.needed_bytes(used) > budget.limit_bytes)
        if over:
            raise LayoutError(
                f"microbatch {layout.microbatch} needs {budget.describe(used)} per device but "
                f"the limit is {format_bytes(budget.limit_bytes)}; set "
                f"--config.microbatch_size=auto (or a smaller divisor of the per-device batch "
                f"{layout.per_device_batch})")
        return layout, compiled, used, [[layout.microbatch, used]]
    if budget is None:
        raise LayoutError("microbatch_size='auto' needs a memory budget (require_memory_limit)")
    candidates = microbatch_candidates(layout)
    tried, compiled_by_index = [], {}

    def fits(i: int) -> bool:
        candidate = with_microbatch(layout, candidates[i])
        try:
            compiled = compile_for(candidate)
        except RuntimeError as err:
            if not is_out_of_memory(err):
                raise
            tried.append([candidates[i], OUT_OF_MEMORY])
            return False
        used = compiled_bytes(compiled)
        if used is None:
            raise LayoutError(
                f"microbatch_size='auto': the {jax.devices()[0].platform} backend gives no "
                "memory analysis of the compiled step, so its footprint cannot be measured; set "
                "an explicit --config.microbatch_size")
        tried.append([candidates[i], used])
        ok = budget.needed_bytes(used) <= budget.usable_bytes
        if ok:
            compiled_by_index.clear()      # only the best fit so far is kept
            compiled_by_index[i] = (candidate, compiled, used)
        return ok

    best = _candidate_order(len(candidates), fits)
    if best is None:
        raise LayoutError(
            f"no microbatch fits in {format_bytes(budget.usable_bytes)} bytes per device "
            f"({1 - budget.headroom_fraction:.0%} of the limit {format_bytes(budget.limit_bytes)};"
            f" eval step {format_bytes(budget.eval_step_bytes)}, queued input "
            f"{format_bytes(budget.queued_input_bytes)}, resident data "
            f"{format_bytes(budget.resident_bytes)}; tried microbatch, bytes: {tried}); use "
            "more devices, a smaller ghost_batch_size, a smaller eval_batch_size or model, a "
            "smaller memory_headroom_fraction or device_resident_bytes")
    candidate, compiled, used = compiled_by_index[best]
    log(f"microbatch_size=auto: chose microbatch {candidate.microbatch} x "
        f"{candidate.accumulation_steps} accumulation steps ({budget.describe(used)} of "
        f"{format_bytes(budget.usable_bytes)} usable, {1 - budget.headroom_fraction:.0%} of "
        f"{format_bytes(budget.limit_bytes)}); tried {tried}")
    return candidate, compiled, used, tried


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
            "limit_bytes": trainer.memory_limit,
            "microbatch": trainer.resolved.layout.microbatch,
            "compile_seconds": round(trainer.compile_seconds, 3)}
