"""Ground truth for bsgap.advise on an image model (issue 15): the steps-to-target protocol of
advise_ground_truth.py for configs/keskar_c1_digits32.py (C1 with BN over the batch, dropout 0.5,
Adam) on the embedded 32x32 coloured digits: target 80%, at most 100 epochs, lr grid x1/2, x1, x2
around 1.5e-3 sqrt(B/32): 6 x 3 = 18 trials, and x1/4 for B >= 128 (added 2026-12-02, 3 trials:
in two sweeps of the 3-lr grid the fastest lr at B = 128, 256 and 512 was the grid's lowest).

    python -m launch.sweep --sweep=configs/sweeps/advise_keskar_digits32.py \
        --root=runs/advise_keskar_digits32 --group_trials
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from advise_ground_truth import steps_to_target_sweep  # noqa: E402


def get_sweep():
    return steps_to_target_sweep("configs/keskar_c1_digits32.py", centre_lr=1.5e-3,
                                 target_accuracy=0.8, num_epochs=100,
                                 extend_below=(128, 256, 512))
