"""The offline study, part 2 (Shallue et al. 2018): steps to 90% test accuracy vs batch size, with
the learning rate tuned per batch size.

Same model and data as study_fig8.py. For every B the peak lr is searched on a log-spaced grid
(x1/4 .. x4, and x8, x16 from B=64 up) around the sqrt-scaled value 0.05 * sqrt(B/128); each run
stops at its first evaluation at or above 90% (evaluated ~4 times per epoch) or after 40 epochs:
8 x 5 + 6 x 2 = 52 trials.

    python -m launch.sweep --sweep=configs/sweeps/study_steps_to_target.py \
        --root=runs/study_steps_to_target --parallel=2
"""
import math

from launch.spec import log_grid

BATCH_SIZES = [16, 32, 64, 128, 256, 512, 1024, 2048]


def learning_rates(trial: dict) -> list[float]:
    """x1/4 .. x4 around the sqrt-scaled lr; from B=64 up also x8 and x16, because the first run
    of the x1/4 .. x4 grid found the best lr at its top edge for B >= 128 (an optimum on the edge
    of the grid is no optimum: Shallue et al. 2018, Sec. 4)."""
    center = 0.05 * math.sqrt(trial["batch_size"] / 128)
    extra = [center * 2.0 ** 3, center * 2.0 ** 4] if trial["batch_size"] >= 64 else []
    return log_grid(center, num=5, factor=2.0) + extra


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
            {"learning_rate": learning_rates},
            {"seed": [0]},
        ],
    }
