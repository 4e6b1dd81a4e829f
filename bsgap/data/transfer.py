"""How images travel from the host to the devices (config ``image_transfer``), and the pixel
normalization the devices then apply inside the jitted train and eval steps.

  float32  the host scales the pixels to [0, 1] (uint8 / 255) and standardizes them per channel,
           x = (x - pixel_mean) / pixel_std, and sends 4 bytes a value (the path before issue 16:
           ~600 KB per 224 x 224 x 3 image);
  uint8    the host sends the pixels as the augmentation preset leaves them, 1 byte a value, and
           ``ImageTransfer.to_model_input`` does the same conversion, scaling and
           standardization (same operations, same order) on the device, first thing in the step.
           Presets that resample (mishkin, inception, or an ``image_size`` other than the
           images') make float pixels: those are rounded to the nearest integer (ties to even)
           and clipped to [0, 255] on the host, a change of at most 0.5/255 before the
           standardization (big_vision's ``resize`` also casts back to uint8, truncating), which
           config.json records (``environment.image_transfer.rounded``);
  auto     uint8 where that changes no pixel (uint8 images and a preset that does not resample:
           crops, flips, padding), else float32. Float datasets (MNIST-1D, the 8x8 digits) are
           always sent as float32.

Device and host normalization agree to float32 rounding, not bitwise: XLA turns the division by
255 into a multiplication by its reciprocal (126 of the 256 values differ by one ulp; measured on
the CPU, jax 0.10.2), so the standardized values differ by at most a few 1e-7
(tests/test_image_transfer.py). Every other consumer of batches (analysis, curvature, tests) reads
the host-normalized arrays as before; only the trainer's step asks for the transfer form
(``wire=True`` in ``bsgap.data.Dataset``), and ``to_model_input`` refuses float images where it
expects uint8 ones, so a batch is never normalized twice or not at all.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from bsgap.choices import IMAGE_TRANSFERS
from bsgap.data.catalog import DataError
from bsgap.data.preprocess import Preprocess


@dataclasses.dataclass(frozen=True)
class ImageTransfer:
    """What the host sends (``dtype``) and what the device then does to make model inputs."""

    dtype: str = "float32"     # 'float32' (normalized on the host) or 'uint8' (on the device)
    pixel_mean: tuple = ()
    pixel_std: tuple = ()
    rounded: bool = False      # uint8 after a resampling preset: pixels rounded on the host
    reason: str = ""

    @property
    def on_device(self) -> bool:
        return self.dtype == "uint8"

    def to_model_input(self, image):
        """Model input from a transferred image batch, in the jitted step (any leading axes):
        float32 [0, 1] (uint8 / 255), then (x - mean) / std per channel when a mean is given;
        the identity for float32 transfer. The numpy twin is ``bsgap.data.standardize``."""
        if not self.on_device:
            return image
        import jax.numpy as jnp

        if image.dtype != jnp.uint8:
            raise TypeError(f"image_transfer='uint8' normalizes uint8 images on the device; got "
                            f"{image.dtype} images (a batch normalized on the host, fed to a step "
                            "compiled for transferred batches: use the dataset's wire=True "
                            "batches)")
        x = image.astype(jnp.float32) / jnp.float32(255.0)
        if self.pixel_mean:
            x = x - jnp.asarray(self.pixel_mean, jnp.float32)
            if self.pixel_std:
                x = x / jnp.asarray(self.pixel_std, jnp.float32)
        return x

    def to_json(self) -> dict:
        return {"dtype": self.dtype, "normalized_on": "device" if self.on_device else "host",
                "rounded": self.rounded, "reason": self.reason}


FLOAT32 = ImageTransfer("float32", reason="default")


def resolve_transfer(request: str, *, dataset: str, source_dtype, preprocess: Preprocess,
                     input_shape) -> ImageTransfer:
    """The transfer for config ``image_transfer`` = ``request`` on a dataset whose decoded images
    have ``source_dtype`` and ``input_shape`` (None where variable); a ``DataError`` names a value
    that cannot be had."""
    if request not in IMAGE_TRANSFERS:
        raise DataError(f"image_transfer={request!r} is not one of {IMAGE_TRANSFERS}")
    uint8_source = np.dtype(source_dtype) == np.uint8
    resamples = preprocess.resamples(input_shape)
    if request == "uint8" and not uint8_source:
        raise DataError(f"image_transfer='uint8' needs uint8 images; dataset={dataset!r} has "
                        f"{np.dtype(source_dtype).name} examples (use 'auto' or 'float32')")
    if request == "float32":
        return ImageTransfer("float32", reason="image_transfer='float32'")
    if request == "auto" and not uint8_source:
        return ImageTransfer("float32", reason=f"auto: {np.dtype(source_dtype).name} examples")
    if request == "auto" and resamples:
        return ImageTransfer("float32", reason=f"auto: augment={preprocess.augment!r} resamples "
                             "(image_transfer='uint8' rounds the resampled pixels)")
    return ImageTransfer("uint8", tuple(preprocess.pixel_mean), tuple(preprocess.pixel_std),
                         rounded=resamples, reason=f"{request}: uint8 images" + (
                             ", resampled pixels rounded on the host" if resamples else ""))
