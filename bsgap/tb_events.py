"""TensorBoard event files written without TensorFlow (TensorBoard's own record framing).

``tf.summary`` and ``tensorboard``'s EventFileWriter both import TensorFlow when it is installed
(the latter for ``tf.io.gfile``), ~10 s of a small run's start-up; this writes the same files
with ``tensorboard.summary.writer.record_writer`` on a local file: one file per writer,
``events.out.tfevents.<time>.<host>.<pid>.<n>`` (TensorBoard's naming), starting with the
``brain.Event:2`` version record, then one event per ``scalars`` call, flushed at once.
"""
from __future__ import annotations

import itertools
import os
import socket
import time

_COUNTER = itertools.count()


class ScalarWriter:
    def __init__(self, logdir: str):
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        os.makedirs(logdir, exist_ok=True)
        self._event_pb2 = event_pb2
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                f"{os.getpid()}.{next(_COUNTER)}")
        self.path = os.path.join(logdir, name)
        self._writer = RecordWriter(open(self.path, "ab"))
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

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
