"""Per-example image preprocessing presets in TensorFlow: decode, crop/resize/flip, normalize.

A preset maps one example's image -- encoded bytes (JPEG/PNG, tf.string) or a decoded
(H, W, C) tensor -- and a stateless seed of shape [2] to a float32 (S, S, C) image:

  none      train = eval: resize to S x S (bilinear) when ``image_size`` is set, else unchanged.
  cifar     train: zero-pad 4 px on every side, random S x S crop, random horizontal flip.
            eval: unchanged (resized to S x S if the image is not S x S).
  mishkin   (Mishkin et al. 2017, S=128) train: resize the short side to round(S*144/128) = 144
            (bilinear), random S x S crop, random horizontal flip. eval: the same resize, center
            S x S crop.
  inception (Szegedy et al. 2015; Goyal et al. 2017; the flax ImageNet example, S=224) train: a
            random crop with area 8%..100% of the image and aspect ratio 3/4..4/3 (10 attempts,
            else the center crop of eval), resized to S x S (bicubic), random horizontal flip.
            eval: center crop of side S/(S+32) x the short side, resized to S x S (bicubic).

Pixels are then scaled to [0, 1] (uint8 inputs are divided by 255; float inputs are taken as
already in [0, 1]) and standardized per channel, x = (x - pixel_mean) / pixel_std, when a mean is
given. All randomness is stateless (``tf.random.stateless_*``): the output is a pure function of
(image, seed), whatever the parallelism of the input pipeline. JPEGs are decoded at a reduced
DCT scale (1/2, 1/4, 1/8) when the smaller image still covers the mishkin resize target, and
only the crop window is decoded for inception; both are what makes ImageNet decoding affordable.
"""
from __future__ import annotations

import tensorflow as tf

from bsgap.data.preprocess import (CIFAR_PAD, INCEPTION_CROP_PADDING,  # noqa: F401
                                   MISHKIN_RESIZE_RATIO, PRESETS, Preprocess, mishkin_short_side)


# ------------------------------------------------------------------------------------- decode
def _decode_full(data, channels):
    return tf.io.decode_image(data, channels=channels, expand_animations=False)


def _decode_jpeg_scaled(data, channels, min_short_side):
    """JPEG decoded at the coarsest DCT scale whose short side is still >= ``min_short_side``."""
    shape = tf.image.extract_jpeg_shape(data)
    short = tf.minimum(shape[0], shape[1])
    index = tf.reduce_sum(tf.cast(
        tf.stack([(short + r - 1) // r >= min_short_side for r in (2, 4, 8)]), tf.int32))
    return tf.switch_case(index, [
        lambda r=r: tf.io.decode_jpeg(data, channels=channels, ratio=r) for r in (1, 2, 4, 8)])


def _decode_window(data, window, channels):
    """Decode only ``window`` = [y, x, h, w] of the image (JPEG: without decoding the rest)."""
    return tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.image.decode_and_crop_jpeg(data, window, channels=channels),
        lambda: tf.slice(_decode_full(data, channels), tf.stack([window[0], window[1], 0]),
                         tf.stack([window[2], window[3], -1])))


def _hw(image, encoded):
    if not encoded:
        return tf.shape(image)[0], tf.shape(image)[1]
    shape = tf.cond(tf.io.is_jpeg(image), lambda: tf.image.extract_jpeg_shape(image),
                    lambda: tf.shape(_decode_full(image, 3)))
    return shape[0], shape[1]


# ------------------------------------------------------------------------------------- geometry
def center_window(height, width, crop_fraction):
    """[y, x, h, w] of the centered square of side crop_fraction x min(height, width)."""
    side = tf.cast(crop_fraction * tf.cast(tf.minimum(height, width), tf.float32), tf.int32)
    side = tf.maximum(side, 1)
    return tf.stack([(height - side + 1) // 2, (width - side + 1) // 2, side, side])


def inception_window(height, width, seed, area=(0.08, 1.0), aspect=(3 / 4, 4 / 3),
                     attempts=10, fallback_fraction=1.0):
    """[y, x, h, w] of the random-resized crop (tf.image's sample_distorted_bounding_box)."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.stack([height, width, 3]), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed, min_object_covered=0.1, aspect_ratio_range=aspect, area_range=area,
        max_attempts=attempts, use_image_if_no_bounding_boxes=True)
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    whole = tf.logical_and(size[0] == height, size[1] == width)  # every attempt failed
    return tf.where(whole, center_window(height, width, fallback_fraction), window)


def resize_short_side(image, short_side):
    """Bilinear resize to a short side of ``short_side`` px, keeping the aspect ratio.

    Antialiased only when shrinking by more than 2x (plain bilinear is 2.7x cheaper and aliases
    little above that; after a scaled JPEG decode the remaining factor is always above 1/2).
    """
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = short_side / tf.minimum(h, w)
    size = tf.cast(tf.round(tf.stack([h, w]) * scale), tf.int32)
    size = tf.maximum(size, short_side)
    return tf.cond(scale < 0.5, lambda: tf.image.resize(image, size, antialias=True),
                   lambda: tf.image.resize(image, size))


def _center_crop(image, size):
    shape = tf.shape(image)
    y, x = (shape[0] - size) // 2, (shape[1] - size) // 2
    return image[y:y + size, x:x + size]


# ------------------------------------------------------------------------------------- presets
def _mishkin(image, seed, p, encoded, train):
    short = int(round(p.image_size * MISHKIN_RESIZE_RATIO))
    if encoded:
        image = tf.cond(tf.io.is_jpeg(image),
                        lambda: _decode_jpeg_scaled(image, p.channels, short),
                        lambda: _decode_full(image, p.channels))
    image = resize_short_side(image, short)
    if not train:
        return _center_crop(image, p.image_size)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.image.stateless_random_crop(
        image, tf.stack([p.image_size, p.image_size, tf.shape(image)[2]]), crop_seed)
    return tf.image.stateless_random_flip_left_right(image, flip_seed)


def _inception(image, seed, p, encoded, train):
    height, width = _hw(image, encoded)
    eval_fraction = p.image_size / (p.image_size + INCEPTION_CROP_PADDING)
    if train:
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        window = inception_window(height, width, crop_seed, fallback_fraction=eval_fraction)
    else:
        window = center_window(height, width, eval_fraction)
    if encoded:
        image = _decode_window(image, window, p.channels)
    else:
        image = tf.slice(image, tf.stack([window[0], window[1], 0]),
                         tf.stack([window[2], window[3], -1]))
    image = tf.image.resize(image, [p.image_size, p.image_size], method="bicubic")
    if train:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    return image


def _cifar(image, seed, p, encoded, train):
    if encoded:
        image = _decode_full(image, p.channels)
    size = p.image_size
    if not train:
        return image if size is None else _resize_to(image, size)
    if size is None:
        size_hw = tf.shape(image)[:2]
    else:
        size_hw = tf.constant([size, size])
    padded = tf.pad(image, [[CIFAR_PAD, CIFAR_PAD], [CIFAR_PAD, CIFAR_PAD], [0, 0]])
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.image.stateless_random_crop(
        padded, tf.concat([size_hw, tf.shape(image)[2:]], 0), crop_seed)
    return tf.image.stateless_random_flip_left_right(image, flip_seed)


def _resize_to(image, size):
    shape = tf.shape(image)
    same = tf.logical_and(shape[0] == size, shape[1] == size)
    return tf.cond(same, lambda: tf.cast(image, tf.float32),
                   lambda: tf.image.resize(image, [size, size], antialias=True))


def _none(image, seed, p, encoded, train):
    del seed, train
    if encoded:
        image = _decode_full(image, p.channels)
    return image if p.image_size is None else _resize_to(image, p.image_size)


_FUNCTIONS = {"none": _none, "cifar": _cifar, "mishkin": _mishkin, "inception": _inception}


def normalize(image, p: Preprocess, source_dtype):
    """float32 in [0, 1] (uint8 / 255), then (x - mean) / std per channel if a mean is given."""
    image = tf.cast(image, tf.float32)
    if source_dtype == tf.uint8:
        image = image / 255.0
    if p.pixel_mean:
        image = image - tf.constant(p.pixel_mean, tf.float32)
        if p.pixel_std:
            image = image / tf.constant(p.pixel_std, tf.float32)
    return image


def to_uint8(image):
    """uint8 pixels as sent to the devices (bsgap/data/transfer.py): unchanged when the preset
    kept them uint8, else (resampled) rounded to the nearest integer, ties to even, in [0, 255]."""
    if image.dtype == tf.uint8:
        return image
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def transform(image, seed, p: Preprocess, *, train: bool, input_shape, source_dtype=tf.uint8,
              wire: bool = False):
    """Apply preset ``p.augment`` to one image; ``seed`` is a [2] int tensor (unused for eval).

    ``image`` is encoded bytes when its dtype is tf.string. Returns float32 of the static shape
    ``p.output_shape(input_shape)``, normalized; with ``wire`` the uint8 pixels before the
    normalization (``to_uint8``), which the devices then normalize (uint8 images only).
    """
    encoded = image.dtype == tf.string
    out = _FUNCTIONS[p.augment](image, seed, p, encoded, train)
    if wire:
        if not (encoded or source_dtype == tf.uint8):
            raise ValueError(f"wire=True sends uint8 pixels; these images are {source_dtype}")
        out = to_uint8(out)
    else:
        out = normalize(out, p, tf.uint8 if encoded else source_dtype)
    return tf.ensure_shape(out, p.output_shape(input_shape))


def example_seed(seed: int, epoch, position, salt: int = 0):
    """Stateless [2] seed of one example: fold (epoch, position) into (seed, salt)."""
    base = tf.constant([seed, salt], tf.int64)
    folded = tf.random.experimental.stateless_fold_in(base, tf.cast(epoch, tf.int64))
    return tf.random.experimental.stateless_fold_in(folded, tf.cast(position, tf.int64))


__all__ = ["PRESETS", "Preprocess", "center_window", "example_seed", "inception_window",
           "mishkin_short_side", "normalize", "resize_short_side", "to_uint8", "transform"]
