"""How TensorFlow is imported under bsgap: it must not see the GPUs (it would take their memory
from JAX), and its import must not load Keras (seconds of every process's start-up); both are
done at TensorFlow's first import, whoever imports it."""
import importlib
import sys

from bsgap.data import tensorflow_import

FAKE_TF = """
import importlib.util
try:
    import fake_keras.optimizers      # what tensorflow/__init__.py imports when Keras is installed
    keras_imported = True
except ImportError as err:
    keras_imported, keras_error = False, err
keras_spec = importlib.util.find_spec("fake_keras")   # what TensorFlow reads Keras's path from
calls = []
class config:
    @staticmethod
    def set_visible_devices(devices, device_type=None):
        calls.append((list(devices), device_type))
"""


def _fake_packages(tmp_path, monkeypatch):
    """A stand-in TensorFlow recording what its tf.config receives and whether its import could
    import a stand-in Keras (the real one is imported once per process, and this CPU has no GPU
    to show either way)."""
    for name, text in (("fake_tf", FAKE_TF), ("fake_keras", "")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(text)
    (tmp_path / "fake_keras" / "optimizers.py").write_text("loaded = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("fake_tf", "fake_keras", "fake_keras.optimizers"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_the_import_hook_hides_gpus_and_keras_during_the_first_import(tmp_path, monkeypatch):
    _fake_packages(tmp_path, monkeypatch)
    meta_path = list(sys.meta_path)
    tensorflow_import.install("fake_tf", hidden="fake_keras")
    tensorflow_import.install("fake_tf", hidden="fake_keras")   # installing twice hooks once
    import fake_tf

    assert fake_tf.calls == [([], "GPU")]
    assert fake_tf.keras_imported is False and "hidden by bsgap" in str(fake_tf.keras_error)
    assert fake_tf.keras_spec.origin is None                  # so TensorFlow finds no directory
    assert sys.meta_path == meta_path                         # both hooks removed themselves
    assert importlib.import_module("fake_keras.optimizers").loaded   # afterwards: importable
    tensorflow_import.install("fake_tf")                      # already imported: not hidden again
    assert fake_tf.calls == [([], "GPU")]


def test_keras_imported_before_is_left_as_it_is(tmp_path, monkeypatch):
    _fake_packages(tmp_path, monkeypatch)
    import fake_keras  # noqa: F401

    tensorflow_import.install("fake_tf", hidden="fake_keras")
    import fake_tf

    assert fake_tf.keras_imported is True and fake_tf.calls == [([], "GPU")]


def test_tensorflow_imported_after_bsgap_has_no_visible_gpu_and_no_keras():
    import tensorflow as tf

    assert "tensorflow" in tensorflow_import.hidden_in
    assert [d for d in tf.config.get_visible_devices() if d.device_type == "GPU"] == []
    assert "keras" not in sys.modules
    assert list(tf.data.Dataset.range(3).map(lambda x: 2 * x).as_numpy_iterator()) == [0, 2, 4]
