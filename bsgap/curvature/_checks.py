"""Argument checks shared by the curvature facade.

Every public function validates its arguments with these helpers *before* it ravels parameters,
moves batches to the device or compiles anything, so a typo costs milliseconds, not a compile.
Each error names the bad value and what is allowed.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

BN_MODES = ("train", "eval")


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    """Raise ValueError unless `value` is one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {tuple(allowed)!r}")


def check_bn_mode(bn_mode: str | None) -> None:
    """bn_mode is recorded in every result: None (no batch norm / not stated), 'train' or 'eval'."""
    if bn_mode is not None and bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode={bn_mode!r} is not allowed; choose None or one of {BN_MODES!r}")


def check_int(name: str, value: Any, minimum: int) -> None:
    """Raise ValueError unless `value` is an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")


def check_positive(name: str, value: Any) -> None:
    """Raise ValueError unless `value` is a finite real number > 0."""
    if isinstance(value, bool) or not np.isscalar(value) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a finite number > 0")


def check_nonnegative(name: str, value: Any) -> None:
    """Raise ValueError unless `value` is a finite real number >= 0."""
    if isinstance(value, bool) or not np.isscalar(value) or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name}={value!r} must be a finite number >= 0")


def batch_size(batch: Any) -> int:
    """Number of examples in a batch: the leading dimension of its first leaf."""
    leaves = jax.tree_util.tree_leaves(batch)
    if not leaves:
        raise ValueError("a batch has no array leaves; a batch is a pytree of arrays")
    shape = np.shape(leaves[0])
    if len(shape) == 0:
        raise ValueError("a batch leaf is a scalar; leaves need a leading example axis")
    return int(shape[0])


def check_batches(batches: Any) -> list[Any]:
    """Return `batches` as a list after checking it is a non-empty sequence of batches.

    Every leaf of a batch must share the batch's leading (example) dimension, which must be >= 1.
    """
    if batches is None or isinstance(batches, (str, bytes)):
        raise ValueError(f"batches={batches!r} must be a non-empty sequence of batches")
    try:
        batch_list = list(batches)
    except TypeError as err:
        raise ValueError(f"batches of type {type(batches).__name__} is not a sequence") from err
    if not batch_list:
        raise ValueError("batches is empty; pass at least one batch (a pytree of arrays)")
    for index, batch in enumerate(batch_list):
        size = batch_size(batch)
        if size < 1:
            raise ValueError(f"batch {index} has size {size}; every batch needs >= 1 example")
        for leaf in jax.tree_util.tree_leaves(batch):
            if np.ndim(leaf) == 0 or np.shape(leaf)[0] != size:
                raise ValueError(
                    f"batch {index}: leaf of shape {np.shape(leaf)} does not share the "
                    f"leading example dimension {size} of the batch's first leaf")
    return batch_list


def check_params(params: Any) -> None:
    """Raise ValueError when the parameter pytree has no array leaves."""
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves or sum(int(np.size(leaf)) for leaf in leaves) == 0:
        raise ValueError("params has no parameters (an empty pytree or only empty arrays)")
