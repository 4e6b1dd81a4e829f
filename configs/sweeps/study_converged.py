"""The offline study, part 4: large batches trained to convergence (Keskar et al. 2017's setting).

In study_fig8.py the large batches run out of steps (B=2048 gets 40 steps in 20 epochs) and stop
far from a minimum, so their lower accuracy says nothing about sharp vs flat minima. Here B=2048
trains for 500 epochs (977 steps, more than B=128's 625 in study_fig8) with everything else as in
study_fig8.py: lr 0.05 fixed (the same lr as the small batches, as Keskar et al. compare) or
scaled linearly (0.8), 3 seeds each: 6 trials. Compare with study_fig8's bs16/bs128 runs.

    python -m launch.sweep --sweep=configs/sweeps/study_converged.py \
        --root=runs/study_converged --parallel=2
"""
import os

from launch.spec import sweep_dict

HERE = os.path.dirname(os.path.abspath(__file__))


def get_sweep():
    sweep = sweep_dict(os.path.join(HERE, "study_fig8.py"))
    sweep["overrides"] = {**sweep["overrides"], "num_epochs": 500, "warmup_epochs": 50.0,
                          "log_every_steps": 10, "eval_every_steps": 50}
    sweep["names"] = {"num_epochs": "ep"}
    sweep["axes"] = [
        {"batch_size": [2048]},
        {"num_epochs": [500]},
        {"lr_scaling": ["none", "linear"]},
        {"seed": [0, 1, 2]},
    ]
    return sweep
