"""keskar_c1_cifar10.py at test size, offline: the same rules on the embedded ``digits32``.

Kept: C1-shaped CNN with BN and dropout, Adam at 1e-3 without schedule or augmentation, SB vs LB
(here SB = 32 and LB = 144, ~10% of the 1,437 training images). Scaled down: widths 8/32, 2 epochs.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keskar_c1_cifar10  # noqa: E402

SMALL_BATCH, LARGE_BATCH = 32, 144


def get_config():
    c = keskar_c1_cifar10.get_config()
    c.dataset = "digits32"
    c.download = False
    c.eval_batch_size = 360
    c.model_kwargs = {"width": 8, "fc_width": 32}
    c.batch_size = SMALL_BATCH
    c.reference_batch_size = SMALL_BATCH
    c.num_epochs = 2
    c.log_every_steps = 10
    c.checkpoint_every_steps = 50
    return c
