"""MNIST-1D (Greydanus 2020) as a real TFDS dataset, generated locally -- no download.

The ``mnist1d`` package synthesizes the signals from its own ten digit templates
(``make_dataset(get_dataset_args())``); its ``get_dataset`` would first try a download, so it is never
called. Builder configs set the number of generated samples (80% train, 20% test, the package's own
split), so batch-size sweeps up to 4096 have enough steps per epoch:

    mnist1d/small : 4,000 train / 1,000 test (the paper's default size)
    mnist1d/large : 40,000 train / 10,000 test
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

SIGNAL_LENGTH = 40


@dataclasses.dataclass
class Mnist1dConfig(tfds.core.BuilderConfig):
    num_samples: int = 5000
    generator_seed: int = 42


class Mnist1d(tfds.core.GeneratorBasedBuilder):
    """MNIST-1D: 40-sample 1-D signals of the digits 0-9 (float32 'image' of shape (40,))."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Generated locally with the mnist1d package."}
    BUILDER_CONFIGS = [
        Mnist1dConfig(name="small", description="4k train / 1k test", num_samples=5000),
        Mnist1dConfig(name="large", description="40k train / 10k test", num_samples=50000),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="MNIST-1D (Greydanus 2020), generated locally from the package templates.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(SIGNAL_LENGTH,), dtype=np.float32),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
            supervised_keys=("image", "label"),
            homepage="https://github.com/greydanus/mnist1d",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples = self.builder_config.num_samples
        args.seed = self.builder_config.generator_seed
        data = make_dataset(args)
        return {
            "train": self._generate_examples(data["x"], data["y"]),
            "test": self._generate_examples(data["x_test"], data["y_test"]),
        }

    def _generate_examples(self, signals, labels):
        for index, (signal, label) in enumerate(zip(signals, labels)):
            yield index, {"image": np.asarray(signal, np.float32), "label": int(label)}
