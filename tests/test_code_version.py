"""config.json's environment.code: the commit of the checkout bsgap runs from, against git itself,
and None wherever the package is not the top of a checkout."""
import os
import shutil
import subprocess

import pytest

from bsgap.code_version import PACKAGE_DIR, code_version
from helpers import ROOT

GIT = shutil.which("git")
# In CI a missing tool fails, never skips (the checkout there is a git clone).
needs_git = pytest.mark.skipif(GIT is None and not os.environ.get("CI"), reason="no git here")


def _git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def _clear_cache():
    from bsgap import code_version as module

    module._code_version.cache_clear()


def _repo(path):
    os.makedirs(path, exist_ok=True)
    _git(path, "init", "-q")
    _git(path, "config", "user.email", "t@example.com")
    _git(path, "config", "user.name", "t")
    return path


@needs_git
def test_this_checkout_is_recorded_as_git_itself_says():
    if not os.path.isdir(os.path.join(ROOT, ".git")) and not os.environ.get("CI"):
        pytest.skip("not a git checkout")
    assert os.path.realpath(PACKAGE_DIR) == os.path.realpath(os.path.join(ROOT, "bsgap"))
    got = code_version()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode != 0:   # git refuses this checkout (e.g. another owner): nothing recorded
        assert got == {"git_commit": None, "git_dirty": None}, head.stderr
        return
    assert got["git_commit"] == head.stdout.strip()
    tracked_changes = _git(ROOT, "status", "--porcelain", "--untracked-files=no")
    assert got["git_dirty"] == bool(tracked_changes)


@needs_git
def test_commit_and_dirty_of_a_checkout_that_holds_the_package(tmp_path):
    repo = _repo(str(tmp_path / "repo"))
    package = os.path.join(repo, "bsgap")
    os.makedirs(package)
    with open(os.path.join(package, "a.py"), "w") as f:
        f.write("x = 1\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "HEAD")
    assert code_version(package) == {"git_commit": head, "git_dirty": False}
    with open(os.path.join(repo, "untracked.txt"), "w") as f:
        f.write("not counted\n")
    _clear_cache()
    assert code_version(package) == {"git_commit": head, "git_dirty": False}
    with open(os.path.join(package, "a.py"), "w") as f:
        f.write("x = 2\n")
    _clear_cache()
    assert code_version(package) == {"git_commit": head, "git_dirty": True}


@needs_git
def test_a_package_inside_another_repository_or_none_is_not_given_its_commit(tmp_path):
    outer = _repo(str(tmp_path / "home"))
    with open(os.path.join(outer, "notes.txt"), "w") as f:
        f.write("a home directory under version control\n")
    _git(outer, "add", ".")
    _git(outer, "commit", "-q", "-m", "home")
    installed = os.path.join(outer, "lib", "site-packages", "bsgap")
    os.makedirs(installed)
    assert code_version(installed) == {"git_commit": None, "git_dirty": None}
    plain = str(tmp_path / "plain" / "bsgap")
    os.makedirs(plain)
    assert code_version(plain) == {"git_commit": None, "git_dirty": None}
