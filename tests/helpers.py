"""Small configs for tests: the default config with overrides, on the embedded datasets."""
from __future__ import annotations

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(path: str = "configs/default.py", **overrides):
    spec = importlib.util.spec_from_file_location("cfg", os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    for key, value in overrides.items():
        if isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    return config


def tiny_config(data_dir: str, **overrides):
    """An MLP on the 8x8 digits: compiles in ~1 s, a step in ~1 ms."""
    base = dict(dataset="sklearn_digits", data_dir=data_dir, model="mlp",
                model_kwargs={}, normalization="none", batch_size=32, num_epochs=None,
                num_steps=20, log_every_steps=5, eval_every_steps=10,
                checkpoint_every_steps=10, eval_batch_size=200, tensorboard=False,
                progress_bar=False, target_accuracy=None, learning_rate=0.1)
    base.update(overrides)
    config = load_config(**{k: v for k, v in base.items() if k != "model_kwargs"})
    config.model_kwargs = base["model_kwargs"]
    return config
