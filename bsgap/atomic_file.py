"""Replace a file atomically: write a uniquely named temporary beside it, then ``os.replace``.

The temporary's name is unique (``tempfile.mkstemp`` in the target's directory), so any number of
threads, processes or hosts sharing the filesystem can write the same file at once: readers see
the old file or one whole new one, never a mix, and no temporary is left behind (it is removed
when the write fails). Local paths only (``os.replace``); a ``gs://`` path is refused by name.
"""
from __future__ import annotations

import contextlib
import os
import tempfile

_UMASK = os.umask(0o022)   # read once, at import (os.umask is process-wide: never from threads)
os.umask(_UMASK)


@contextlib.contextmanager
def replacing(path: str, mode: str = "w"):
    """``with replacing(path) as f: f.write(...)``: ``path`` becomes what was written, whole, when
    the block ends without an error; on an error it is left as it was."""
    if "://" in str(path):
        raise ValueError(f"{path}: atomic replacement needs a local (or mounted) filesystem path, "
                         "not a URL")
    directory, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)   # as open() would have made it, not mkstemp's 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

