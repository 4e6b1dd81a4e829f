"""TensorBoard event files written without TensorFlow (TensorBoard's own record framing).

``tf.summary`` and ``tensorboard``'s EventFileWriter both import TensorFlow when it is installed
(the latter for ``tf.io.gfile``), ~10 s of a small run's start-up; this writes the same files
with ``tensorboard.summary.writer.record_writer`` on a local file: one file per writer,
``events.out.tfevents.<time>.<host>.<pid>.<n>`` (TensorBoard's naming), starting with the
``brain.Event:2`` version record, then one event per ``scalars`` call, flushed at once.

A resumed run redoes the steps after its checkpoint. ``truncate_event_files`` first drops those
steps from the earlier event files (so every reader, not only TensorBoard's web UI, sees each step
once), and the new writer starts with a ``SessionLog.START`` at the first redone step, the
convention by which TensorBoard's own loaders purge what came after a restart.
"""
from __future__ import annotations

import itertools
import os
import socket
import struct
import time

from bsgap.atomic_file import replacing

_COUNTER = itertools.count()
EVENT_FILE_MARK = "tfevents"


def read_records(path: str) -> list[bytes]:
    """The records of a TFRecord file; a torn final record (a crash mid-write) is dropped."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    records = []
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    while offset + 12 <= len(data):
        header = data[offset:offset + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[offset + 8:offset + 12])
        end = offset + 12 + length + 4
        if header_crc != masked_crc32c(header) or end > len(data):
            break
        payload = data[offset + 12:offset + 12 + length]
        if struct.unpack("<I", data[end - 4:end])[0] != masked_crc32c(payload):
            break
        records.append(payload)
        offset = end
    return records


def truncate_event_files(logdir: str, max_step: int) -> int:
    """Drop the events after ``max_step`` from every event file in ``logdir`` (rewritten
    atomically; the version record kept); returns how many events were dropped."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    if not os.path.isdir(logdir):
        return 0
    dropped = 0
    for name in sorted(os.listdir(logdir)):
        path = os.path.join(logdir, name)
        if EVENT_FILE_MARK not in name or not os.path.isfile(path):
            continue
        records = read_records(path)
        events = [event_pb2.Event.FromString(r) for r in records]
        kept = [r for r, e in zip(records, events) if e.step <= max_step or e.file_version]
        torn = os.path.getsize(path) != sum(len(r) + 16 for r in records)
        if len(kept) == len(records) and not torn:
            continue
        dropped += len(records) - len(kept)
        with replacing(path, "wb") as f:
            writer = RecordWriter(f)
            for r in kept:
                writer.write(r)
    return dropped


class ScalarWriter:
    def __init__(self, logdir: str, *, restart_step: int | None = None):
        """``restart_step``: the first step a resumed run redoes (a SessionLog.START there)."""
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        os.makedirs(logdir, exist_ok=True)
        self._event_pb2 = event_pb2
        name = (f"events.out.{EVENT_FILE_MARK}.{int(time.time()):010d}.{socket.gethostname()}."
                f"{os.getpid()}.{next(_COUNTER)}")
        self.path = os.path.join(logdir, name)
        self._writer = RecordWriter(open(self.path, "ab"))
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        if restart_step is not None:
            self._write(event_pb2.Event(
                wall_time=time.time(), step=int(restart_step),
                session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))

    def _write(self, event) -> None:
        self._writer.write(event.SerializeToString())
        self._writer.flush()

    def scalars(self, step: int, values: dict) -> None:
        """One event at ``step`` holding every ``tag: float`` of ``values``."""
        from tensorboard.compat.proto import summary_pb2

        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=v)
                                             for t, v in values.items()])
        self._write(self._event_pb2.Event(wall_time=time.time(), step=int(step),
                                          summary=summary))

    def close(self) -> None:
        if not self._writer.closed:
            self._writer.close()
