"""Which code made a run: the git commit of the checkout bsgap was imported from (config.json's
``environment.code``), so that a result can be traced to the code that produced it.

Only a checkout whose top level holds this package counts: an installed copy (site-packages) that
happens to sit inside some other git repository (a home directory under version control) gives
None, not that repository's commit. No git, or a timeout: None. JAX-free; ~10 ms.
"""
from __future__ import annotations

import functools
import os
import subprocess

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _git(directory: str, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_version(package_dir: str = PACKAGE_DIR) -> dict:
    """``{"git_commit": sha or None, "git_dirty": True/False or None}``: dirty means tracked files
    differ from the commit (untracked files are not counted)."""
    return dict(_code_version(package_dir))


@functools.lru_cache(maxsize=None)   # once per process: a run records it once per trial
def _code_version(package_dir: str) -> dict:
    none = {"git_commit": None, "git_dirty": None}
    top = _git(package_dir, "rev-parse", "--show-toplevel")
    if top is None or os.path.realpath(top) != os.path.realpath(os.path.dirname(package_dir)):
        return none
    commit = _git(top, "rev-parse", "HEAD")
    status = _git(top, "status", "--porcelain", "--untracked-files=no")
    if commit is None:
        return none
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}
