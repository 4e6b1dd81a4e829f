"""orbax CheckpointManager wrapper: the train state plus a JSON of host-side trainer state.

Checkpoints live in ``WORKDIR/checkpoints/<step>/``; orbax writes each into a temporary directory
and renames it when complete, so a process killed mid-save leaves the previous checkpoint usable.
Every process calls save/restore (orbax coordinates multi-host writes).
"""
from __future__ import annotations

import os

import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:
    def __init__(self, workdir: str, *, max_to_keep: int = 2):
        self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state, meta: dict) -> None:
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

    def restore(self, step: int, abstract_state):
        """Restore ``(state, meta)``; ``abstract_state`` gives shapes, dtypes and shardings."""
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
        return restored["state"], restored["meta"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def abstract_like(state):
    """ShapeDtypeStructs (with shardings) of a concrete state, for restore."""
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


def restore_numpy(workdir: str, step: int) -> dict:
    """The train state saved at ``step`` as a nested dict of numpy arrays, whatever topology
    wrote it (a plain restore refuses shardings of another process count: 'Topology mismatch')."""
    path = os.path.join(os.path.abspath(workdir), "checkpoints", str(step), "state")
    reader = ocp.PyTreeCheckpointer()
    tree = reader.metadata(path).item_metadata.tree
    args = jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    return reader.restore(path, args=ocp.args.PyTreeRestore(restore_args=args))
