"""Shared pieces of the curvature and interpolation CLIs: the loss a run's model measures, example
subsets and batches, batch-norm statistics, result files that never overwrite, and exit-2 errors.

The measured loss is the mean softmax cross-entropy of the model's logits (`bsgap.step.
cross_entropy`, float32) over the examples -- without the run's label smoothing or weight decay,
and with dropout switched off (`dropout_rate=0`), so it is a deterministic function of the
parameters, which every curvature measurement needs.

Batch norm (`bn_mode`):
- 'eval': the model normalizes with the checkpoint's running averages (`train=False`); the loss of
  a batch does not depend on which other examples are in it.
- 'train': the model normalizes with batch statistics (`train=True`, `mutable=['batch_stats']`,
  the running-average update is discarded), in groups of the run's BN group
  (`resolved['layout']['bn_group']`): the ghost batch size for 'ghost', the microbatch for
  'batch' -- what the statistics were computed over during training. The model is rebuilt as
  ghost BN with that group for 'batch' runs too (same parameters), so a batch passed to it may
  hold several groups; every batch must then be a multiple of the group.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bsgap import atomic_file, logbook
from bsgap.models import create_model
from bsgap.step import cross_entropy

BN_MODES = ("eval", "train")
SUBSETS = ("first", "seeded")


class CliError(Exception):
    """A user error: printed as one paragraph to stderr, exit status 2, no traceback."""


def fail(prog: str, message: Any) -> int:
    """Print `prog: error: message` (one paragraph) to stderr and return exit status 2."""
    text = " ".join(str(message).split())
    print(f"{prog}: error: {text}", file=sys.stderr)
    return 2


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it is None (those say their default in words)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def description(doc: str) -> str:
    """A module docstring's first paragraph, for --help."""
    return " ".join(doc.split("\n\n")[0].split())


def quiet_libraries() -> None:
    """Silence absl INFO/WARNING logs (orbax warns about every item of a partial restore)."""
    from absl import logging

    logging.set_verbosity(logging.ERROR)


# ----------------------------------------------------------------------------- run directories
def read_run_config(workdir: str) -> dict:
    """config.json of a run directory ({'config', 'resolved', ...}); CliError when there is none."""
    path = os.path.join(workdir, logbook.CONFIG_FILE)
    if not os.path.isdir(workdir):
        raise CliError(f"run directory {workdir} does not exist")
    if not os.path.exists(path):
        runs = sorted(os.path.relpath(d, workdir) for d, _, files in os.walk(workdir)
                      if logbook.CONFIG_FILE in files)
        hint = ""
        if runs:
            shown = ", ".join(os.path.join(workdir, r) for r in runs[:3])
            hint = (f"; it holds {len(runs)} run director{'y' if len(runs) == 1 else 'ies'} (a "
                    f"sweep root?): pass one of them, e.g. {shown}"
                    + (", ..." if len(runs) > 3 else ""))
        raise CliError(f"{workdir} is not a bsgap run directory (no {logbook.CONFIG_FILE})"
                       + hint)
    return logbook.read_json(path)


def load_run_checked(workdir: str, step: int | None, *, with_data: bool,
                     data_dir: str | None = None):
    """`bsgap.restore.load_run` with its failures turned into CliError (one paragraph)."""
    from bsgap.restore import RunNotFoundError, load_run

    try:
        return load_run(workdir, step, with_data=with_data, data_dir=data_dir)
    except RunNotFoundError as err:
        raise CliError(str(err)) from None
    except ValueError as err:
        text = str(err).split("\n")[0]
        if "topology" in text.lower() or "devices" in text.lower():
            import jax

            saved = read_run_config(workdir).get("environment", {}).get("num_devices")
            raise CliError(
                f"cannot restore {workdir}: its checkpoints were saved on {saved} devices and "
                f"this process has {jax.device_count()}, which bsgap.restore does not handle yet "
                f"(orbax: {text}). On the CPU, run with XLA_FLAGS="
                f"--xla_force_host_platform_device_count={saved}") from None
        raise


def has_batch_norm(config) -> bool:
    return config["normalization"] != "none"


def analysis_model(config, resolved: dict, bn_mode: str, bn_group: int | None = None):
    """The run's model for measurements: dropout off; in bn_mode='train' BN statistics per group
    of `bn_group` examples (default: the run's BN group; ghost BN, also for 'batch' runs)."""
    group = bn_group or resolved["layout"]["bn_group"]
    normalization = config.normalization
    ghost = None
    if normalization == "ghost" or (normalization == "batch" and bn_mode == "train"):
        normalization, ghost = "ghost", group
    return create_model(config.model, num_classes=resolved["num_classes"],
                        normalization=normalization, ghost_batch_size=ghost, dropout_rate=0.0,
                        dtype=config.dtype, **dict(config.model_kwargs))


def bn_group_for(config, resolved: dict, bn_mode: str) -> int | None:
    """Examples per BN statistics group in the measured loss (None when it does not matter)."""
    if bn_mode == "train" and has_batch_norm(config):
        return int(resolved["layout"]["bn_group"])
    return None


def logits_fn(model, batch_stats: Any, train_bn: bool) -> Callable[[Any, Any], jax.Array]:
    """(params, images) -> logits, with batch statistics (train_bn) or running averages."""
    def logits(params, images):
        variables = {"params": params, "batch_stats": batch_stats}
        if train_bn:
            out, _ = model.apply(variables, images, train=True, mutable=["batch_stats"])
            return out
        return model.apply(variables, images, train=False)
    return logits


def loss_and_accuracy_fns(model, batch_stats: Any, num_classes: int, train_bn: bool):
    """loss_fn(params, batch) -> mean cross-entropy; accuracy_fn(params, batch) -> mean top-1."""
    logits = logits_fn(model, batch_stats, train_bn)

    def loss_fn(params, batch):
        return cross_entropy(logits(params, batch["image"]), batch["label"], num_classes).mean()

    def accuracy_fn(params, batch):
        predicted = jnp.argmax(logits(params, batch["image"]), axis=-1)
        return jnp.mean((predicted == batch["label"]).astype(jnp.float32))
    return loss_fn, accuracy_fn


def variables_loss_and_accuracy_fns(model, num_classes: int):
    """Eval-mode loss / accuracy of a {'params', 'batch_stats'} pytree (BN statistics included,
    so a line between two variable sets interpolates the running averages too)."""
    def logits(variables, images):
        return model.apply(variables, images, train=False)

    def loss_fn(variables, batch):
        return cross_entropy(logits(variables, batch["image"]), batch["label"], num_classes).mean()

    def accuracy_fn(variables, batch):
        predicted = jnp.argmax(logits(variables, batch["image"]), axis=-1)
        return jnp.mean((predicted == batch["label"]).astype(jnp.float32))
    return loss_fn, accuracy_fn


# ----------------------------------------------------------------------------- examples
def split_arrays(data, split: str) -> dict:
    """{'image', 'label'} numpy arrays of a loaded dataset's 'train' or 'eval' split."""
    arrays = getattr(getattr(data, split), "arrays", None)
    if arrays is None or getattr(data, "preprocess", None) is not None:
        raise CliError(
            f"dataset {data.name!r} is not held in memory as final arrays (it is streamed, "
            "augmented or resized); the analysis CLIs read in-memory splits only")
    return arrays


def select_examples(arrays: dict, num_examples: int, subset: str, seed: int,
                    multiple_of: int | None = None) -> tuple[dict, dict]:
    """The first / a seeded random `num_examples` examples (0 = all; more than the split = all),
    rounded down to a multiple of `multiple_of` when given.

    Returns (arrays, info) with info = {'subset', 'seed', 'num_examples_requested',
    'num_examples', 'num_available', 'indices_sha256'} (the hash of the int64 indices in order).
    """
    available = int(arrays["label"].shape[0])
    count = available if num_examples == 0 else min(int(num_examples), available)
    if multiple_of:
        count -= count % multiple_of
        if count == 0:
            raise CliError(f"{min(num_examples or available, available)} examples hold no whole "
                           f"BN group of {multiple_of}; use more examples or --bn_mode=eval")
    if subset == "first":
        indices = np.arange(count, dtype=np.int64)
    else:
        indices = np.random.default_rng(seed).permutation(available)[:count].astype(np.int64)
    info = {"subset": subset, "seed": int(seed) if subset == "seeded" else None,
            "num_examples_requested": int(num_examples), "num_examples": count,
            "num_available": available,
            "indices_sha256": hashlib.sha256(indices.tobytes()).hexdigest()}
    return {k: np.asarray(v)[indices] for k, v in arrays.items()}, info


def make_batches(arrays: dict, batch_size: int) -> list[dict]:
    """Consecutive batches of `batch_size` examples (the last one may be smaller)."""
    n = int(arrays["label"].shape[0])
    return [{"image": arrays["image"][s:s + batch_size], "label": arrays["label"][s:s + batch_size]}
            for s in range(0, n, batch_size)]


def weighted_mean(fn: Callable[[Any], Any], batches: Sequence[dict]) -> float:
    """sum_b n_b fn(batch_b) / sum_b n_b, accumulated in float64 on the host."""
    total, count = 0.0, 0
    for batch in batches:
        n = int(batch["label"].shape[0])
        total += float(fn(batch)) * n
        count += n
    return total / count


# ----------------------------------------------------------------------------- BN statistics
def batch_statistics_fn(model) -> Callable[[Any, Any, Any], Any]:
    """Jitted (params, batch_stats_like, images) -> the batch statistics a train-mode call computes.

    A train-mode call updates each running average r to m r + (1 - m) s with s the batch (mean over
    ghost groups) statistic. Calling it once from r = 0 and once from r = 1 gives u0 = (1 - m) s and
    u1 = m + (1 - m) s, so s = u0 / (1 - (u1 - u0)) whatever the layer's momentum m.
    """
    def stats(params, like, images):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, like)
        ones = jax.tree_util.tree_map(jnp.ones_like, like)
        _, u0 = model.apply({"params": params, "batch_stats": zeros}, images, train=True,
                            mutable=["batch_stats"])
        _, u1 = model.apply({"params": params, "batch_stats": ones}, images, train=True,
                            mutable=["batch_stats"])
        return jax.tree_util.tree_map(lambda a, b: a / (1.0 - (b - a)), u0["batch_stats"],
                                      u1["batch_stats"])
    return jax.jit(stats)


def recompute_batch_stats(stats_fn, params: Any, like: Any, batches: Sequence[dict]) -> Any:
    """Mean over `batches` (weighted by size) of the batch statistics at `params`."""
    weights = np.array([b["label"].shape[0] for b in batches], np.float64)
    weights /= weights.sum()
    total = None
    for weight, batch in zip(weights, batches):
        stats = stats_fn(params, like, jnp.asarray(batch["image"]))
        stats = jax.tree_util.tree_map(lambda s, w=weight: s * jnp.float32(w), stats)
        total = stats if total is None else jax.tree_util.tree_map(jnp.add, total, stats)
    return total


# ----------------------------------------------------------------------------- result files
def claim_result_path(directory: str, stem: str, companions: Sequence[str] = (".png",)) -> str:
    """Create and return a new `directory/stem[-n].json` that did not exist before.

    Never overwrites: if `stem.json` (or a companion such as `stem.png`) exists, tries `stem-1`,
    `stem-2`, ... The JSON file is created with O_EXCL, so two processes never get the same name.
    """
    os.makedirs(directory, exist_ok=True)
    for n in range(10_000):
        name = stem if n == 0 else f"{stem}-{n}"
        path = os.path.join(directory, name + ".json")
        if any(os.path.exists(os.path.join(directory, name + ext)) for ext in companions):
            continue
        try:
            with open(path, "x"):
                pass
        except FileExistsError:
            continue
        return path
    raise CliError(f"{directory} already holds 10,000 results named {stem}-*.json")


def write_json(path: str, record: dict) -> None:
    """Write `record` to `path` atomically (temporary file + rename)."""
    with atomic_file.replacing(path) as f:
        json.dump(record, f, indent=1, sort_keys=False, allow_nan=True)
        f.write("\n")


def environment() -> dict:
    import flax

    device = jax.devices()[0]
    return {"jax": jax.__version__, "flax": flax.__version__, "platform": device.platform,
            "device_kind": device.device_kind, "num_devices": jax.device_count()}
