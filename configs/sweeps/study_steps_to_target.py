"""The offline study, part 2 (Shallue et al. 2018): steps to 90% test accuracy vs batch size, with
the learning rate tuned per batch size.

Same model and data as study_fig8.py. For every B the peak lr is searched on a log-spaced grid
(x1/4 .. x4) around the sqrt-scaled value 0.05 * sqrt(B/128); each run stops at its first
evaluation at or above 90% (evaluated ~4 times per epoch) or after 40 epochs: 8 x 5 = 40 trials.

    python -m launch.sweep --sweep=configs/sweeps/study_steps_to_target.py \
        --root=runs/study_steps_to_target --parallel=2
"""
import math

from launch.spec import log_grid

BATCH_SIZES = [16, 32, 64, 128, 256, 512, 1024, 2048]


def get_sweep():
    return {
        "config": "configs/default.py",
        "names": {"eval_every_steps": "ev"},
        "overrides": {
            "num_epochs": 40,
            "warmup_epochs": 1.0,
            "ghost_batch_size": 16,
            "lr_scaling": "none",          # learning_rate below is the lr actually used
            "schedule": "constant",        # Shallue et al. also tune decay; constant keeps it fair
            "target_accuracy": 0.9,
            "stop_at_target": True,
            "checkpoint_every_steps": 2000,
            "log_every_steps": 10,
            "progress_bar": False,
            "tensorboard": False,
        },
        "axes": [
            {"batch_size": BATCH_SIZES,
             "eval_every_steps": [max(1, 1000 // b) for b in BATCH_SIZES]},
            {"learning_rate": lambda t: log_grid(0.05 * math.sqrt(t["batch_size"] / 128), num=5,
                                                 factor=2.0)},
            {"seed": [0]},
        ],
    }
