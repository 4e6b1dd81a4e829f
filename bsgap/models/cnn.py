"""Small CNNs: Keskar et al. (2017) C1-like 2-D CNN, and a 1-D CNN for MNIST-1D signals.

``KeskarC1``: conv-conv (each conv -> norm -> relu -> max-pool) then fc-fc with dropout, the shape of
Keskar's C1 network (their Table 1; C1 is the AlexNet-like CIFAR net) scaled by ``width``.
``CNN1D``: three 1-D conv layers (stride 2) and a dense head, the model of the MNIST-1D paper
(Greydanus 2020) with a configurable norm layer.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from bsgap.models.layers import Conv, classifier_head, default_example_ids, make_norm
from bsgap.models.norm import PerExampleDropout


class KeskarC1(nn.Module):
    num_classes: int
    width: int = 64
    fc_width: int = 384
    normalization: str = "batch"
    ghost_batch_size: int | None = None
    dropout_rate: float = 0.5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False, example_ids=None):
        ids = default_example_ids(x, example_ids)
        x = x.astype(self.dtype)
        if x.ndim == 3:
            x = x[..., None]
        pool = 3 if x.shape[1] >= 16 else 2
        for _ in range(2):
            x = Conv(self.width, (5, 5), padding="SAME", use_bias=False, dtype=self.dtype)(x)
            x = nn.relu(make_norm(self)(x, train))
            x = nn.max_pool(x, (pool, pool), strides=(2, 2), padding="SAME")
        x = x.reshape((x.shape[0], -1))
        for width in (self.fc_width, self.fc_width // 2):
            x = nn.Dense(width, use_bias=False, dtype=self.dtype)(x)
            x = nn.relu(make_norm(self)(x, train))
            x = PerExampleDropout(self.dropout_rate)(x, train, ids)
        return classifier_head(self.num_classes)(x)


class CNN1D(nn.Module):
    num_classes: int
    channels: int = 32
    normalization: str = "batch"
    ghost_batch_size: int | None = None
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False, example_ids=None):
        ids = default_example_ids(x, example_ids)
        x = x.astype(self.dtype)
        if x.ndim == 2:
            x = x[..., None]  # (batch, length) -> (batch, length, 1 channel)
        for _ in range(3):
            x = Conv(self.channels, (5,), strides=(2,), padding="SAME", use_bias=False,
                        dtype=self.dtype)(x)
            x = nn.relu(make_norm(self)(x, train))
        x = x.reshape((x.shape[0], -1))
        x = PerExampleDropout(self.dropout_rate)(x, train, ids)
        return classifier_head(self.num_classes)(x)
