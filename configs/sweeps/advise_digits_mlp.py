"""Ground truth for bsgap.advise on a second problem (issue 15): study_steps_to_target.py's
protocol (lr tuned per batch size, constant schedule, stop at the target) for the digits MLP
(configs/digits_mlp.py: two hidden layers of 128, no BN, momentum SGD) on scikit-learn's 8x8
digits (1,437 train / 360 test): target 95%, no warmup, at most 40 epochs, about 4 evaluations
per epoch, lr grid x1/2, x1, x2 around 0.1 sqrt(B/32): 6 x 3 = 18 trials.

    python -m launch.sweep --sweep=configs/sweeps/advise_digits_mlp.py \
        --root=runs/advise_digits_mlp --group_trials
"""
import math
import os

from launch.spec import log_grid, sweep_dict

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH_SIZES = [16, 32, 64, 128, 256, 512]


def learning_rates(trial: dict) -> list[float]:
    return log_grid(0.1 * math.sqrt(trial["batch_size"] / 32), num=3, factor=2.0)


def get_sweep():
    sweep = sweep_dict(os.path.join(HERE, "study_steps_to_target.py"))
    sweep["config"] = "configs/digits_mlp.py"
    overrides = {k: v for k, v in sweep["overrides"].items() if k != "ghost_batch_size"}
    sweep["overrides"] = {**overrides, "num_devices": 1, "warmup_epochs": 0.0,
                          "target_accuracy": 0.95, "checkpoint_every_steps": 100000,
                          "log_every_steps": 5}
    sweep["axes"] = [
        {"batch_size": BATCH_SIZES,
         "eval_every_steps": [max(1, 1437 // (4 * b)) for b in BATCH_SIZES]},
        {"learning_rate": learning_rates},
        {"seed": [0]},
    ]
    return sweep
