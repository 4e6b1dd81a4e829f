"""Keskar et al.'s C1 rules on the embedded ``digits32`` at a size a CPU trains to 80% in a minute:
the image problem on which ``bsgap.advise`` is validated (issue 15; BENCHMARKS.md).

Kept from keskar_c1_cifar10.py: C1 (two 5x5 convs with BN, ReLU and 3x3/2 max-pool; two fc layers
with BN, ReLU and dropout 0.5), BN over the whole batch on one device, Adam without schedule or
augmentation, pixels in [0, 1]. Changed: widths 16 / 64, one device, lr 1.5e-3 at B=32 scaled by
the sqrt rule (Adam), target 80% test accuracy (the coloured digits sit near chance for the first
few epochs, then rise: an MLP-like 95% is not reached within a CPU-minute's budget).

    python -m bsgap.train --config=configs/keskar_c1_digits32.py --workdir=runs/keskar_digits32
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keskar_c1_cifar10  # noqa: E402


def get_config():
    c = keskar_c1_cifar10.get_config()
    c.dataset = "digits32"
    c.download = False
    c.num_devices = 1
    c.eval_batch_size = 360
    c.model_kwargs = {"width": 16, "fc_width": 64}
    c.batch_size = 32
    c.reference_batch_size = 32
    c.learning_rate = 1.5e-3
    c.lr_scaling = "sqrt"
    c.num_epochs = 100
    c.target_accuracy = 0.8
    c.eval_every_steps = 11          # about 4 evaluations per epoch at B=32
    c.log_every_steps = 11
    c.checkpoint_every_steps = 100000
    return c
