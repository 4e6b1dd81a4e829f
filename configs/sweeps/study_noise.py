"""The offline study, part 3: the online gradient noise scale B_simple over training.

study_fig8.py's fixed-lr runs (lr 0.05 at every batch size, seed 0) again, each global batch split
into two accumulation microbatches of B/2 on one device: the trainer's two-batch estimator
(McCandlish et al. 2018, App. A.1) needs at least two gradients per step and logs B_simple every
`log_every_steps`. Accumulation changes nothing but speed (tests/test_invariance.py), so these
runs also repeat study_fig8's bs*-none-s0 at study scale. B=16 is left out: its microbatch of 8
would be smaller than the ghost batch of 16.

    python -m launch.sweep --sweep=configs/sweeps/study_noise.py --root=runs/study_noise --parallel=2
"""
import os

from launch.spec import sweep_dict

HERE = os.path.dirname(os.path.abspath(__file__))


def get_sweep():
    sweep = sweep_dict(os.path.join(HERE, "study_fig8.py"))
    sweep["names"] = {"microbatch_size": "mb"}
    sweep["axes"] = [
        {"batch_size": [32, 64, 128, 256, 512, 1024, 2048]},
        {"microbatch_size": lambda t: [t["batch_size"] // 2]},
        {"lr_scaling": ["none"]},
        {"seed": [0]},
    ]
    return sweep
