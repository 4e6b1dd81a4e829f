"""What the input pipeline does to every image, as plain data (no TensorFlow import): the preset
name, output size and standardization. ``bsgap.data.augment`` implements the presets in
TensorFlow; this module is what the rest of bsgap needs to decide and check them, so a run on an
in-memory dataset never imports TensorFlow (~10 s of start-up on a 2-core machine).
"""
from __future__ import annotations

import dataclasses

PRESETS = ("none", "cifar", "mishkin", "inception")
CIFAR_PAD = 4
INCEPTION_CROP_PADDING = 32
MISHKIN_RESIZE_RATIO = 144 / 128


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """What the pipeline does to every image (see the module docstring for the presets)."""

    augment: str = "none"
    image_size: int | None = None
    channels: int = 3
    pixel_mean: tuple = ()
    pixel_std: tuple = ()

    def __post_init__(self):
        if self.augment not in PRESETS:
            raise ValueError(f"augment={self.augment!r} is not one of {PRESETS}")
        if self.augment in ("mishkin", "inception") and not self.image_size:
            raise ValueError(f"augment={self.augment!r} needs image_size (e.g. 128 for mishkin, "
                             "224 for inception)")
        if self.image_size is not None and (not isinstance(self.image_size, int)
                                            or self.image_size < 1):
            raise ValueError(f"image_size={self.image_size!r} must be a positive integer or None")
        if len(self.pixel_std) not in (0, len(self.pixel_mean)):
            raise ValueError(f"pixel_std={self.pixel_std!r} must have as many entries as "
                             f"pixel_mean={self.pixel_mean!r} (or be empty: std 1)")
        if any(s <= 0 for s in self.pixel_std):
            raise ValueError(f"pixel_std={self.pixel_std!r} must be positive")

    def output_shape(self, input_shape) -> tuple:
        """Static (S, S, C) of the output for an input feature shape (None where unknown)."""
        if self.image_size:
            return (self.image_size, self.image_size, input_shape[-1] or self.channels)
        if any(d is None for d in input_shape):
            raise ValueError(f"images of variable shape {tuple(input_shape)} need image_size "
                             f"(augment={self.augment!r})")
        return tuple(input_shape)

    def is_identity(self, input_shape) -> bool:
        """True when nothing but the [0, 1] scaling and standardization is applied."""
        return self.augment == "none" and (self.image_size is None or tuple(input_shape[:2]) == (
            self.image_size, self.image_size))

    def resamples(self, input_shape) -> bool:
        """True when the preset interpolates pixels (its output is then float, not the image's
        own uint8 values): mishkin and inception always resize; none and cifar only to an
        ``image_size`` other than the images' (or of images whose size is not known)."""
        if self.augment in ("mishkin", "inception"):
            return True
        return self.image_size is not None and tuple(input_shape[:2]) != (
            self.image_size, self.image_size)


def mishkin_short_side(image_size: int) -> int:
    return int(round(image_size * MISHKIN_RESIZE_RATIO))
