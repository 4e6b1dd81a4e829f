"""Paths on Cloud Storage (``gs://...``): what bsgap hands straight to orbax and TFDS, and what
it refuses.

* ``data_dir`` may be ``gs://bucket/tfds``: TFDS reads (and builds) it itself; bsgap makes no
  ``os`` call and takes no file lock there, and keeps no numpy copy of the splits beside it.
* A run directory (``--workdir``) must be a local or mounted path: bsgap appends JSONL logs
  (Cloud Storage objects cannot be appended to), locks the directory with ``flock`` and replaces
  JSON files with ``os.replace``.
* Its *checkpoints* go straight to Cloud Storage when the run directory is on a gcsfuse mount
  named in ``BSGAP_GCS_MOUNTS=MOUNT=gs://bucket[/prefix][,MOUNT2=...]`` (launch/tpu_vm.sh sets
  it): orbax then writes ``gs://bucket/prefix/<path under MOUNT>/checkpoints`` itself -- the
  same objects the mount shows -- and commits each with a commit file instead of the directory
  rename that gcsfuse performs as a copy and delete on flat buckets (slow, and not atomic).
"""
from __future__ import annotations

import os

MOUNTS_ENV = "BSGAP_GCS_MOUNTS"


def is_url(path) -> bool:
    """``gs://...`` and the like: only TFDS / orbax (tf.io.gfile, etils.epath) open these."""
    return "://" in str(path or "")


def mounts(environ=None) -> list[tuple[str, str]]:
    """[(mount point, gs:// url)] from BSGAP_GCS_MOUNTS; a malformed entry raises ValueError."""
    text = (os.environ if environ is None else environ).get(MOUNTS_ENV, "")
    out = []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        mount, sep, url = entry.partition("=")
        if not sep or not os.path.isabs(mount) or not url.startswith("gs://"):
            raise ValueError(f"{MOUNTS_ENV}={text!r}: each entry must be MOUNT=gs://BUCKET[/PREFIX] "
                             f"with an absolute MOUNT, not {entry!r}")
        out.append((os.path.normpath(mount), url.rstrip("/")))
    return out


def storage_url(directory: str, environ=None) -> str:
    """``directory`` as orbax should be given it: its gs:// url when it lies under a mount of
    BSGAP_GCS_MOUNTS, else unchanged."""
    if is_url(directory):
        return directory
    path = os.path.normpath(os.path.abspath(directory))
    for mount, url in mounts(environ):
        if path == mount or path.startswith(mount + os.sep):
            return url + path[len(mount):]
    return directory
