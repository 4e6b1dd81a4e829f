"""Ground truth for bsgap.advise on a second problem (issue 15): steps to 95% test accuracy vs
batch size for the digits MLP (configs/digits_mlp.py: two hidden layers of 128, no BN, momentum
SGD) on scikit-learn's 8x8 digits (1,437 train / 360 test), with the lr tuned per batch size on a
small grid (x1/2, x1, x2 around 0.1 sqrt(B/32)), constant after no warmup; each run stops at its
first evaluation at or above 95% (about 4 per epoch) or after 40 epochs: 6 x 3 = 18 trials.

    python -m launch.sweep --sweep=configs/sweeps/advise_digits_mlp.py \
        --root=runs/advise_digits_mlp --group_trials
"""
import math

from launch.spec import log_grid

BATCH_SIZES = [16, 32, 64, 128, 256, 512]


def learning_rates(trial: dict) -> list[float]:
    return log_grid(0.1 * math.sqrt(trial["batch_size"] / 32), num=3, factor=2.0)


def get_sweep():
    return {
        "config": "configs/digits_mlp.py",
        "names": {"eval_every_steps": "ev"},
        "overrides": {
            "num_epochs": 40,
            "num_devices": 1,
            "lr_scaling": "none",
            "schedule": "constant",
            "target_accuracy": 0.95,
            "stop_at_target": True,
            "checkpoint_every_steps": 100000,
            "log_every_steps": 5,
            "progress_bar": False,
            "tensorboard": False,
        },
        "axes": [
            {"batch_size": BATCH_SIZES,
             "eval_every_steps": [max(1, 1437 // (4 * b)) for b in BATCH_SIZES]},
            {"learning_rate": learning_rates},
            {"seed": [0]},
        ],
    }
