"""Figure-8 style on a laptop: batch size x lr rule x seed, at a fixed budget of examples.

An MLP on the embedded 8x8 digits (configs/digits_mlp.py: 1,437 train / 360 test examples, lr 0.1
at batch 32, momentum 0.9, cosine decay) for 20 epochs at every batch size, with the learning rate
fixed (none), scaled linearly or by the square root of B/32 (Mishkin et al. 2017, sec. 3.7):
3 x 3 x 2 = 18 trials, ~14 s of CPU time each (mostly interpreter, TensorFlow and JAX start-up);
launch/README.md has the measured wall time.

    python -m launch.sweep --sweep=configs/sweeps/embedded_bs_lr.py --root=runs/embedded_bs_lr
    python -m analysis.collect --root=runs/embedded_bs_lr --out=runs/embedded_bs_lr/runs.csv
"""


def get_sweep():
    return {
        "config": "configs/digits_mlp.py",
        "overrides": {
            "num_epochs": 20,
            "target_accuracy": 0.95,
            "checkpoint_every_steps": 500,
            "progress_bar": False,
            "tensorboard": False,
        },
        "axes": {
            "batch_size": [16, 64, 256],
            "lr_scaling": ["none", "linear", "sqrt"],
            "seed": [0, 1],
        },
    }
