"""One of the two processes of tests/test_memory_budget.py::test_two_processes_agree_on_the_layout.

Usage: python tests/memory_agreement_process.py COORDINATOR PROCESS_ID LOCAL_LIMIT_BYTES. Each
process gets its own device limit (bsgap.memory.local_memory_limit replaced), searches with the
footprint 2e9 x microbatch bytes, and prints one JSON line: the agreed limit, the microbatch chosen
against it, the one its own limit alone would give, and the error a disagreement raises.
"""
import json
import sys

import jax

coordinator, process_id, local_limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
jax.distributed.initialize(coordinator_address=coordinator, num_processes=2,
                           process_id=process_id)

from bsgap import memory  # noqa: E402
from bsgap.layout import LayoutError, resolve_layout  # noqa: E402

memory.local_memory_limit = lambda: local_limit


class Compiled:
    def __init__(self, total):
        self.total = total

    def memory_analysis(self):
        return type("Analysis", (), dict(argument_size_in_bytes=self.total, output_size_in_bytes=0,
                                         temp_size_in_bytes=0, alias_size_in_bytes=0))()


def compile_for(layout):
    return Compiled(2_000_000_000 * layout.microbatch)


def choose(limit):
    layout = resolve_layout(batch_size=64, num_devices=1, microbatch_size="auto",
                            ghost_batch_size=4, normalization="ghost")
    return memory.choose_microbatch(layout, compile_for, auto=True, log=lambda m: None,
                                    budget=memory.MemoryBudget(limit, 0.0))[0].microbatch


agreed = memory.device_memory_limit()
chosen = choose(agreed)
memory.check_same_microbatch(chosen)
try:
    memory.check_same_microbatch(16 if process_id == 0 else 32)
    error = None
except LayoutError as err:
    error = str(err)
print(json.dumps({"process": process_id, "agreed_limit": agreed, "chosen": chosen,
                  "alone": choose(local_limit), "error": error}), flush=True)
