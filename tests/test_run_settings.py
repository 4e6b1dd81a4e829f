"""Settings that say how a run computes, and their record in config.json: matmul precision, the
persistent compilation cache, the trials loop's reason, and the classifier head in float32."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bsgap import logbook, run_config
from bsgap.choices import MODEL_NAMES
from bsgap.code_version import code_version
from bsgap.models import create_model
from bsgap.trainer import Trainer
from helpers import tiny_config

# One model of each class (resnet18/50/44 are the ResNet class of resnet20, with the same head).
INPUTS = {"mlp": (2, 8, 8, 1), "cnn1d": (2, 40), "keskar_c1": (2, 16, 16, 3),
          "caffenet128": (2, 128, 128, 3), "resnet20": (2, 16, 16, 3)}


def test_classifier_head_computes_logits_in_float32():
    """With bfloat16 compute, the head's logits equal a float64 matmul of its (bf16) input with
    its float32 parameters to float32 accuracy; a bf16 head is off by ~1e-2 (so the check bites).
    For every model class, the head's own output (not a cast after it) is float32."""
    model = create_model("mlp", num_classes=10, normalization="none", dtype="bfloat16",
                         hidden_sizes=())
    x = jax.random.normal(jax.random.PRNGKey(1), (16, 8, 8, 1)) * 3
    params = model.init(jax.random.PRNGKey(0), x)["params"]["Dense_0"]
    logits = model.apply({"params": {"Dense_0": params}}, x)
    head_input = np.asarray(x.reshape(16, -1).astype(jnp.bfloat16), np.float64)
    reference = head_input @ np.asarray(params["kernel"], np.float64) + np.asarray(
        params["bias"], np.float64)
    assert logits.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(logits), reference, rtol=1e-5, atol=1e-5)
    bf16_head = (jnp.asarray(head_input, jnp.bfloat16) @ params["kernel"].astype(jnp.bfloat16)
                 + params["bias"].astype(jnp.bfloat16))
    assert np.abs(np.asarray(bf16_head, np.float64) - reference).max() > 1e-3

    assert set(INPUTS) <= set(MODEL_NAMES)
    for name in INPUTS:
        net = create_model(name, num_classes=10, dtype="bfloat16",
                           normalization="none" if name == "mlp" else "batch")
        x = jnp.zeros(INPUTS[name])

        def heads(x, net=net):
            variables = net.init(jax.random.PRNGKey(0), x)
            _, state = net.apply(variables, x, capture_intermediates=True,
                                 mutable=["intermediates"])
            inner = state["intermediates"]
            last = max((k for k in inner if k.startswith("Dense_")),
                       key=lambda k: int(k.split("_")[1]))
            return inner[last]["__call__"][0], inner.get("Conv_0", {}).get("__call__")

        head, conv = jax.eval_shape(heads, x)
        assert head.shape == (2, 10) and head.dtype == jnp.float32, name
        if conv is not None:     # the body still computes in bfloat16
            assert conv[0].dtype == jnp.bfloat16, name


@pytest.fixture
def restore_jax_settings():
    precision = jax.config.jax_default_matmul_precision
    cache_dir = jax.config.jax_compilation_cache_dir
    yield
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_default_matmul_precision", precision)
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    compilation_cache.reset_cache()


def test_precision_cache_and_trials_loop_recorded(data_dir, tmp_path, restore_jax_settings):
    """matmul_precision reaches the compiled programs (HIGHEST in the lowered eval step) and
    config.json; compilation_cache_dir receives the compiled programs; the trials loop's reason
    is recorded. Bad values are refused naming what is allowed."""
    for bad, message in (("fp32", r"matmul_precision='fp32' is not one of \('default', 'high', "
                                  r"'highest', 'bfloat16', 'tensorfloat32', 'float32', None\)"),):
        with pytest.raises(run_config.ConfigError, match=message):
            run_config.validate(tiny_config(data_dir, matmul_precision=bad))
    with pytest.raises(run_config.ConfigError, match=r"compilation_cache_dir=''"):
        run_config.validate(tiny_config(data_dir, compilation_cache_dir=""))

    cache = str(tmp_path / "jax-cache")
    config = tiny_config(data_dir, num_steps=2, eval_every_steps=2, checkpoint_every_steps=2,
                         matmul_precision="highest", compilation_cache_dir=cache, num_devices=1)
    trainer = Trainer(config, str(tmp_path / "run"))
    trainer.run()
    environment = logbook.read_json(str(tmp_path / "run" / "config.json"))["environment"]
    assert environment["jax_settings"] == {"jax_default_matmul_precision": "highest",
                                           "jax_compilation_cache_dir": cache}
    assert environment["trials_loop"] == "vmap"
    assert environment["trials_loop_reason"].startswith("one trial")
    # The code that made the run (tests/test_code_version.py checks code_version against git).
    assert environment["code"] == code_version() and "git_commit" in environment["code"]
    lowered = trainer.eval_fn.lower(trainer.state, trainer._eval_batch_spec()).as_text()
    assert "precision = [HIGHEST, HIGHEST]" in lowered and "DEFAULT" not in lowered
    # Every program compiled for the run went to the cache (conftest: no minimum compile time).
    assert len(os.listdir(cache)) >= 3     # init, eval and train steps at least
