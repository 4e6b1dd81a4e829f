"""Saving a replicated state in a single-process run compiles nothing: orbax's default would slice
every leaf on every device (an op-by-op program per shape and device) to split the write over the
replicas; bsgap saves one replica (bsgap/checkpoint.py). The checkpoint restores exactly."""
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bsgap.checkpoint import Checkpointer, abstract_like

LOWERED = "/jax/core/compile/jaxpr_to_mlir_module_duration"   # once per program lowered


def test_replicated_save_compiles_nothing_and_restores(tmp_path):
    mesh = Mesh(np.array(jax.devices()[:8]), ("d",))
    replicated = NamedSharding(mesh, PartitionSpec())
    rng = np.random.default_rng(0)
    shapes = [(3, 3, 8, 16), (16,), (5, 7), (128,), (2, 3, 4)]
    host = {f"leaf{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    state = jax.device_put(host, replicated)
    lowered = []

    def listen(event, duration, **_):
        if event == LOWERED:
            lowered.append(duration)

    checkpointer = Checkpointer(str(tmp_path))
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        checkpointer.save(3, state, {"note": "x"})
        checkpointer.wait()
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    # (orbax's default, replica-parallel, lowers 24 slice programs for this save)
    assert lowered == []
    step, restored, meta = checkpointer.restore_newest(abstract_like(state), print)
    assert step == 3 and meta == {"note": "x"}
    for key, value in host.items():
        np.testing.assert_array_equal(np.asarray(restored[key]), value)
        assert restored[key].sharding == replicated
    checkpointer.close()
