"""How TensorFlow is imported under bsgap: its GPUs hidden, and without loading Keras.

TensorFlow is only the input pipeline's library here (tf.data, TFDS, image ops on the host):
- **GPUs hidden** at its first import, before it can create a GPU context and take a share of
  their memory away from JAX (full ``tensorflow`` is what pip installs on aarch64 hosts and what
  many containers ship; ``tensorflow-cpu`` sees no GPU anyway).
- **Keras not loaded with it.** ``import tensorflow`` imports ``keras.src.optimizers`` eagerly
  whenever Keras is installed (pip installs Keras 3 with TensorFlow), and Keras in turn imports
  scikit-learn, SciPy and pandas: ~5 s of the ~14 s that importing bsgap.data and TensorFlow took
  on a 2-core host (BENCHMARKS.md), paid by every process that reads its data through tf.data
  (image datasets, streamed splits; in-memory runs do not import TensorFlow). While TensorFlow's
  own module runs, Keras is made to look not installed, a case TensorFlow handles (it skips that
  import); once it is imported, nothing is hidden, and ``tf.keras`` still imports Keras when
  something uses it. Keras already imported (before bsgap) is left as it is.

``install()`` (run when this module is imported, first thing in ``bsgap.data``) hides the GPUs at
once when TensorFlow is already imported, else adds an import hook that wraps TensorFlow's import,
whoever imports it first (bsgap, TFDS, a user's code). Importing bsgap still never imports
TensorFlow itself.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings

MODULE = "tensorflow"
HIDDEN_WHILE_IMPORTING = "keras"
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


class _NotInstalled(importlib.abc.Loader):
    """A spec's loader that fails the import as a missing package does."""

    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (hidden by bsgap while "
                                  f"{MODULE} imports)", name=spec.name)

    def exec_module(self, module):  # never reached: create_module raises
        raise ModuleNotFoundError(module.__name__)


class _Hide(importlib.abc.MetaPathFinder):
    """Finds ``package`` and its submodules as specs with no origin that cannot be loaded:
    ``importlib.util.find_spec`` then gives no directory, and an import raises ImportError."""

    def __init__(self, package):
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.package or fullname.startswith(self.package + "."):
            return importlib.machinery.ModuleSpec(fullname, _NotInstalled())
        return None


class _Loader(importlib.abc.Loader):
    def __init__(self, loader, name, hidden):
        self.loader, self.name, self.hidden = loader, name, hidden

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        hide = (_Hide(self.hidden) if self.hidden and self.hidden not in sys.modules else None)
        if hide is not None:
            sys.meta_path.insert(0, hide)
        try:
            self.loader.exec_module(module)
        finally:
            if hide is not None:
                sys.meta_path.remove(hide)
        hide_gpus(module, self.name)

    def __getattr__(self, attr):          # the wrapped loader's other methods (get_code, ...)
        return getattr(self.loader, attr)


class _HideOnImport(importlib.abc.MetaPathFinder):
    def __init__(self, name, hidden):
        self.name, self.hidden = name, hidden

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)         # once; and the lookup below must not find us again
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, fullname, self.hidden)
        return spec


def install(name: str = MODULE, hidden: str | None = HIDDEN_WHILE_IMPORTING) -> None:
    """Hide the GPUs from module ``name`` (now, or right after its first import), and package
    ``hidden`` (None: none) while that first import runs."""
    if name in sys.modules:
        if name not in hidden_in:
            hide_gpus(sys.modules[name], name)
    elif not any(isinstance(f, _HideOnImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _HideOnImport(name, hidden))


install()
