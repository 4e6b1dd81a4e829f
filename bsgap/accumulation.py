"""How the train step loops over its accumulation microbatches (``--accumulation_loop``).

Strategies, all computing the same sums in the same order (a test checks parameters after 3 steps):
  * ``none``   -- one microbatch: the gradient is taken once, with no loop around it;
  * ``unroll`` -- a Python loop: ``accumulation_steps`` copies of the gradient in the program, each on a
                  static slice (compile time grows with the count; XLA may schedule copies together);
  * ``scan``   -- ``lax.scan``: one copy in a while loop (constant compile time and memory per
                  microbatch, what accumulation is for on an accelerator).

``auto`` takes ``none`` for one microbatch; on the CPU ``unroll`` up to ``MAX_UNROLL`` microbatches
and ``scan`` beyond (compile time); ``scan`` whenever the microbatch was chosen to fit memory
(``microbatch_size='auto'``: unrolled copies can be live together, so the footprint no longer shrinks
with the microbatch -- measured: the digits MLP at B=64 took 2.13 MB as 1 x 64 and 2.47 MB as
2 x 32 unrolled); elsewhere ``scan`` (bounded memory; not yet measured against ``unroll`` on an
accelerator). Measured on 2 CPU cores, cnn1d, B=128 as
8 x 16 (BENCHMARKS.md): the unrolled step ran 1.6x the scanned one (55k vs 35k examples/s),
because XLA:CPU runs a while loop's iterations one after the other while the unrolled copies of
small microbatches run side by side; without the canonical convolution gradients of
bsgap/models/conv_grad.py the scan was ~9x slower still.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from bsgap.choices import ACCUMULATION_LOOPS

MAX_UNROLL = 32


def resolve_accumulation_loop(loop: str, platform: str, accumulation_steps: int,
                              memory_bound: bool = False) -> str:
    """The strategy a step with ``accumulation_steps`` microbatches uses on ``platform``;
    ``memory_bound``: the microbatch is being chosen to fit the device's memory."""
    if loop not in ACCUMULATION_LOOPS:
        raise ValueError(f"accumulation_loop={loop!r} is not one of {ACCUMULATION_LOOPS}")
    if loop == "none" and accumulation_steps != 1:
        raise ValueError(f"accumulation_loop='none' needs one microbatch per device, but the layout "
                         f"has {accumulation_steps} accumulation steps; use auto, unroll or scan")
    if loop == "auto":
        if accumulation_steps == 1:
            return "none"
        fast_unrolled = platform == "cpu" and accumulation_steps <= MAX_UNROLL
        return "unroll" if fast_unrolled and not memory_bound else "scan"
    return loop


def accumulate(body, init, microbatches, accumulation_steps: int, strategy: str):
    """Fold ``body(carry, (microbatch, index)) -> (carry, None)`` over the leading axis of
    ``microbatches`` (``accumulation_steps`` long) from ``init``; returns the final carry."""
    if strategy == "scan":
        indices = jnp.arange(accumulation_steps, dtype=jnp.int32)
        carry, _ = lax.scan(body, init, (microbatches, indices))
        return carry
    if strategy not in ("none", "unroll"):
        raise ValueError(f"unknown accumulation strategy {strategy!r}")
    carry = init
    for i in range(accumulation_steps):
        microbatch = jax.tree_util.tree_map(lambda x, i=i: x[i], microbatches)
        carry, _ = body(carry, (microbatch, jnp.asarray(i, jnp.int32)))
    return carry
