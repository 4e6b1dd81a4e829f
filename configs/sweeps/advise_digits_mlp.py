"""Ground truth for bsgap.advise on a second problem (issue 15): the steps-to-target protocol of
advise_ground_truth.py for the digits MLP (configs/digits_mlp.py: two hidden layers of 128, no
BN, momentum SGD) on scikit-learn's 8x8 digits (1,437 train / 360 test): target 95%, at most 40
epochs, lr grid x1/2, x1, x2 around 0.1 sqrt(B/32): 6 x 3 = 18 trials.

    python -m launch.sweep --sweep=configs/sweeps/advise_digits_mlp.py \
        --root=runs/advise_digits_mlp --group_trials
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from advise_ground_truth import steps_to_target_sweep  # noqa: E402


def get_sweep():
    return steps_to_target_sweep("configs/digits_mlp.py", centre_lr=0.1, target_accuracy=0.95)
