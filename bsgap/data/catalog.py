"""Find a dataset and make sure it is prepared: TFDS names, embedded datasets, image folders.

* embedded (``mnist1d/small``, ``sklearn_digits``, ...): generated locally on first use;
* manual-download TFDS datasets (``imagenet2012``): prepared once by TFDS's own builder from the
  files the user put in ``manual_dir`` (ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar);
* other TFDS datasets (``cifar10``, ``mnist``, ``imagenet_resized/64x64``, ...): read from
  ``data_dir`` if prepared there (e.g. a bucket on a TPU VM); downloaded and prepared by TFDS only
  when ``download=True`` (tests never download);
* ``image_folder``: ``manual_dir/<split>/<class>/<image>.{jpg,jpeg,png}`` via ``tfds.ImageFolder``.
A missing dataset raises ``DataError`` naming the directory searched and how to prepare it.
"""
from __future__ import annotations

import contextlib
import fcntl
import os

import numpy as np

from bsgap.bucket_paths import is_url

IMAGE_FOLDER = "image_folder"
# Files TFDS's builder expects in manual_dir (checked before preparing, for a clear message).
MANUAL_FILES = {
    "imagenet2012": ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
    "imagenet2012_subset": ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
}


class DataError(RuntimeError):
    """A dataset that cannot be loaded; the message says where it looked and how to fix it."""


def _expand(path):
    return os.path.expanduser(path) if path and not is_url(path) else path or None


def _default_data_dir(data_dir) -> str:
    return data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"


def _check_manual_files(name: str, manual_dir: str) -> None:
    missing = [f for f in MANUAL_FILES.get(name.split("/")[0], ())
               if not os.path.exists(os.path.join(manual_dir, f))]
    if missing:
        raise DataError(f"dataset={name!r}: manual_dir={manual_dir!r} lacks {missing}. TFDS "
                        f"prepares {name} once from {list(MANUAL_FILES[name.split('/')[0]])} "
                        "in manual_dir (from https://image-net.org/download-images)")


def _not_prepared(name: str, builder, data_dir, manual: bool) -> DataError:
    where = (f"is not prepared under data_dir={_default_data_dir(data_dir)!r} "
             f"(looked for {builder.data_path})")
    if manual:
        files = MANUAL_FILES.get(name.split("/")[0])
        what = (f"the files {list(files)}" if files else "the files its instructions list "
                f"({' '.join(builder.MANUAL_DOWNLOAD_INSTRUCTIONS.split())})")
        return DataError(f"dataset={name!r} {where}. It needs a manual download: put {what} in "
                         "a directory and pass --config.manual_dir=DIR; TFDS then prepares it "
                         "once into data_dir. Or point --config.data_dir at a TFDS data "
                         "directory where it is already prepared")
    return DataError(f"dataset={name!r} {where}. Point --config.data_dir at a TFDS data directory "
                     f"that has it (e.g. a bucket), or pass --config.download=True to let TFDS "
                     f"download and prepare it there (network needed), or run "
                     f"`python -m bsgap.data.prepare --dataset={name} --download` once")


def prepared_builder(name: str, *, data_dir=None, manual_dir=None, download: bool = False,
                     process_count: int = 1):
    """A TFDS builder for ``name`` whose data is prepared (preparing it here where allowed)."""
    import tensorflow_datasets as tfds

    from bsgap.data import builders

    data_dir, manual_dir = _expand(data_dir), _expand(manual_dir)
    base = name.split("/")[0]
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as err:  # unknown name or builder config
        raise DataError(f"dataset={name!r} is not a TFDS dataset ({err}). Embedded datasets: "
                        f"{sorted(builders.EMBEDDED)} (e.g. 'mnist1d/small'); your own images: "
                        f"dataset={IMAGE_FOLDER!r} with manual_dir=ROOT/<split>/<class>/") from None
    if builder.is_prepared():
        return builder
    if base in builders.EMBEDDED:
        return _prepare_embedded(name, builder, data_dir, process_count)
    manual = bool(getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None))
    if (manual and not manual_dir) or (not manual and not download):
        raise _not_prepared(name, builder, data_dir, manual)
    if process_count > 1:
        raise DataError(f"dataset={name!r} is not prepared under {builder.data_path}; prepare it "
                        f"once from a single process (`python -m bsgap.data.prepare "
                        f"--dataset={name} ...`) before a multi-process run")
    try:
        if manual:
            _check_manual_files(name, manual_dir)
            config = tfds.download.DownloadConfig(manual_dir=manual_dir)
            builder.download_and_prepare(download_config=config)
        else:
            builder.download_and_prepare()
    except DataError:
        raise
    except Exception as err:
        source = f"manual_dir={manual_dir!r}" if manual else "the network"
        raise DataError(f"preparing dataset={name!r} into {builder.data_dir} from {source} "
                        f"failed: {type(err).__name__}: {err}") from None
    return builder


@contextlib.contextmanager
def _preparation_lock(data_dir_root: str, name: str):
    """An exclusive ``flock`` on ``DATA_DIR/.bsgap-prepare-<name>.lock`` while a dataset is built,
    so that separate runs sharing a data dir (two sweeps, two shells) build it once: the second
    waits, then finds it prepared. None on a ``gs://`` data dir (no locks there: prepare such a
    dataset once with ``python -m bsgap.data.prepare`` before starting runs)."""
    if is_url(data_dir_root):
        yield
        return
    os.makedirs(data_dir_root, exist_ok=True)
    path = os.path.join(data_dir_root, f".bsgap-prepare-{name.replace('/', '-')}.lock")
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)   # released when the file is closed, however we leave
        yield


def _prepare_embedded(name: str, builder, data_dir, process_count: int):
    """Build an embedded dataset once: on process 0 only (the others wait for it and then open
    what it built), under ``_preparation_lock`` against other runs on the same data dir."""
    import tensorflow_datasets as tfds

    from bsgap.agreement import decided_by_process_0

    def prepare() -> None:
        with _preparation_lock(os.fspath(builder.data_dir_root), name):
            fresh = tfds.builder(name, data_dir=data_dir)   # another run may have built it
            if not fresh.is_prepared():
                fresh.download_and_prepare()

    if process_count == 1:
        prepare()
    else:
        decided_by_process_0(prepare)   # a barrier too: process 0's error is raised everywhere
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        raise DataError(f"dataset={name!r} was prepared by process 0 under {builder.data_dir} "
                        "but this process does not see it there: data_dir must be a directory "
                        "every host shares (the same path on each), or a gs:// bucket")
    return builder


def image_folder(root, train_split: str, eval_split: str):
    """(train (paths, labels), eval (paths, labels), class names) of ROOT/<split>/<class>/*."""
    import tensorflow_datasets as tfds

    root = _expand(root)
    if is_url(root):
        raise DataError(f"dataset={IMAGE_FOLDER!r} reads a local (or mounted) manual_dir; "
                        f"manual_dir={root!r} is a URL: mount the bucket (gcsfuse) and pass the "
                        "mounted path")
    if not root or not os.path.isdir(root):
        raise DataError(f"dataset={IMAGE_FOLDER!r} reads manual_dir=ROOT with ROOT/<split>/<class>/"
                        f"<image>.jpg|png; manual_dir={root!r} is not a directory")
    builder = tfds.ImageFolder(root)
    names = builder.info.features["label"].names
    out = []
    for split in (train_split, eval_split):
        examples = builder._split_examples.get(split)  # TFDS 4.9: the (path, label) list
        if not examples:
            raise DataError(f"dataset={IMAGE_FOLDER!r}: no images under {root}/{split}/<class>/; "
                            f"splits found: {sorted(builder._split_examples)}")
        paths = np.array([e.image_path for e in examples])
        labels = np.array([names.index(e.label) for e in examples], np.int32)
        out.append((paths, labels))
    return out[0], out[1], list(names)
