"""orbax CheckpointManager wrapper: the train state plus a JSON of host-side trainer state.

Checkpoints live in ``WORKDIR/checkpoints/<step>/``; orbax writes each into a temporary directory
and renames it when complete, so a process killed mid-save leaves the previous checkpoint usable.
Every process calls save/restore (orbax coordinates multi-host writes).
"""
from __future__ import annotations

import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from bsgap.bucket_paths import storage_url


def _first_line(err: Exception) -> str:
    """``Type: first line of the message`` (orbax / tensorstore errors run to many lines)."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:300]}" if text else type(err).__name__


_ARRAY_HANDLER_SET = False


def _save_one_replica_in_one_process() -> None:
    """In a single-process run, save each replicated array from one replica. orbax's default on
    CPU and TPU hosts splits it over its replicas: every leaf sliced on every device, an op-by-op
    program per shape and device, which only pays off when the replicas are on different hosts,
    each writing a part. ResNet-50's state (428 leaves, 195 MiB) on a 2-core host: the first save
    22.3 s -> 2.4 s on 8 CPU devices and 7.5 s -> 2.3 s on 2, later saves 4.7 -> 2.1 s and 3.1 ->
    2.0 s (benchmarks/checkpoint_save.py, BENCHMARKS.md). Reading is unchanged: checkpoints saved
    with orbax's default (earlier bsgap versions) restore as before. Multi-process runs keep
    orbax's default."""
    global _ARRAY_HANDLER_SET
    if _ARRAY_HANDLER_SET or jax.process_count() > 1:
        return
    ocp.type_handlers.register_type_handler(
        jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False), override=True)
    _ARRAY_HANDLER_SET = True


class CheckpointError(RuntimeError):
    """A checkpoint could not be written (disk full, permissions); names the directory."""


class Checkpointer:
    def __init__(self, workdir: str, *, max_to_keep: int = 2):
        # gs:// when the run directory is on a mount in BSGAP_GCS_MOUNTS (bsgap/bucket_paths.py)
        self.directory = storage_url(os.path.join(os.path.abspath(workdir), "checkpoints"))
        self.max_to_keep = max_to_keep
        self._open()

    def _open(self) -> None:
        _save_one_replica_in_one_process()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=self.max_to_keep, create=True),
        )

    def restore_newest(self, abstract_state, log, set_aside: bool = True,
                       steps: list[int] | None = None) -> tuple | None:
        """``(step, state, meta)`` of the newest checkpoint that restores, or None when there is
        none. A checkpoint that fails to restore (cut or damaged files) is never deleted: it is
        renamed ``<step>.damaged`` (orbax ignores it there, and the rerun can save that step
        again), ``log`` says which, and the previous one is tried. ``set_aside=False`` (processes
        other than 0 of a multi-host run) only skips it. ``steps``: the checkpoints to try (default:
        those this process sees; a multi-host run passes process 0's list to every process)."""
        for step in sorted(self.all_steps() if steps is None else steps, reverse=True):
            try:
                state, meta = self.restore(step, abstract_state)
                return step, state, meta
            except Exception as err:   # orbax / tensorstore / JSON errors of a damaged save
                if not set_aside:
                    continue
                aside = os.path.join(self.directory, f"{step}.damaged")
                suffix = 0
                while epath.Path(aside).exists():
                    suffix += 1
                    aside = os.path.join(self.directory, f"{step}.damaged{suffix}")
                self.manager.close()
                epath.Path(self.directory, str(step)).rename(aside)   # local or gs://
                self._open()
                log(f"the checkpoint at step {step} does not restore ({_first_line(err)}); "
                    f"kept as {aside}; trying the one before it")
        return None

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def _failed(self, what: str, err: Exception) -> "CheckpointError":
        try:
            free = f"{shutil.disk_usage(self.directory).free / 2**20:,.1f} MiB free there now"
        except OSError:
            free = "free space unknown"
        return CheckpointError(
            f"{what} in {self.directory} failed ({_first_line(err)}; {free}). The "
            "earlier checkpoints are left as they were: free space (or fix the directory) and "
            "rerun the same command to resume from the newest one")

    def save(self, step: int, state, meta: dict) -> None:
        try:
            self.manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
        except Exception as err:
            try:   # let an earlier asynchronous save finish: it is the one to resume from
                self.manager.wait_until_finished()
            except Exception:
                pass
            raise self._failed(f"saving the checkpoint at step {step}", err) from None

    def restore(self, step: int, abstract_state):
        """Restore ``(state, meta)``; ``abstract_state`` gives shapes, dtypes and shardings."""
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
        return restored["state"], restored["meta"]

    def wait(self) -> None:
        try:
            self.manager.wait_until_finished()
        except Exception as err:   # an asynchronous save failed
            raise self._failed("writing a checkpoint", err) from None

    def close(self) -> None:
        self.wait()
        self.manager.close()


def abstract_like(state):
    """ShapeDtypeStructs (with shardings) of a concrete state, for restore."""
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


def restore_numpy(workdir: str, step: int) -> dict:
    """The train state saved at ``step`` as a nested dict of numpy arrays, whatever topology
    wrote it (a plain restore refuses shardings of another process count: 'Topology mismatch')."""
    path = os.path.join(storage_url(os.path.join(os.path.abspath(workdir), "checkpoints")),
                        str(step), "state")
    reader = ocp.PyTreeCheckpointer()
    tree = reader.metadata(path).item_metadata.tree
    args = jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    return reader.restore(path, args=ocp.args.PyTreeRestore(restore_args=args))
