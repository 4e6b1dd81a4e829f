"""ResNets (He et al. 2016): ImageNet stem (ResNet-18/50) and CIFAR stem (ResNet-20/44).

ImageNet stem: 7x7/2 conv, 3x3/2 max-pool, four stages (64..512 basic or 64..2048 bottleneck).
CIFAR stem (He et al. sec. 4.2): 3x3 conv with 16 filters, three stages of n basic blocks with
16/32/64 filters, depth 6n+2 (n=3: ResNet-20, n=7: ResNet-44); projection shortcuts (1x1 conv) where
the shape changes. The last norm scale of each residual branch starts at zero (Goyal et al. 2017).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from bsgap.models.layers import Conv, classifier_head, make_norm


class _Block(nn.Module):
    features: int
    strides: int
    bottleneck: bool
    normalization: str
    ghost_batch_size: int | None
    dtype: Any

    @nn.compact
    def __call__(self, x, train: bool):
        conv = lambda f, k, s=1: Conv(f, (k, k), strides=(s, s), padding="SAME",  # noqa: E731
                                         use_bias=self.normalization == "none", dtype=self.dtype)
        out_features = self.features * (4 if self.bottleneck else 1)
        if self.bottleneck:
            y = nn.relu(make_norm(self)(conv(self.features, 1)(x), train))
            y = nn.relu(make_norm(self)(conv(self.features, 3, self.strides)(y), train))
            y = conv(out_features, 1)(y)
        else:
            y = nn.relu(make_norm(self)(conv(self.features, 3, self.strides)(x), train))
            y = conv(out_features, 3)(y)
        y = make_norm(self)(y, train)
        if x.shape[-1] != out_features or self.strides != 1:
            x = make_norm(self)(conv(out_features, 1, self.strides)(x), train)
        return nn.relu(x + y)


class ResNet(nn.Module):
    num_classes: int
    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    widths: Sequence[int] = (64, 128, 256, 512)
    bottleneck: bool = False
    cifar_stem: bool = False
    normalization: str = "batch"
    ghost_batch_size: int | None = None
    dropout_rate: float = 0.0  # unused: kept so every model takes the same fields
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False, example_ids=None):
        x = x.astype(self.dtype)
        if x.ndim == 3:
            x = x[..., None]
        if self.cifar_stem:
            x = Conv(self.widths[0], (3, 3), padding="SAME", use_bias=False, dtype=self.dtype)(x)
            x = nn.relu(make_norm(self)(x, train))
        else:
            x = Conv(self.widths[0], (7, 7), strides=(2, 2), padding=[(3, 3), (3, 3)],
                        use_bias=False, dtype=self.dtype)(x)
            x = nn.relu(make_norm(self)(x, train))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        for stage, (blocks, width) in enumerate(zip(self.stage_sizes, self.widths)):
            for block in range(blocks):
                strides = 2 if stage > 0 and block == 0 else 1
                x = _Block(width, strides, self.bottleneck, self.normalization,
                           self.ghost_batch_size, self.dtype)(x, train)
        x = jnp.mean(x, axis=(1, 2))
        return classifier_head(self.num_classes)(x)
