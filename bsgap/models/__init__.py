"""Model registry: ``create_model(name, num_classes=..., normalization=..., ...)``.

Every model is a flax linen module called as ``model.apply(variables, x, train=..., example_ids=...)``
and returns float32 logits; ``normalization`` is 'none' | 'batch' | 'ghost' for all of them.
"""
from __future__ import annotations

import functools

import jax.numpy as jnp

from bsgap.choices import DTYPE_NAMES, MODEL_NAMES
from bsgap.models.caffenet import CaffeNet128
from bsgap.models.cnn import CNN1D, KeskarC1
from bsgap.models.mlp import MLP
from bsgap.models.norm import NORM_KINDS, check_norm_kind
from bsgap.models.resnet import ResNet

_CIFAR = dict(widths=(16, 32, 64), cifar_stem=True)
MODELS = {
    "mlp": MLP,
    "keskar_c1": KeskarC1,
    "cnn1d": CNN1D,
    "caffenet128": CaffeNet128,
    "resnet18": functools.partial(ResNet, stage_sizes=(2, 2, 2, 2)),
    "resnet50": functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), bottleneck=True),
    "resnet20": functools.partial(ResNet, stage_sizes=(3, 3, 3), **_CIFAR),
    "resnet44": functools.partial(ResNet, stage_sizes=(7, 7, 7), **_CIFAR),
}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# bsgap.choices lists the same names for validation without importing JAX.
assert tuple(MODELS) == MODEL_NAMES and tuple(DTYPES) == DTYPE_NAMES, "update bsgap/choices.py"


def create_model(name: str, *, num_classes: int, normalization: str = "batch",
                 ghost_batch_size: int | None = None, dropout_rate: float = 0.0,
                 dtype: str = "float32", **kwargs):
    """Build a registered model; ``kwargs`` are model-specific (e.g. ``hidden_sizes`` for mlp)."""
    if name not in MODELS:
        raise ValueError(f"model={name!r} is not registered; choose one of {sorted(MODELS)}")
    check_norm_kind(normalization)
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of {sorted(DTYPES)}")
    return MODELS[name](num_classes=num_classes, normalization=normalization,
                        ghost_batch_size=ghost_batch_size, dropout_rate=dropout_rate,
                        dtype=DTYPES[dtype], **kwargs)


__all__ = ["MODELS", "NORM_KINDS", "create_model"]
