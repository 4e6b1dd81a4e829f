"""The builder behind the advisor's ground-truth sweeps (advise_*.py; issue 15; not a sweep file
itself): study_steps_to_target.py's protocol -- the lr tuned per batch size on a x1/2, x1, x2
grid around ``centre_lr`` sqrt(B/32), a constant lr without warmup, each run stopping at its first
evaluation at or above the target -- for another config, on one device, about 4 evaluations per
epoch of the embedded 1,437 training images, one seed: 6 batch sizes x 3 lrs = 18 trials, plus
one lr below the grid (x1/4) for each batch size in ``extend_below``: where a sweep's fastest lr
was the grid's lowest, its steps to the target are only an upper bound until the next lower lr
is measured too.
"""
import math
import os

from launch.spec import log_grid, sweep_dict

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH_SIZES = [16, 32, 64, 128, 256, 512]
NUM_TRAIN_EXAMPLES = 1437   # the embedded digits' and digits32's training split


def steps_to_target_sweep(config: str, *, centre_lr: float, target_accuracy: float,
                          num_epochs: int | None = None, extend_below: tuple = ()) -> dict:
    """get_sweep()'s dict: ``config`` (a config file path) under the protocol above; the budget
    is the study's 40 epochs unless ``num_epochs`` is given; ``extend_below``: the batch sizes
    (of BATCH_SIZES) whose grid gets the lr x1/4 too."""
    unknown = sorted(set(extend_below) - set(BATCH_SIZES))
    if unknown:
        raise ValueError(f"extend_below={tuple(extend_below)!r}: {unknown} not among the "
                         f"sweep's batch sizes {BATCH_SIZES}")
    sweep = sweep_dict(os.path.join(HERE, "study_steps_to_target.py"))
    sweep["config"] = config
    overrides = {k: v for k, v in sweep["overrides"].items() if k != "ghost_batch_size"}
    extra = {} if num_epochs is None else {"num_epochs": num_epochs}
    sweep["overrides"] = {**overrides, "num_devices": 1, "warmup_epochs": 0.0, **extra,
                          "target_accuracy": target_accuracy, "checkpoint_every_steps": 100000,
                          "log_every_steps": 5}

    def learning_rates(trial: dict) -> list[float]:
        centre = centre_lr * math.sqrt(trial["batch_size"] / 32)
        below = [centre / 4] if trial["batch_size"] in extend_below else []
        return below + log_grid(centre, num=3, factor=2.0)

    sweep["axes"] = [
        {"batch_size": BATCH_SIZES,
         "eval_every_steps": [max(1, NUM_TRAIN_EXAMPLES // (4 * b)) for b in BATCH_SIZES]},
        {"learning_rate": learning_rates},
        {"seed": [0]},
    ]
    return sweep
