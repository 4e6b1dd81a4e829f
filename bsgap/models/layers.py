"""Shared parts of every model: example ids, the norm layer from a model's fields, ``Conv`` and the
classifier head."""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from bsgap.models.conv_grad import conv_general_dilated
from bsgap.models.norm import Norm

# flax's Conv (same parameters and names) whose gradient convolutions stay fast inside loops on the
# CPU when the train step asks for it (bsgap/models/conv_grad.py).
Conv = functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated)


def default_example_ids(x: jnp.ndarray, example_ids):
    """Positions of the examples in the global batch; ``arange`` when the caller has none."""
    return jnp.arange(x.shape[0], dtype=jnp.int32) if example_ids is None else example_ids


def make_norm(model: Any) -> Norm:
    """A norm layer configured from a model's ``normalization`` / ``ghost_batch_size`` fields."""
    return Norm(kind=model.normalization, ghost_batch_size=model.ghost_batch_size,
                dtype=model.dtype)


def classifier_head(num_classes: int) -> nn.Dense:
    """The last layer: logits computed in float32 whatever the model's compute dtype (a bfloat16
    input is promoted; the parameters are float32 anyway), so the loss and accuracy never see
    logits rounded to 8 bits of mantissa. A plain ``nn.Dense`` made in the caller's scope, so its
    parameters keep their name (``Dense_<n>``) and checkpoints stay compatible. Its float32 matmul
    follows ``jax_default_matmul_precision`` (config ``matmul_precision``) like every other."""
    return nn.Dense(num_classes, dtype=jnp.float32)
