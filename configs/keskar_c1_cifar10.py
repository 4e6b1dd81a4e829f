"""Keskar et al. 2017 (arXiv:1609.04836): network C1 on CIFAR-10, small batch vs large batch.

SB = 256 and LB = 5000 (10% of the training set), both with Adam at its default lr 1e-3 and no
schedule, no augmentation, pixels scaled to [0, 1] (their public code, plot_parametric_plot.py:
Keras Adam, 20 epochs, X/255). C1: two 5x5 conv (64) + BN + ReLU + 3x3/2 max-pool, fc 384 and 192
with BN, ReLU and dropout 0.5 (their network_zoo.shallownet). Their Keras BN (mode=2) normalizes
with the batch's own statistics; here BN is per microbatch in training and running averages at
evaluation.

    python -m bsgap.train --config=configs/keskar_c1_cifar10.py \
        --config.batch_size=5000 --workdir=runs/keskar_lb
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import default  # noqa: E402

SMALL_BATCH, LARGE_BATCH = 256, 5000


def get_config():
    c = default.get_config()
    c.dataset = "cifar10"
    c.download = True               # TFDS downloads and prepares it once into data_dir
    c.augment = "none"
    c.eval_batch_size = 1000
    c.model = "keskar_c1"
    c.model_kwargs = {"width": 64, "fc_width": 384}
    c.normalization = "batch"           # BN over each microbatch: the whole batch on one device
    c.ghost_batch_size = None
    c.dropout_rate = 0.5
    c.batch_size = SMALL_BATCH
    c.optimizer = "adam"
    c.momentum = 0.9                # Adam beta1
    c.weight_decay = 0.0
    c.learning_rate = 1e-3
    c.reference_batch_size = SMALL_BATCH
    c.lr_scaling = "none"
    c.schedule = "constant"
    c.num_epochs = 20
    c.target_accuracy = None
    c.log_every_steps = 20
    c.checkpoint_every_steps = 1000
    return c
