"""TensorFlow must not see the GPUs (it would take their memory from JAX): bsgap hides them at
TensorFlow's first import, whoever imports it."""
import sys

from bsgap.data import tensorflow_gpus


def test_the_import_hook_hides_gpus_right_after_the_first_import(tmp_path, monkeypatch):
    # A stand-in module recording what its tf.config receives (the real one is imported once
    # per process, and on this CPU it has no GPU to show either way).
    (tmp_path / "fake_tf").mkdir()
    (tmp_path / "fake_tf" / "__init__.py").write_text(
        "calls = []\n"
        "class config:\n"
        "    @staticmethod\n"
        "    def set_visible_devices(devices, device_type=None):\n"
        "        calls.append((list(devices), device_type))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fake_tf", raising=False)
    tensorflow_gpus.install("fake_tf")
    tensorflow_gpus.install("fake_tf")              # installing twice hooks once
    import fake_tf

    assert fake_tf.calls == [([], "GPU")]
    assert not any(isinstance(f, tensorflow_gpus._HideOnImport) and f.name == "fake_tf"
                   for f in sys.meta_path)           # the hook removed itself
    tensorflow_gpus.install("fake_tf")               # already imported: not hidden again
    assert fake_tf.calls == [([], "GPU")]


def test_tensorflow_imported_after_bsgap_has_no_visible_gpu():
    import tensorflow as tf

    assert "tensorflow" in tensorflow_gpus.hidden_in
    assert [d for d in tf.config.get_visible_devices() if d.device_type == "GPU"] == []
