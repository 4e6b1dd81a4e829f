"""TensorFlow is only the input pipeline's library here (tf.data, TFDS, image ops on the host):
hide the GPUs from it at its first import, before it can create a GPU context and take a share
of their memory away from JAX (full ``tensorflow`` is what pip installs on aarch64 hosts and what
many containers ship; ``tensorflow-cpu`` sees no GPU anyway).

``install()`` (run when this module is imported, first thing in ``bsgap.data``) hides them at once when TensorFlow is already
imported, else adds an import hook that hides them right after ``import tensorflow`` finishes,
whoever imports it first (bsgap, TFDS, a user's code). Importing bsgap still never imports
TensorFlow itself.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import warnings

MODULE = "tensorflow"
hidden_in: list[str] = []   # the modules whose GPUs were hidden (what the tests read)


def hide_gpus(tf, name: str = MODULE) -> None:
    """``tf.config.set_visible_devices([], 'GPU')``; a warning when it is too late for that."""
    try:
        tf.config.set_visible_devices([], "GPU")
        hidden_in.append(name)
    except RuntimeError as err:   # its devices were initialized before bsgap was imported
        warnings.warn(f"could not hide the GPUs from TensorFlow ({err}); it may hold GPU memory "
                      "that JAX then lacks. Import bsgap.data before running TensorFlow code",
                      stacklevel=2)


class _Loader(importlib.abc.Loader):
    def __init__(self, loader, name):
        self.loader, self.name = loader, name

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        hide_gpus(module, self.name)

    def __getattr__(self, attr):          # the wrapped loader's other methods (get_code, ...)
        return getattr(self.loader, attr)


class _HideOnImport(importlib.abc.MetaPathFinder):
    def __init__(self, name):
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)         # once; and the lookup below must not find us again
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, fullname)
        return spec


def install(name: str = MODULE) -> None:
    if name in sys.modules:
        if name not in hidden_in:
            hide_gpus(sys.modules[name], name)
    elif not any(isinstance(f, _HideOnImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _HideOnImport(name))


install()
