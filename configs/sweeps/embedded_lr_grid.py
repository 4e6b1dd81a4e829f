"""Shallue et al. (2018) on a laptop: steps to a target accuracy vs batch size, lr tuned per batch.

For every batch size B the learning rate is searched on a log-spaced grid around the linearly
scaled value 0.1 * B / 32 (x 1/4, 1/2, 1, 2, 4); each run stops when it first reaches 95% test
accuracy (evaluated every 10 steps). analysis.collect's per-batch-size table then gives the
fewest steps any learning rate needed at each B, and which learning rate that was.

    python -m launch.sweep --sweep=configs/sweeps/embedded_lr_grid.py --root=runs/embedded_lr_grid
    python -m analysis.collect --root=runs/embedded_lr_grid --out=runs/embedded_lr_grid/runs.csv
"""
from launch.spec import log_grid


def get_sweep():
    return {
        "config": "configs/digits_mlp.py",
        "overrides": {
            "num_epochs": 30,
            "lr_scaling": "none",          # learning_rate below is the lr actually used
            "target_accuracy": 0.95,
            "stop_at_target": True,
            "eval_every_steps": 10,
            "log_every_steps": 10,
            "checkpoint_every_steps": 500,
            "progress_bar": False,
            "tensorboard": False,
        },
        "axes": [
            {"batch_size": [16, 64, 256]},
            {"learning_rate": lambda t: log_grid(0.1 * t["batch_size"] / 32, num=5, factor=2.0)},
            {"seed": [0]},
        ],
    }
