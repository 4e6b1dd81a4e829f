"""Find a run config file from any working directory (no JAX import).

``--config`` takes a path (``configs/default.py``, absolute, or relative to the working
directory), a path relative to the repository (``configs/goyal_resnet50.py`` run from elsewhere),
or the bare name of one of the repository's configs (``default``, ``goyal_resnet50_tiny``). An
ml_collections parameter suffix (``file.py:arg``) is kept. The repository's configs are found
beside the ``bsgap`` package: an editable install (``pip install -e .``, the README's) or a source
checkout has them; a plain ``pip install .`` does not ship them, and then a path is needed.
"""
from __future__ import annotations

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS_DIR = os.path.join(REPO_ROOT, "configs")
DEFAULT_CONFIG = os.path.join(CONFIGS_DIR, "default.py")


class ConfigFileError(ValueError):
    """A ``--config`` that names no file; the message lists what is available."""


def available_configs() -> list[str]:
    """Bare names of the repository's run configs (``--config=<name>``)."""
    if not os.path.isdir(CONFIGS_DIR):
        return []
    return sorted(name[:-3] for name in os.listdir(CONFIGS_DIR)
                  if name.endswith(".py") and not name.startswith("_"))


def _split_parameter(value: str) -> tuple[str, str]:
    path, colon, parameter = value.partition(":")
    return path, colon + parameter


def resolve_config_file(value: str) -> str:
    """The config file ``value`` names (its ``:parameter`` kept); ConfigFileError if none."""
    path, parameter = _split_parameter(value)
    if not path:
        raise ConfigFileError("--config is empty; give a config file or one of the names "
                              f"{available_configs()}")
    candidates = [path]
    if not os.path.isabs(path):
        candidates.append(os.path.join(REPO_ROOT, path))
        if os.sep not in path and "/" not in path:
            candidates.append(os.path.join(CONFIGS_DIR, path if path.endswith(".py")
                                           else path + ".py"))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate + parameter
    names = available_configs()
    where = (f"the repository's configs ({CONFIGS_DIR}) are: {', '.join(names)}" if names else
             f"no repository configs are installed beside bsgap ({CONFIGS_DIR} is missing: pass "
             "a path to a config file)")
    raise ConfigFileError(f"--config={value}: no such file (looked in {os.getcwd()} and "
                          f"{REPO_ROOT}); {where}")


def resolve_config_argv(argv: list[str]) -> list[str]:
    """``argv`` with its ``--config=X`` / ``--config X`` resolved (other flags untouched)."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg.startswith("--config="):
            out[i] = "--config=" + resolve_config_file(arg.split("=", 1)[1])
        elif arg == "--config" and i + 1 < len(out):
            out[i + 1] = resolve_config_file(out[i + 1])
    return out
