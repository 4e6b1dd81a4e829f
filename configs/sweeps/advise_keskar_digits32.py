"""Ground truth for bsgap.advise on an image model (issue 15): study_steps_to_target.py's protocol
(lr tuned per batch size, constant lr, stop at the target) for configs/keskar_c1_digits32.py (C1
with BN over the batch, dropout 0.5, Adam) on the embedded 32x32 coloured digits: target 80%, no
warmup, at most 100 epochs, about 4 evaluations per epoch, lr grid x1/2, x1, x2 around
1.5e-3 sqrt(B/32): 6 x 3 = 18 trials.

    python -m launch.sweep --sweep=configs/sweeps/advise_keskar_digits32.py \
        --root=runs/advise_keskar_digits32 --group_trials
"""
import math
import os

from launch.spec import log_grid, sweep_dict

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH_SIZES = [16, 32, 64, 128, 256, 512]


def learning_rates(trial: dict) -> list[float]:
    return log_grid(1.5e-3 * math.sqrt(trial["batch_size"] / 32), num=3, factor=2.0)


def get_sweep():
    sweep = sweep_dict(os.path.join(HERE, "study_steps_to_target.py"))
    sweep["config"] = "configs/keskar_c1_digits32.py"
    overrides = {k: v for k, v in sweep["overrides"].items() if k != "ghost_batch_size"}
    sweep["overrides"] = {**overrides, "num_devices": 1, "warmup_epochs": 0.0, "num_epochs": 100,
                          "target_accuracy": 0.8, "checkpoint_every_steps": 100000,
                          "log_every_steps": 5}
    sweep["axes"] = [
        {"batch_size": BATCH_SIZES,
         "eval_every_steps": [max(1, 1437 // (4 * b)) for b in BATCH_SIZES]},
        {"learning_rate": learning_rates},
        {"seed": [0]},
    ]
    return sweep
