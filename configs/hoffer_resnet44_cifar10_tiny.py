"""hoffer_resnet44_cifar10.py at test size, offline: the same rules on the embedded ``digits32``.

Kept: cifar crops (pad 4, random 32 crop, flip), sqrt lr rule, ghost BN with a fixed group,
regime adaptation of epochs and milestones, step schedule. Scaled down: a 3-stage CIFAR ResNet
with one block per stage (widths 4/8/16), ghost group 8, reference batch 32, 1 epoch at the
reference (x0.1 at 0.4, 0.6 and 0.8 of it) -- so B=64 trains 2 epochs.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hoffer_resnet44_cifar10  # noqa: E402


def get_config():
    c = hoffer_resnet44_cifar10.get_config()
    c.dataset = "digits32"
    c.download = False
    c.eval_batch_size = 360
    c.model_kwargs = {"stage_sizes": (1, 1, 1), "widths": (4, 8, 16)}
    c.ghost_batch_size = 8
    c.batch_size = 64
    c.reference_batch_size = 32
    c.schedule_milestones = (0.4, 0.6, 0.8)
    c.num_epochs = 1
    c.log_every_steps = 10
    c.checkpoint_every_steps = 50
    return c
