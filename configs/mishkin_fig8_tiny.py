"""mishkin_fig8.py at test size, offline: the same rules on the embedded ``digits32``.

Kept from the paper config: the mishkin preset (short side x144/128, random crop, flip), momentum
SGD with weight decay, selectable lr rule around a reference batch, step schedule at 31.25/62.5/
93.75% of a budget fixed in examples (so iterations ~ 1/B). Scaled down: 24 px crops of the 32 px
digits, a small Keskar-C1-shaped CNN instead of CaffeNet-128 (which needs 128 px), reference batch
32 and 320 iterations at it (10,240 examples, ~7 epochs of 1,437).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mishkin_fig8  # noqa: E402


def get_config():
    c = mishkin_fig8.get_config()
    c.dataset = "digits32"
    c.eval_split = "test"
    c.image_size = 24
    c.eval_batch_size = 360
    c.model = "keskar_c1"
    c.model_kwargs = {"width": 8, "fc_width": 32}
    c.batch_size = 32
    c.reference_batch_size = 32
    c.num_examples = 320 * 32
    c.log_every_steps = 20
    c.checkpoint_every_steps = 100
    return c
