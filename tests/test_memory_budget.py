"""The microbatch search of bsgap/memory.py against closed-form footprints (no compiles): the
budget (headroom, eval program, queued batches), XLA's RESOURCE_EXHAUSTED, a backend without
memory analysis, a device without a limit, and how few candidates the search compiles."""
import math
import types

import jax
import numpy as np
import pytest

from bsgap import memory
from bsgap.layout import LayoutError, resolve_layout


class FakeCompiled:
    """What ``compile_for`` returns: only ``memory_analysis()`` is read by the search."""

    def __init__(self, total_bytes):
        self.total_bytes = total_bytes

    def memory_analysis(self):
        if self.total_bytes is None:
            return None
        return types.SimpleNamespace(argument_size_in_bytes=self.total_bytes - 40,
                                     output_size_in_bytes=30, temp_size_in_bytes=20,
                                     alias_size_in_bytes=10)


def _layout(per_device=64, group=4):
    return resolve_layout(batch_size=per_device, num_devices=1, microbatch_size="auto",
                          ghost_batch_size=group, normalization="ghost")


def _compiler(footprint, calls=None, out_of_memory_above=None):
    def compile_for(layout):
        if calls is not None:
            calls.append(layout.microbatch)
        if out_of_memory_above is not None and layout.microbatch > out_of_memory_above:
            raise jax.errors.JaxRuntimeError(
                "RESOURCE_EXHAUSTED: Ran out of memory in memory space hbm. Used 17.2G of 15.5G")
        return FakeCompiled(footprint(layout.microbatch))
    return compile_for


def _brute_force(candidates, footprint, limit, headroom, eval_bytes, queued):
    """The largest candidate whose worst moment fits (1 - headroom) x limit, by hand."""
    usable = math.floor(limit * (1 - headroom))
    fitting = [m for m in candidates if max(footprint(m), eval_bytes or 0) + queued <= usable]
    return max(fitting) if fitting else None


def test_no_memory_analysis_is_reported_not_formatted():
    """A backend without memory analysis: an explicit microbatch runs with bytes unknown (no
    `{None:,}` TypeError), 'auto' is refused naming what to set."""
    assert memory.format_bytes(None) == "unknown" and memory.format_bytes(1234567) == "1,234,567"
    budget = memory.MemoryBudget(limit_bytes=10_000, eval_step_bytes=None)
    assert "eval step unknown" in budget.describe(100)
    explicit = resolve_layout(batch_size=64, num_devices=1, microbatch_size=16,
                              ghost_batch_size=4, normalization="ghost")
    layout, _, used, tried = memory.choose_microbatch(
        explicit, _compiler(lambda m: None), auto=False, budget=budget)
    assert (layout.microbatch, used, tried) == (16, None, [[16, None]])
    with pytest.raises(LayoutError, match=r"no memory analysis.*explicit --config.microbatch_size"):
        memory.choose_microbatch(_layout(), _compiler(lambda m: None), auto=True, budget=budget)


def test_resource_exhausted_at_compile_means_does_not_fit():
    """XLA:TPU rejects an over-size program at compile time: the search goes on to smaller
    candidates; an explicit microbatch gets a clear error; any other error propagates."""
    budget = memory.MemoryBudget(limit_bytes=10 ** 9, headroom_fraction=0.0)
    compile_for = _compiler(lambda m: 1000 * m, out_of_memory_above=16)
    layout, compiled, used, tried = memory.choose_microbatch(
        _layout(), compile_for, auto=True, budget=budget, log=lambda m: None)
    assert (layout.microbatch, layout.accumulation_steps, used) == (16, 4, 16_000)
    assert [64, memory.OUT_OF_MEMORY] in tried and [16, 16_000] in tried
    explicit = resolve_layout(batch_size=64, num_devices=1, microbatch_size=32,
                              ghost_batch_size=4, normalization="ghost")
    with pytest.raises(LayoutError, match=r"microbatch 32 does not fit.*RESOURCE_EXHAUSTED.*"
                                          r"microbatch_size=auto"):
        memory.choose_microbatch(explicit, compile_for, auto=False, budget=budget)

    def broken(layout):
        raise jax.errors.JaxRuntimeError("INTERNAL: something else")
    with pytest.raises(jax.errors.JaxRuntimeError, match="INTERNAL"):
        memory.choose_microbatch(_layout(), broken, auto=True, budget=budget)


@pytest.mark.parametrize("case", ["headroom", "eval", "queued", "nothing_fits"])
def test_budget_counts_headroom_eval_program_and_queued_batches(case):
    """Footprint f(m) = 5,000 + 1,000 m bytes (m = microbatch; 64 / 32 / 16 / 8 / 4 candidates):
    each case puts the limit where the part it names decides, and the choice equals the closed
    form."""
    footprint = lambda m: 5_000 + 1_000 * m  # noqa: E731
    if case == "headroom":      # 32 fits 100% of the limit but not 90% of it
        limit, headroom, eval_bytes, queued, expected = footprint(32), 0.1, None, 0, 16
    elif case == "eval":        # 32 (37,000 bytes) would fit; the eval program does not
        limit, headroom, eval_bytes, queued, expected = 40_000, 0.0, 41_000, 0, None
    elif case == "queued":      # two queued batches of 4,500 bytes push 32 over
        limit, headroom, eval_bytes, queued, expected = 40_000, 0.0, 20_000, 9_000, 16
    else:
        limit, headroom, eval_bytes, queued, expected = 8_000, 0.1, None, 0, None
    budget = memory.MemoryBudget(limit, headroom, eval_bytes, queued)
    assert budget.usable_bytes == math.floor(limit * (1 - headroom))
    assert expected == _brute_force([64, 32, 16, 8, 4], footprint, limit, headroom, eval_bytes,
                                    queued)
    if expected is None:
        with pytest.raises(LayoutError, match=r"no microbatch fits.*memory_headroom_fraction"):
            memory.choose_microbatch(_layout(), _compiler(footprint), auto=True, budget=budget,
                                     log=lambda m: None)
        return
    layout, _, used, _ = memory.choose_microbatch(_layout(), _compiler(footprint), auto=True,
                                                  budget=budget, log=lambda m: None)
    assert layout.microbatch == expected and used == footprint(expected)
    # The same microbatch chosen explicitly is checked against the whole limit (no headroom).
    explicit = resolve_layout(batch_size=64, num_devices=1, microbatch_size=64,
                              ghost_batch_size=4, normalization="ghost")
    with pytest.raises(LayoutError, match=r"microbatch 64 needs .* per device but the limit"):
        memory.choose_microbatch(explicit, _compiler(footprint), auto=False, budget=budget)


def test_queued_input_bytes_closed_form():
    spec = {"image": ((8, 8, 1), np.dtype(np.float32)), "label": ((), np.dtype(np.int32))}
    assert memory.input_batch_bytes(spec, 64) == 64 * (8 * 8 * 4 + 4)


def test_auto_without_a_device_limit_is_refused(monkeypatch):
    """The CPU (or any device) reporting no bytes_limit: 'auto' is refused naming the field, not
    silently given the whole per-device batch; the limit is the smallest over the devices."""
    fake = lambda stats: [types.SimpleNamespace(memory_stats=lambda s=s: s) for s in stats]  # noqa
    monkeypatch.setattr(memory.jax, "local_devices",
                        lambda: fake([{"bytes_limit": 5 << 30}, {"bytes_limit": 3 << 30}, {}]))
    assert memory.device_memory_limit() == 3 << 30
    monkeypatch.setattr(memory.jax, "local_devices", lambda: fake([None, {}]))
    assert memory.device_memory_limit() is None
    with pytest.raises(LayoutError, match=r"memory_limit_bytes=<bytes per device>"):
        memory.require_memory_limit(True, memory.device_memory_limit(), "cpu")
    memory.require_memory_limit(False, None, "cpu")      # an explicit microbatch needs none


def test_search_compiles_few_candidates_and_finds_the_largest_that_fits():
    """Per-device batch 720 (30 candidate divisors): for every place the limit can fall, the
    search picks what brute force picks, in at most 2 ceil(log2 30) + 1 compiles (linear: up to
    30), and never compiles a candidate twice."""
    layout = _layout(per_device=720, group=1)
    candidates = [d for d in range(720, 0, -1) if 720 % d == 0]
    assert len(candidates) == 30
    footprint = lambda m: 2_000 + 300 * m  # noqa: E731
    total_search = total_linear = 0
    for limit in [footprint(m) for m in candidates] + [footprint(1) - 1]:
        budget = memory.MemoryBudget(limit, headroom_fraction=0.0)
        expected = _brute_force(candidates, footprint, limit, 0.0, None, 0)
        calls = []
        if expected is None:
            with pytest.raises(LayoutError):
                memory.choose_microbatch(layout, _compiler(footprint, calls), auto=True,
                                         budget=budget, log=lambda m: None)
        else:
            chosen, _, _, tried = memory.choose_microbatch(
                layout, _compiler(footprint, calls), auto=True, budget=budget, log=lambda m: None)
            assert chosen.microbatch == expected and [m for m, _ in tried] == calls
        assert len(calls) == len(set(calls)) <= 2 * math.ceil(math.log2(30)) + 1, (limit, calls)
        total_search += len(calls)
        total_linear += candidates.index(expected) + 1 if expected else len(candidates)
    assert total_search < total_linear / 2, (total_search, total_linear)
    # The whole batch fitting costs one compile.
    calls = []
    memory.choose_microbatch(layout, _compiler(footprint, calls), auto=True,
                             budget=memory.MemoryBudget(10 ** 9), log=lambda m: None)
    assert calls == [720]


def test_two_processes_agree_on_the_layout(tmp_path):
    """2 processes over localhost (jax.distributed, gloo), device limits 150e9 + 7 and 80e9 + 3
    bytes (beyond int32: sent in halves): both search against the minimum, 80,000,000,003, and
    pick microbatch 32 (64e9 bytes; 64 would need 128e9), where process 0 alone would have taken
    64; microbatches that differ between the processes are refused on both, naming each."""
    import json
    import os
    import sys

    from helpers import ROOT
    from local_cluster import cluster_env, free_port, run_processes

    limits = (150_000_000_007, 80_000_000_003)
    address = f"127.0.0.1:{free_port()}"
    outputs = run_processes([[sys.executable, os.path.join(ROOT, "tests",
                                                           "memory_agreement_process.py"),
                              address, str(i), str(limits[i])] for i in range(2)],
                            cluster_env(1, PYTHONPATH=ROOT), cwd=str(tmp_path), timeout=120)
    results = []
    for out in outputs:
        results.append(json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1]))
    for r in results:
        assert r["agreed_limit"] == min(limits) and r["chosen"] == 32
        assert r["error"] is not None and "process 0: 16, process 1: 32" in r["error"]
    assert [r["alone"] for r in results] == [64, 32]
