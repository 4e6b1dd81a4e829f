"""Shared fields of every model: classes, normalization, dropout and compute dtype."""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from bsgap.models.norm import Norm


def default_example_ids(x: jnp.ndarray, example_ids):
    """Positions of the examples in the global batch; ``arange`` when the caller has none."""
    return jnp.arange(x.shape[0], dtype=jnp.int32) if example_ids is None else example_ids


def make_norm(model: Any) -> Norm:
    """A norm layer configured from a model's ``normalization`` / ``ghost_batch_size`` fields."""
    return Norm(kind=model.normalization, ghost_batch_size=model.ghost_batch_size,
                dtype=model.dtype)
