"""Prepare a TFDS dataset once, ahead of training (required before a multi-process run).

    python -m bsgap.data.prepare --dataset=imagenet2012 --data_dir=DIR --manual_dir=TARS_DIR
    python -m bsgap.data.prepare --dataset=cifar10 --data_dir=DIR --download

imagenet2012 is prepared by TFDS's own builder from ILSVRC2012_img_train.tar and
ILSVRC2012_img_val.tar in ``--manual_dir``; other datasets are downloaded by TFDS (network needed).
Exit status 0 with the prepared splits printed, 2 with the reason when it cannot be prepared.
"""
from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bsgap.data.prepare",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="TFDS name, e.g. imagenet2012, cifar10")
    parser.add_argument("--data_dir", default=None, help="TFDS data dir to prepare into")
    parser.add_argument("--manual_dir", default=None, help="directory of manually downloaded files")
    parser.add_argument("--download", action="store_true", help="let TFDS download the data")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from bsgap.data.catalog import DataError, prepared_builder

    try:
        builder = prepared_builder(args.dataset, data_dir=args.data_dir,
                                   manual_dir=args.manual_dir, download=args.download)
    except DataError as err:
        print(f"bsgap.data.prepare: error: {err}", file=sys.stderr)
        return 2
    splits = {str(name): split.num_examples for name, split in builder.info.splits.items()}
    print(f"{args.dataset} is prepared in {builder.data_path}: {splits}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
