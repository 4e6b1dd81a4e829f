"""Ground truth for bsgap.advise on a second problem (issue 15): steps to 90% test accuracy vs
batch size for the Keskar C1-shaped CNN at test size (configs/keskar_c1_cifar10_tiny.py: BN over
the batch, dropout 0.5, Adam) on the embedded digits32 (1,437 train / 360 test), with the lr tuned
per batch size on a small grid (x1/2, x1, x2 around 1e-3 sqrt(B/32)); each run stops at its first
evaluation at or above 90% (about 4 per epoch) or after 30 epochs: 5 x 3 = 15 trials.

    python -m launch.sweep --sweep=configs/sweeps/advise_keskar_digits32.py \
        --root=runs/advise_keskar_digits32 --group_trials
"""
import math

from launch.spec import log_grid

BATCH_SIZES = [16, 32, 64, 128, 256]


def learning_rates(trial: dict) -> list[float]:
    return log_grid(1e-3 * math.sqrt(trial["batch_size"] / 32), num=3, factor=2.0)


def get_sweep():
    return {
        "config": "configs/keskar_c1_cifar10_tiny.py",
        "names": {"eval_every_steps": "ev"},
        "overrides": {
            "num_epochs": 30,
            "num_devices": 1,
            "lr_scaling": "none",
            "target_accuracy": 0.9,
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
