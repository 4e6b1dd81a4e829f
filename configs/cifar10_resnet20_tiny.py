"""cifar10_resnet20.py at test size, offline: the same rules on the embedded ``digits32``.

Kept: cifar crops, BN, momentum SGD, step schedule at 50% and 75% of the budget. Scaled down: one
block per stage (widths 4/8/16), batch 32, 2 epochs.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cifar10_resnet20  # noqa: E402


def get_config():
    c = cifar10_resnet20.get_config()
    c.dataset = "digits32"
    c.download = False
    c.eval_batch_size = 360
    c.model_kwargs = {"stage_sizes": (1, 1, 1), "widths": (4, 8, 16)}
    c.batch_size = 32
    c.reference_batch_size = 32
    c.num_epochs = 2
    c.log_every_steps = 10
    c.checkpoint_every_steps = 50
    return c
