"""Goyal et al. 2017 (arXiv:1706.02677): ResNet-50 on ImageNet with the linear scaling rule.

lr = 0.1 x B/256 (sec. 2.1), gradual warmup over the first 5 epochs from 0.1 to the scaled lr
(sec. 2.2), 90 epochs with x0.1 at epochs 30, 60 and 80, Nesterov momentum 0.9, weight decay 1e-4
not applied to the BN parameters (sec. 5.1), BN statistics over 32 examples per worker whatever
the total batch (ghost batch 32, sec. 2.3), the last BN scale of each residual branch starting at
zero (bsgap's ResNet does this). Inception-style crops (area 8%-100%, aspect 3/4-4/3, flip);
eval: center crop 224 of the resize (the flax ImageNet example's preprocessing).

    python -m bsgap.train --config=configs/goyal_resnet50.py --config.batch_size=8192 \
        --config.manual_dir=DIR_WITH_THE_TWO_ILSVRC2012_TARS --workdir=runs/goyal_b8k
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import default  # noqa: E402

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def get_config():
    c = default.get_config()
    c.dataset = "imagenet2012"
    c.eval_split = "validation"
    c.augment = "inception"
    c.image_size = 224
    # Resized pixels sent as uint8 (1/4 of float32's bytes), normalized on the device: rounded to
    # integers after the resize, as the papers' own pipelines stored them (Caffe's resized uint8
    # LMDB; OpenCV's uint8 resize); 'auto' would send float32 (bsgap/data/transfer.py).
    c.image_transfer = "uint8"
    c.pixel_mean, c.pixel_std = IMAGENET_MEAN, IMAGENET_STD
    c.eval_batch_size = 1000
    c.model = "resnet50"
    c.model_kwargs = {}
    c.normalization = "ghost"
    c.ghost_batch_size = 32
    c.dropout_rate = 0.0
    c.batch_size = 256
    c.optimizer = "nesterov"
    c.momentum = 0.9
    c.weight_decay = 1e-4
    c.decay_all_params = False
    c.learning_rate = 0.1
    c.reference_batch_size = 256
    c.lr_scaling = "linear"
    c.warmup_epochs = 5.0
    c.schedule = "step"
    c.schedule_milestones = (30.0, 60.0, 80.0)
    c.schedule_gamma = 0.1
    c.num_epochs = 90
    c.target_accuracy = None
    c.log_every_steps = 100
    c.checkpoint_every_steps = 2000
    return c
