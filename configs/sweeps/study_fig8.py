"""The offline study, part 1 (Mishkin et al. 2017, Fig. 8, in miniature): accuracy vs batch size.

The default model (1-D CNN, ghost batch norm over groups of 16 at every batch size, so the BN
batch never changes with B) on MNIST-1D (4k train / 1k test, embedded), SGD momentum 0.9, weight
decay 5e-4, cosine decay, 2 epochs of warmup (Goyal et al.: from the unscaled lr), a fixed budget
of 20 epochs = 80k examples at every batch size (so steps are proportional to 1/B), lr 0.05 at
B=128 with the rule fixed / linear / sqrt: 8 batch sizes x 3 rules x 3 seeds = 72 trials.

    python -m launch.sweep --sweep=configs/sweeps/study_fig8.py --root=runs/study_fig8 --parallel=2
"""


def get_sweep():
    return {
        "config": "configs/default.py",
        "overrides": {
            "num_epochs": 20,
            "warmup_epochs": 2.0,
            "ghost_batch_size": 16,
            "target_accuracy": 0.9,
            "checkpoint_every_steps": 2000,
            "log_every_steps": 10,
            "progress_bar": False,
            "tensorboard": False,
        },
        "axes": {
            "batch_size": [16, 32, 64, 128, 256, 512, 1024, 2048],
            "lr_scaling": ["none", "linear", "sqrt"],
            "seed": [0, 1, 2],
        },
    }
