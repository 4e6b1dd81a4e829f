"""One process per run directory: an exclusive lock held for as long as a Trainer uses it.

Two processes on one workdir corrupt it silently (the second one's resume truncates the JSONL
files the first is appending to). ``acquire(workdir)`` takes ``flock(LOCK_EX | LOCK_NB)`` on
``<workdir>/.bsgap.lock`` and writes the holder (host, pid, start time) into it; a second process
is refused with a ``WorkdirError`` naming the holder (exit 2 from the CLI). The OS drops the lock
when the holder exits, crashes or is killed, so a stale lock file never blocks a resume. On Linux
NFS, flock is carried out as a POSIX byte-range lock and so holds across hosts; on a filesystem
without locks (some FUSE mounts) bsgap warns and runs unlocked. Multi-host runs: process 0 only.
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import socket
import sys

from bsgap.workdir import WorkdirError

LOCK_FILE = ".bsgap.lock"


class RunLock:
    def __init__(self, workdir: str, fd: int | None, created: bool = False):
        self.workdir, self._fd, self.created = workdir, fd, created

    def release(self, *, undo_create: bool = False) -> None:
        """Drop the lock; with ``undo_create``, also remove the directory if ``acquire`` made it
        and nothing but the lock file is in it (a run refused before it wrote anything)."""
        if self._fd is not None:
            os.close(self._fd)   # closing the descriptor drops the flock
            self._fd = None
        if undo_create and self.created:
            try:
                if os.listdir(self.workdir) == [LOCK_FILE]:
                    os.remove(os.path.join(self.workdir, LOCK_FILE))
                    os.rmdir(self.workdir)
            except OSError:
                pass

    def __del__(self):
        self.release()


def _holder(path: str) -> str:
    try:
        with open(path) as f:
            info = json.load(f)
        return f"host {info['host']}, pid {info['pid']}, started {info['started']}"
    except Exception:
        return "holder unknown"


def acquire(workdir: str) -> RunLock:
    """Lock ``workdir`` (created if absent) for this process, or raise ``WorkdirError``."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise WorkdirError(f"workdir {workdir} is a file, not a directory")
    created = not os.path.isdir(workdir)
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WorkdirError(
            f"workdir {workdir} is in use by another bsgap process ({_holder(path)}); two runs "
            "on one directory would overwrite each other's logs. Wait for it to finish (or stop "
            "it), or use another --workdir. The lock goes away when that process exits, "
            "whatever way it exits") from None
    except OSError as err:
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            os.close(fd)
            raise
        os.close(fd)
        print(f"[bsgap] warning: the filesystem of {workdir} has no file locks ({err}); running "
              "without protection against a second process on the same directory",
              file=sys.stderr)
        return RunLock(workdir, None, created)
    info = {"host": socket.gethostname(), "pid": os.getpid(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    return RunLock(workdir, fd, created)
