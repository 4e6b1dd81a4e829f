"""Miniature datasets in the real on-disk layouts, for offline tests and the pipeline benchmark.

* ``write_ilsvrc2012_tars``: ILSVRC2012_img_train.tar (one ``<synset>.tar`` of
  ``<synset>_<i>.JPEG`` per class) and ILSVRC2012_img_val.tar (``ILSVRC2012_val_%08d.JPEG``), the
  pair TFDS's ``imagenet2012`` builder prepares from ``manual_dir``. That builder labels the
  validation images by zipping the *sorted* names in the tar with the 50,000 lines of its bundled
  ``validation_labels.txt``; so a mini val tar gets the official labels only if it holds the first
  N official names (00000001..N), which is what is written here.
* ``write_image_folder``: ``root/<split>/<class>/<i>.jpg`` for ``dataset='image_folder'``.
* ``coordinate_image``: channel 0 = row index, channel 1 = column index, to read crop geometry.
Images are smooth random fields plus noise, JPEG-encoded at quality 90, so that file sizes and
decode cost resemble photographs rather than white noise.
"""
from __future__ import annotations

import io
import os
import tarfile

import numpy as np


def synthetic_image(rng: np.random.Generator, height: int, width: int,
                    noise: float = 12.0) -> np.ndarray:
    """uint8 (height, width, 3): bilinearly upsampled 8x8 random colours plus Gaussian noise
    of std ``noise`` (12: ~65 KB at 375x450; 32: ~110 KB, ImageNet's mean file size)."""
    coarse = rng.uniform(0, 255, (8, 8, 3))
    ys, xs = np.linspace(0, 7, height), np.linspace(0, 7, width)
    y0, x0 = np.floor(ys).astype(int).clip(0, 6), np.floor(xs).astype(int).clip(0, 6)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    image = top * (1 - fy) + bottom * fy + rng.normal(0, noise, (height, width, 3))
    return image.clip(0, 255).astype(np.uint8)


def coordinate_image(height: int, width: int) -> np.ndarray:
    """uint8 (height, width, 3) with [r, c, 0] = (r, c, 7); needs height, width <= 256."""
    if height > 256 or width > 256:
        raise ValueError(f"coordinate_image({height}, {width}): sides must be <= 256")
    image = np.full((height, width, 3), 7, np.uint8)
    image[..., 0] = np.arange(height)[:, None]
    image[..., 1] = np.arange(width)[None, :]
    return image


def encode(image: np.ndarray, fmt: str = "JPEG", quality: int = 90) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    kwargs = {"quality": quality} if fmt == "JPEG" else {}
    Image.fromarray(image).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _size(rng, sizes):
    (h_lo, h_hi), (w_lo, w_hi) = sizes
    return int(rng.integers(h_lo, h_hi + 1)), int(rng.integers(w_lo, w_hi + 1))


def official_validation_labels(count: int) -> list[str]:
    """The synsets of ILSVRC2012_val_00000001..count from TFDS's bundled label file."""
    import tensorflow_datasets as tfds

    path = tfds.core.tfds_path("datasets/imagenet2012/validation_labels.txt")
    with open(os.fspath(path)) as f:
        return f.read().split()[:count]


def write_ilsvrc2012_tars(manual_dir: str, synsets, images_per_class: int, num_val: int, *,
                          sizes=((40, 80), (40, 80)), seed: int = 0, quality: int = 90,
                          noise: float = 12.0) -> dict:
    """Write the two ILSVRC2012 tars; returns {'train': {file: synset}, 'validation': {...}}."""
    rng = np.random.default_rng(seed)
    os.makedirs(manual_dir, exist_ok=True)
    truth = {"train": {}, "validation": {}}
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_train.tar"), "w") as outer:
        for synset in synsets:
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as tar:
                for i in range(images_per_class):
                    name = f"{synset}_{i + 1}.JPEG"
                    _add(tar, name, encode(synthetic_image(rng, *_size(rng, sizes), noise),
                                           quality=quality))
                    truth["train"][name] = synset
            _add(outer, f"{synset}.tar", inner.getvalue())
    labels = official_validation_labels(num_val)
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_val.tar"), "w") as tar:
        for i in range(num_val):
            name = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
            _add(tar, name, encode(synthetic_image(rng, *_size(rng, sizes), noise),
                                   quality=quality))
            truth["validation"][name] = labels[i]
    return truth


def write_image_folder(root: str, classes, counts: dict, *, sizes=((24, 48), (24, 48)),
                       seed: int = 0, fmt: str = "JPEG") -> dict:
    """Write root/<split>/<class>/<i>.<ext> with counts[split] images per class."""
    rng = np.random.default_rng(seed)
    ext = {"JPEG": "jpg", "PNG": "png"}[fmt]
    written = {}
    for split, per_class in counts.items():
        for name in classes:
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                path = os.path.join(folder, f"{i}.{ext}")
                with open(path, "wb") as f:
                    f.write(encode(synthetic_image(rng, *_size(rng, sizes)), fmt))
                written[path] = name
    return written
