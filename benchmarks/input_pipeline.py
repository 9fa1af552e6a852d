"""Throughput of the tf.data streams on this machine (images/s), on VOC-sized JPEG records made on the fly.

    ./run.sh python benchmarks/input_pipeline.py [--crop 513] [--batch 4] [--batches 40]

Prints the unlabeled stream (weak + strong view per image, colour jitter and cutout) and the labeled stream, as
shipped (parallel shard reads, parallel maps and prefetch, sized by tf.data's autotuner) and untuned (the same
stream on one thread with the autotuner off: what the tuning buys).
"""
from __future__ import annotations

import argparse
import io
import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from wss_tf.data import pipeline
from wss_tf.data.augment import AugmentConfig
from wss_tf.data.records import Record, encode_png, write_split


def make_records(directory: str, count: int, seed: int = 0) -> None:
    """VOC-like records: 500x375 JPEGs of smooth random content, masks with a few classes."""
    rng = np.random.RandomState(seed)
    records = []
    for i in range(count):
        h, w = (375, 500) if i % 2 else (500, 375)
        coarse = rng.randint(0, 256, (h // 25 + 1, w // 25 + 1, 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR))
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=90)
        label = np.zeros((h, w), np.uint8)
        label[h // 4:h // 2, w // 3:2 * w // 3] = 1 + i % 20
        records.append(Record(f"bench_{i}", buffer.getvalue(), "jpeg", h, w, encode_png(label)))
    write_split(records, directory, "bench", num_shards=4)


def untuned(dataset):
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.autotune.enabled = False
    options.experimental_optimization.map_parallelization = False
    return dataset.with_options(options)


def images_per_second(dataset, batches: int, batch: int) -> float:
    iterator = iter(dataset)
    next(iterator)  # warm-up: tracing and the first fill of the prefetch buffer
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=513)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--records", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        make_records(directory, args.records)
        stream = pipeline.StreamConfig(directory, "bench", num_classes=21, batch_size=args.batch)
        config = AugmentConfig(crop_size=(args.crop, args.crop))
        rates = {}
        for name, tune in (("untuned (one thread, no autotune)", untuned), ("as shipped", lambda d: d)):
            rates[name] = (images_per_second(tune(pipeline.unlabeled_dataset(stream, config)), args.batches, args.batch),
                           images_per_second(tune(pipeline.labeled_dataset(stream, config)), args.batches, args.batch))
    print(f"crop {args.crop}x{args.crop}, batch {args.batch}, {args.batches} batches after one warm-up batch, "
          f"{os.cpu_count()} CPU cores")
    for name, (unlabeled, labeled) in rates.items():
        print(f"{name:<34} unlabeled stream (weak + strong) {unlabeled:6.1f} images/s, labeled {labeled:6.1f} images/s")


if __name__ == "__main__":
    main()
