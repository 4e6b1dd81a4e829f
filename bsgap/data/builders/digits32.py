"""scikit-learn's 8x8 digits as 32x32 RGB uint8 images: a CIFAR-shaped dataset built offline.

Each digit is upsampled bilinearly to 32x32 and painted with a random foreground colour on a
random background colour (fixed generator seed), then stored PNG-encoded like CIFAR-10 in TFDS
(``tfds.features.Image(shape=(32, 32, 3))``). It exercises the real image path -- uint8 decode,
the cifar/inception/mishkin presets, caching or streaming -- where no download is possible. The
split is the one of ``sklearn_digits``: stratified 80/20 with ``random_state=0`` (1,437 / 360).
"""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

SIDE = 32


def upsample(images: np.ndarray, side: int = SIDE) -> np.ndarray:
    """Bilinear (align-corners) upsampling of (N, h, w) images to (N, side, side)."""
    n, h, w = images.shape
    ys, xs = np.linspace(0, h - 1, side), np.linspace(0, w - 1, side)
    y0, x0 = np.floor(ys).astype(int).clip(0, h - 2), np.floor(xs).astype(int).clip(0, w - 2)
    fy, fx = (ys - y0)[None, :, None], (xs - x0)[None, None, :]
    top = images[:, y0][:, :, x0] * (1 - fx) + images[:, y0][:, :, x0 + 1] * fx
    bottom = images[:, y0 + 1][:, :, x0] * (1 - fx) + images[:, y0 + 1][:, :, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def colour_digits(intensity: np.ndarray, seed: int = 0) -> np.ndarray:
    """uint8 (N, S, S, 3): background + intensity x (foreground - background), random colours."""
    rng = np.random.default_rng(seed)
    n = intensity.shape[0]
    background = rng.uniform(0, 255, (n, 1, 1, 3))
    foreground = rng.uniform(0, 255, (n, 1, 1, 3))
    image = background + intensity[..., None] * (foreground - background)
    return np.rint(image).clip(0, 255).astype(np.uint8)


class Digits32(tfds.core.GeneratorBasedBuilder):
    """32x32x3 uint8 coloured digits, 'image' PNG-encoded, 'label' 0..9."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "sklearn digits, upsampled to 32x32 and coloured (seed 0)."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="scikit-learn's digits as 32x32 RGB images (a CIFAR-shaped stand-in).",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(SIDE, SIDE, 3)),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html",
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = colour_digits(upsample(digits.images / 16.0))
        x_train, x_test, y_train, y_test = train_test_split(
            images, digits.target, test_size=0.2, stratify=digits.target, random_state=0)
        return {"train": self._generate_examples(x_train, y_train),
                "test": self._generate_examples(x_test, y_test)}

    def _generate_examples(self, images, labels):
        for index, (image, label) in enumerate(zip(images, labels)):
            yield index, {"image": image, "label": int(label)}
