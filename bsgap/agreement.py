"""Decisions every process of a multi-host run must share, made by process 0 alone.

Each host sees the shared filesystem through its own caches (gcsfuse's stat and type caches, NFS
attribute caching), so two hosts asking "is this run finished? which checkpoints exist? is the
dataset prepared?" can get different answers -- and a host that decides differently from the
others runs a different program and hangs the collectives. ``decided_by_process_0(decide)`` runs
``decide()`` on process 0 only and hands its result (plain JSON data) to every process
(``jax.experimental.multihost_utils.broadcast_one_to_all``); an exception raised there is raised
on every process, with the same type and message. It is also a barrier: nobody returns before
process 0 has decided. A single process just calls ``decide()``.
"""
from __future__ import annotations

import importlib
import json

import numpy as np


def _broadcast_bytes(data: bytes) -> bytes:
    """Process 0's ``data`` on every process (the others' argument is ignored)."""
    from jax.experimental import multihost_utils

    size = int(multihost_utils.broadcast_one_to_all(np.array(len(data), np.int32)))
    padded = 1 << max(8, (size - 1).bit_length())   # few distinct shapes: few compilations
    buf = np.zeros(padded, np.uint8)
    buf[:len(data)] = np.frombuffer(data, np.uint8)[:padded]
    return np.asarray(multihost_utils.broadcast_one_to_all(buf))[:size].tobytes()


def _error_from(record: dict) -> Exception:
    try:
        cls = getattr(importlib.import_module(record["module"]), record["type"])
        if isinstance(cls, type) and issubclass(cls, Exception):
            return cls(record["message"])
    except Exception:   # a class that cannot be rebuilt from its message alone
        pass
    return RuntimeError(f"{record['type']}: {record['message']}")


def decided_by_process_0(decide):
    """``decide()``'s result as process 0 computed it, on every process (see the module doc)."""
    import jax

    if jax.process_count() == 1:
        return decide()
    error = None
    if jax.process_index() == 0:
        try:
            payload = {"value": decide()}
        except Exception as err:
            error = err
            payload = {"error": {"module": type(err).__module__, "type": type(err).__qualname__,
                                 "message": str(err)}}
        data = json.dumps(payload).encode()
    else:
        data = b""
    received = json.loads(_broadcast_bytes(data))
    if "error" in received:
        raise error if error is not None else _error_from(received["error"])
    return received["value"]
