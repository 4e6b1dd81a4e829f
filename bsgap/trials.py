"""Several trials of one batch size in one compiled program (``--config.trials``).

``config.trials`` is a tuple of dicts of per-trial overrides, e.g.
``--config.trials="({'learning_rate': 0.05, 'seed': 0}, {'learning_rate': 0.1, 'seed': 1})"``.
Only ``TRIAL_FIELDS`` may be overridden (everything else defines the shared program). Trial ``k``
runs in ``WORKDIR/<name>``, where ``name`` is the dict's ``'name'`` entry or is made from the
overrides (``learning_rate=0.05,seed=0`` -> ``learning_rate0.05-seed0``), and its config.json holds
the base config with its overrides applied and ``trials=None``: exactly the config.json of the
same trial run alone, so sweeps and analysis treat both the same.
"""
from __future__ import annotations

import copy
import os
import re

from bsgap.choices import CONV_MODELS
from bsgap.run_config import ConfigError
from bsgap.trial_fields import TRIAL_FIELDS


def trial_name(overrides: dict) -> str:
    if "name" in overrides:
        return str(overrides["name"])
    parts = [f"{k}{v}" for k, v in sorted(overrides.items())]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "-".join(parts)) or "trial"


def expand_trials(config, root: str) -> list[tuple]:
    """(config, workdir) per trial of ``config.trials``."""
    trials = config.get("trials")
    if not isinstance(trials, (list, tuple)) or not trials:
        raise ConfigError(f"trials={trials!r} must be a non-empty tuple of dicts of overrides")
    specs, names = [], set()
    for i, overrides in enumerate(trials):
        if not isinstance(overrides, dict):
            raise ConfigError(f"trials[{i}]={overrides!r} must be a dict of overrides")
        bad = sorted(set(overrides) - set(TRIAL_FIELDS) - {"name"})
        if bad:
            raise ConfigError(f"trials[{i}] overrides {bad}; trials in one program may differ "
                              f"only in {TRIAL_FIELDS}")
        trial = copy.deepcopy(config)
        trial.trials = None
        for key, value in overrides.items():
            if key != "name":
                trial[key] = value
        name = trial_name(overrides)
        if name in names:
            raise ConfigError(f"two trials are both named {name!r}; give them distinct 'name's")
        names.add(name)
        specs.append((trial, os.path.join(root, name)))
    return specs


TRIALS_LOOPS = ("auto", "vmap", "map")


def choose_trials_loop(loop: str, platform: str, num_trials: int = 2, *,
                       model: str) -> tuple[str, str]:
    """How one program steps its trials, and why: ``(vmap | map, reason)`` (the reason goes to
    config.json's ``environment.trials_loop_reason``).

    ``vmap`` batches the trials into one computation; ``map`` loops over them (``lax.map``).
    ``auto``, for several trials:
      * CPU: ``map``. Measured on 2 CPU cores with the fast step (BENCHMARKS.md, 2026-12-01):
        vmapping the 1-D CNN over 16 trials made each example 2.4-2.8x dearer than the looped
        program (XLA:CPU batches the trials' different kernels as grouped convolutions: 1,455 vs
        4,090 steady examples/s per trial), so ``map`` gives 5.1x the trials per hour of one-by-one
        runs and ``vmap`` 2.7x (both share start-up, compilation and evaluation).
      * GPU and a model with convolutions (``CONV_MODELS``): ``map``. The vmapped trials'
        convolutions become grouped convolutions, whose backward pass cuDNN runs about as slowly
        as the ungrouped ones (jax-ml/jax#13800), so vmap would not pay; not measured here, and
        until a measurement says otherwise it is not chosen.
      * otherwise (TPU; the MLP on a GPU): ``vmap``, which fills a device a small model leaves
        idle (not measured against ``map`` on an accelerator).
    One trial is never vmapped (``over_trials`` indexes it out), whatever the loop.
    """
    if loop not in TRIALS_LOOPS:
        raise ConfigError(f"trials_loop={loop!r} is not one of {TRIALS_LOOPS}")
    if loop != "auto":
        return loop, f"trials_loop={loop!r} was asked for"
    if num_trials == 1:
        return "vmap", "one trial: stepped alone (indexed out of the trial axis)"
    if platform == "cpu":
        return "map", ("auto on the CPU: vmapped trials' convolutions run as grouped "
                       "convolutions, measured 2.4-2.8x slower per example (BENCHMARKS.md)")
    if platform == "gpu" and model in CONV_MODELS:
        return "map", (f"auto on a GPU with a convolutional model ({model}): vmapped trials become "
                       "grouped convolutions, whose backward pass cuDNN runs about as slowly as "
                       "ungrouped (jax-ml/jax#13800); vmap not chosen until measured to pay")
    return "vmap", (f"auto on {platform} with {model}: vmap fills the device (not measured "
                    "against map here)")


def over_trials(fn, loop: str, shared_batch: bool):
    """``fn(state, batch)`` for every trial of a leading trial axis of ``state`` (and of ``batch``
    unless ``shared_batch``), stacked on that axis; ``loop`` is 'vmap' or 'map'."""
    import jax

    def single(state, batch):
        """One trial: index it out and back in, so its program is exactly the plain step (vmap
        over an axis of 1 still goes through the convolutions' batching rule)."""
        squeeze = lambda t: jax.tree_util.tree_map(lambda x: x[0], t)  # noqa: E731
        out = fn(squeeze(state), batch if shared_batch else squeeze(batch))
        return jax.tree_util.tree_map(lambda x: x[None], out)

    def choose(by_loop):
        def step(state, batch):
            if jax.tree_util.tree_leaves(state)[0].shape[0] == 1:
                return single(state, batch)
            return by_loop(state, batch)
        return step

    if loop == "vmap":
        return choose(jax.vmap(fn, in_axes=(0, None if shared_batch else 0)))
    if shared_batch:
        return choose(lambda state, batch: jax.lax.map(lambda s: fn(s, batch), state))
    return choose(lambda state, batch: jax.lax.map(lambda sb: fn(*sb), (state, batch)))


_TAKE = []


def take_trial(state, k):
    """Trial ``k``'s slice of a stacked state (one jitted gather for every leaf: leaf by leaf,
    each shape compiles a gather of its own). JAX is imported on first use, not with the module."""
    if not _TAKE:
        import jax

        _TAKE.append(jax.jit(lambda s, i: jax.tree_util.tree_map(lambda x: x[i], s)))
    return _TAKE[0](state, k)
