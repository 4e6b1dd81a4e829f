"""Multi-layer perceptron over flattened inputs: (dense -> norm -> relu -> dropout) x depth -> dense."""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from bsgap.models.layers import classifier_head, default_example_ids, make_norm
from bsgap.models.norm import PerExampleDropout


class MLP(nn.Module):
    num_classes: int
    hidden_sizes: Sequence[int] = (256, 256)
    normalization: str = "none"
    ghost_batch_size: int | None = None
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False, example_ids=None):
        ids = default_example_ids(x, example_ids)
        x = x.reshape((x.shape[0], -1)).astype(self.dtype)
        for width in self.hidden_sizes:
            x = nn.Dense(width, dtype=self.dtype, use_bias=self.normalization == "none")(x)
            x = make_norm(self)(x, train)
            x = nn.relu(x)
            x = PerExampleDropout(self.dropout_rate)(x, train, ids)
        return classifier_head(self.num_classes)(x)
