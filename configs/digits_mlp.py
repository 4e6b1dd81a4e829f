"""Smoke-test size: an MLP on scikit-learn's 8x8 digits (1,437 train / 360 test), seconds on a CPU."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import default  # noqa: E402


def get_config():
    c = default.get_config()
    c.dataset = "sklearn_digits"
    c.model = "mlp"
    c.model_kwargs = {"hidden_sizes": (128, 128)}
    c.normalization = "none"
    c.ghost_batch_size = None
    c.batch_size = 32
    c.reference_batch_size = 32
    c.learning_rate = 0.1
    c.eval_batch_size = 360
    c.num_epochs = 10
    c.target_accuracy = 0.95
    c.log_every_steps = 20
    c.checkpoint_every_steps = 100
    return c
