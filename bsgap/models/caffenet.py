"""CaffeNet-128 as in Mishkin et al. 2017 ("Systematic evaluation of CNN advances on ImageNet").

Their baseline: CaffeNet on 128x128 inputs, LRN removed, fc6/fc7 width 2048, dropout 0.5:
conv1 96@11x11/4 -> pool 3/2 -> conv2 256@5x5 (pad 2) -> pool 3/2 -> conv3 384@3x3 -> conv4 384@3x3
-> conv5 256@3x3 -> pool 3/2 -> fc6 2048 -> fc7 2048 -> fc8 classes. Caffe's conv2/4/5 groups are not
used (single-device modern CaffeNet). Pooling uses Caffe's ceil mode, so at 128x128 the feature maps
are 30 -> 15 -> 15 -> 7 -> 7 -> 3 and fc6 sees 3x3x256, as in their Caffe models. The norm layer after each conv/fc is configurable; the paper's
default is none, and 'batch'/'ghost' give their BN variant.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from bsgap.models.layers import Conv, classifier_head, default_example_ids, make_norm
from bsgap.models.norm import PerExampleDropout

_CONVS = ((96, 11, 4, "VALID", True), (256, 5, 1, [(2, 2), (2, 2)], True),
          (384, 3, 1, [(1, 1), (1, 1)], False), (384, 3, 1, [(1, 1), (1, 1)], False),
          (256, 3, 1, [(1, 1), (1, 1)], True))


def caffe_max_pool(x, window: int = 3, stride: int = 2):
    """Max-pool with Caffe's output size ceil((H - window) / stride) + 1 (extra -inf padding)."""
    pads = []
    for size in x.shape[1:3]:
        out = -(-(size - window) // stride) + 1
        pads.append((0, max(0, (out - 1) * stride + window - size)))
    return nn.max_pool(x, (window, window), strides=(stride, stride), padding=pads)


class CaffeNet128(nn.Module):
    num_classes: int
    fc_width: int = 2048
    normalization: str = "none"
    ghost_batch_size: int | None = None
    dropout_rate: float = 0.5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False, example_ids=None):
        ids = default_example_ids(x, example_ids)
        x = x.astype(self.dtype)
        for features, kernel, stride, padding, pool in _CONVS:
            x = Conv(features, (kernel, kernel), strides=(stride, stride), padding=padding,
                        use_bias=self.normalization == "none", dtype=self.dtype)(x)
            x = nn.relu(make_norm(self)(x, train))
            if pool:
                x = caffe_max_pool(x)
        x = x.reshape((x.shape[0], -1))
        for _ in range(2):
            x = nn.Dense(self.fc_width, use_bias=self.normalization == "none", dtype=self.dtype)(x)
            x = nn.relu(make_norm(self)(x, train))
            x = PerExampleDropout(self.dropout_rate)(x, train, ids)
        return classifier_head(self.num_classes)(x)
