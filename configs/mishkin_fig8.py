"""Mishkin et al. 2017 (arXiv:1606.02228), sec. 3.7 / Fig. 8: top-1 vs batch size, CaffeNet-128.

CaffeNet on 128x128 ImageNet crops (resize the short side to 144, random 128 crop + flip; eval:
center crop), SGD with momentum 0.9, weight decay 5e-4, no normalization layers, dropout 0.5.
The budget is fixed in examples: 320K iterations at B=256 = 81.92M examples, so iterations are
proportional to 1/B (their B=1024 run: 80K iterations). The lr is 0.01 at B=256 and the rule is
selectable: ``--config.lr_scaling=none`` (fixed 0.01) or ``linear`` (0.01 x B/256), or ``sqrt``.
Step schedule: x0.1 at 31.25%, 62.5% and 93.75% of the budget (B=1024: every 25K iterations).
Their numbers: analysis/reference/mishkin2017_fig8.csv.

    python -m bsgap.train --config=configs/mishkin_fig8.py --config.batch_size=256 \
        --config.manual_dir=DIR_WITH_THE_TWO_ILSVRC2012_TARS --workdir=runs/mishkin_b256

Pixels are standardized with the usual ImageNet mean/std (the paper's Caffe setup subtracted a
mean image; this choice is ours).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import default  # noqa: E402

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
REFERENCE_ITERATIONS, REFERENCE_BATCH = 320_000, 256
MILESTONE_FRACTIONS = (0.3125, 0.625, 0.9375)   # 25K, 50K, 75K of 80K at B=1024


def get_config():
    c = default.get_config()
    c.dataset = "imagenet2012"
    c.eval_split = "validation"
    c.augment = "mishkin"
    c.image_size = 128
    # Resized pixels sent as uint8 (1/4 of float32's bytes), normalized on the device: rounded to
    # integers after the resize, as the papers' own pipelines stored them (Caffe's resized uint8
    # LMDB; OpenCV's uint8 resize); 'auto' would send float32 (bsgap/data/transfer.py).
    c.image_transfer = "uint8"
    c.pixel_mean, c.pixel_std = IMAGENET_MEAN, IMAGENET_STD
    c.eval_batch_size = 1000
    c.model = "caffenet128"
    c.model_kwargs = {}
    c.normalization = "none"
    c.ghost_batch_size = None
    c.dropout_rate = 0.5
    c.batch_size = REFERENCE_BATCH
    c.optimizer = "momentum"
    c.momentum = 0.9
    c.weight_decay = 5e-4
    c.learning_rate = 0.01
    c.reference_batch_size = REFERENCE_BATCH
    c.lr_scaling = "none"
    c.schedule = "step"
    c.schedule_milestone_fractions = MILESTONE_FRACTIONS
    c.schedule_gamma = 0.1
    c.num_epochs = None
    c.num_examples = REFERENCE_ITERATIONS * REFERENCE_BATCH   # 81.92M examples, ~64 epochs
    c.target_accuracy = None
    c.log_every_steps = 100
    c.checkpoint_every_steps = 5000
    return c
