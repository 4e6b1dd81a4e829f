"""Input-pipeline throughput alone (no model): images/s of bsgap's tf.data path on this CPU.

Builds a synthetic ImageNet-like dataset with TFDS's own imagenet2012 builder from miniature
ILSVRC2012 tars (JPEG quality 90, 300-400 x 400-500 px, ~100 KB per file like ImageNet's mean),
then times a full JPEG decode alone (reference) and the production train and eval streams
(``StreamingTrainStream`` / ``streaming_eval_dataset``: tfrecord read, parse, JPEG decode,
augmentation preset, normalization, batching, numpy) for each preset, with tf.data's thread pool
limited to 1 thread and to all cores.

    python benchmarks/input_pipeline.py --images 768 --batch 256 --batches 12 --out bench.json

Timing starts after ``--warmup`` batches (pipeline start-up and autotuning excluded); the files are
in the page cache after preparation, so disk reads are not part of the measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bsgap.data import load_dataset  # noqa: E402
from bsgap.data.streaming import StreamingTrainStream  # noqa: E402
from bsgap.data.testing import write_ilsvrc2012_tars  # noqa: E402

PRESETS = {"mishkin": 128, "inception": 224}
SYNSETS = ("n01440764", "n01443537", "n01484850", "n01491361")


def prepare(root: str, images: int) -> str:
    manual, data_dir = os.path.join(root, "manual"), os.path.join(root, "tfds")
    per_class = -(-images // len(SYNSETS))
    write_ilsvrc2012_tars(manual, SYNSETS, per_class, 8, sizes=((300, 400), (400, 500)),
                          noise=32.0)
    load_dataset("imagenet2012", data_dir=data_dir, manual_dir=manual, eval_split="validation",
                 augment="mishkin", image_size=128)
    return data_dir


def dataset(data_dir, preset: str, batch: int, threads: int | None, train: bool):
    ds = load_dataset("imagenet2012", data_dir=data_dir, eval_split="validation",
                      augment="mishkin" if preset == "decode" else preset,
                      image_size=PRESETS.get(preset, 128), cache="none")
    if preset == "decode":  # reference: read + parse + full JPEG decode, no augmentation
        stream = StreamingTrainStream(ds.train, ds.preprocess, batch, seed=0)
        parse = ds.train.parse_fn()

        def decode(record, meta):
            image = tf.io.decode_jpeg(parse(record)[0], channels=3)
            return {"image": tf.cast(tf.shape(image), tf.float32)}
        out = stream.records(0).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        out = out.batch(batch).prefetch(tf.data.AUTOTUNE)
    elif train:
        out = StreamingTrainStream(ds.train, ds.preprocess, batch, seed=0).dataset(0)
    else:
        from bsgap.data.streaming import streaming_eval_dataset

        out = streaming_eval_dataset(ds.train, ds.preprocess, batch).repeat()
    if threads:
        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
        out = out.with_options(options)
    return out


def measure(ds, batch: int, batches: int, warmup: int) -> tuple[float, float]:
    """(images per wall-clock second, images per CPU-second of this process, all threads).

    The CPU-time rate is what a core delivers and barely depends on other load on the machine;
    the wall-clock rate is what this machine delivered while the benchmark ran.
    """
    it = ds.as_numpy_iterator()
    for _ in range(warmup):
        next(it)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(batches):
        out = next(it)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    assert out["image"].shape[0] == batch and np.isfinite(out["image"]).all()
    return batches * batch / seconds, batches * batch / cpu_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=768)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    results = []
    with tempfile.TemporaryDirectory() as root:
        data_dir = prepare(root, args.images)
        files = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(root, "tfds"))
                 for f in fs if "train.tfrecord" in f]
        mean_kb = sum(os.path.getsize(f) for f in files) / args.images / 1024
        for preset in ("decode",) + tuple(PRESETS):
            for train in ((True,) if preset == "decode" else (True, False)):
                for threads in (1, cores):
                    rate, cpu_rate = measure(dataset(data_dir, preset, args.batch, threads, train),
                                             args.batch, args.batches, args.warmup)
                    row = {"preset": preset, "mode": "train" if train else "eval",
                           "threads": threads, "images_per_second": round(rate, 1),
                           "images_per_cpu_second": round(cpu_rate, 1),
                           "cores": cores, "mean_record_kb": round(mean_kb, 1),
                           "load_average_1m": round(os.getloadavg()[0], 2)}
                    results.append(row)
                    print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
