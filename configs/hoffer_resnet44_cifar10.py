"""Hoffer et al. 2017 (arXiv:1705.08741), "Train longer, generalize better": ResNet-44, CIFAR-10.

The three remedies for the large-batch gap, each its own field: the sqrt rule lr = 0.1 x
sqrt(B/128) (sec. 4), ghost batch normalization over 128 examples whatever B (sec. 4.1), and
regime adaptation (sec. 5: epochs and lr milestones x B/128, so B=4096 gets as many updates as
B=128). Regime of their code (models/resnet.py, ResNet_cifar10): SGD momentum 0.9, weight decay
1e-4, lr x0.1 at epochs 81, 122 and 164 of 200; pad-4 crop + flip, ImageNet mean/std as in
their preprocess.py. Differences: their code normalizes the sqrt rule by 256 and rounds the regime
factor up to an integer, pads with grey (127) and clips gradients at norm 5; here the reference
batch is the paper's small batch 128, padding is black and gradients are not clipped.

    python -m bsgap.train --config=configs/hoffer_resnet44_cifar10.py --workdir=runs/hoffer_b4096

The default batch is their large batch, 4096. Their small-batch baseline (B=128, BN over the
whole batch of 128) needs the 128 examples on one device: ``--config.batch_size=128
--config.num_devices=1`` (on 8 devices use ``--config.ghost_batch_size=16``, a different BN).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import default  # noqa: E402

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def get_config():
    c = default.get_config()
    c.dataset = "cifar10"
    c.download = True               # TFDS downloads and prepares it once into data_dir
    c.augment = "cifar"
    c.image_size = 32
    c.pixel_mean, c.pixel_std = IMAGENET_MEAN, IMAGENET_STD
    c.eval_batch_size = 1000
    c.model = "resnet44"
    c.model_kwargs = {}
    c.normalization = "ghost"
    c.ghost_batch_size = 128
    c.batch_size = 4096
    c.optimizer = "momentum"
    c.momentum = 0.9
    c.weight_decay = 1e-4
    c.learning_rate = 0.1
    c.reference_batch_size = 128
    c.lr_scaling = "sqrt"
    c.regime_adaptation = True
    c.schedule = "step"
    c.schedule_milestones = (81.0, 122.0, 164.0)
    c.schedule_gamma = 0.1
    c.num_epochs = 200
    c.target_accuracy = None
    c.log_every_steps = 100
    c.checkpoint_every_steps = 2000
    return c
