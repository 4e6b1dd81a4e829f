"""ResNet-20 on CIFAR-10 (He et al. 2016, sec. 4.2): the standard small-image baseline.

SGD momentum 0.9, weight decay 1e-4, lr 0.1 at B=128 (``lr_scaling`` selectable), 64K iterations
at B=128 (164 epochs) with x0.1 at 50% and 75% of the budget (their 32K and 48K), BN, pad-4
random crop + flip, per-channel CIFAR-10 mean/std.

    python -m bsgap.train --config=configs/cifar10_resnet20.py --workdir=runs/resnet20_b128
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import default  # noqa: E402

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def get_config():
    c = default.get_config()
    c.dataset = "cifar10"
    c.download = True               # TFDS downloads and prepares it once into data_dir
    c.augment = "cifar"
    c.image_size = 32
    c.pixel_mean, c.pixel_std = CIFAR10_MEAN, CIFAR10_STD
    c.eval_batch_size = 1000
    c.model = "resnet20"
    c.model_kwargs = {}
    c.normalization = "batch"           # BN over each microbatch: the whole batch on one device
    c.ghost_batch_size = None
    c.batch_size = 128
    c.optimizer = "momentum"
    c.momentum = 0.9
    c.weight_decay = 1e-4
    c.learning_rate = 0.1
    c.reference_batch_size = 128
    c.lr_scaling = "none"
    c.schedule = "step"
    c.schedule_milestone_fractions = (0.5, 0.75)
    c.schedule_gamma = 0.1
    c.num_epochs = 164
    c.target_accuracy = None
    c.log_every_steps = 100
    c.checkpoint_every_steps = 2000
    return c
