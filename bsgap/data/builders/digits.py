"""scikit-learn's bundled 8x8 handwritten digits (UCI optdigits test set) as a real TFDS dataset.

1,797 images of 8x8 pixels with values 0..16, stored as float32 in [0, 1] (divided by 16). The
split is fixed: a stratified 80/20 split with ``random_state=0`` (1,437 train / 360 test).
Nothing is downloaded: the data ships inside scikit-learn.
"""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds


class SklearnDigits(tfds.core.GeneratorBasedBuilder):
    """8x8 digits from scikit-learn, 'image' float32 (8, 8, 1) in [0, 1]."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Stratified 80/20 split of sklearn.datasets.load_digits."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="scikit-learn's 8x8 digits, scaled to [0, 1].",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.float32),
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
        images = (digits.images / 16.0).astype(np.float32)[..., None]
        x_train, x_test, y_train, y_test = train_test_split(
            images, digits.target, test_size=0.2, stratify=digits.target, random_state=0)
        return {"train": self._generate_examples(x_train, y_train),
                "test": self._generate_examples(x_test, y_test)}

    def _generate_examples(self, images, labels):
        for index, (image, label) in enumerate(zip(images, labels)):
            yield index, {"image": image, "label": int(label)}
