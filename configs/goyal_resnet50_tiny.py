"""goyal_resnet50.py at test size, offline: the same rules on the embedded ``digits32``.

Kept: inception crops, linear lr rule with gradual warmup, step schedule, Nesterov momentum, ghost
BN with a fixed group, bottleneck ResNet. Scaled down: 24 px, one bottleneck block per stage with
widths 4-32, ghost group 8, reference batch 32, 4 epochs (warmup 0.5, x0.1 at 2, 3 and 3.5).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import goyal_resnet50  # noqa: E402


def get_config():
    c = goyal_resnet50.get_config()
    c.dataset = "digits32"
    c.eval_split = "test"
    c.image_size = 24
    c.eval_batch_size = 360
    c.model_kwargs = {"stage_sizes": (1, 1, 1, 1), "widths": (4, 8, 16, 32)}
    c.ghost_batch_size = 8
    c.batch_size = 64
    c.reference_batch_size = 32
    c.warmup_epochs = 0.5
    c.schedule_milestones = (2.0, 3.0, 3.5)
    c.num_epochs = 4
    c.log_every_steps = 10
    c.checkpoint_every_steps = 50
    return c
