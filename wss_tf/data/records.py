"""DeepLab's TFRecord schema (datasets/build_data.py): writing shards and parsing examples.

Records made by the official DeepLab builders, and the pre-built PseudoSeg record tarballs, read as they are.
Shards are named `{split}-NNNNN-of-NNNNN.tfrecord` and found with the glob `{split}-*`, as the official reader does.
"""
from __future__ import annotations

import io
import os
import re
import sys
import time
from typing import Iterable, NamedTuple, Optional

import numpy as np
import tensorflow as tf
from PIL import Image

IGNORE_LABEL = 255

FEATURES = {
    "image/encoded": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/filename": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/format": tf.io.FixedLenFeature((), tf.string, default_value="jpeg"),
    "image/height": tf.io.FixedLenFeature((), tf.int64, default_value=0),
    "image/width": tf.io.FixedLenFeature((), tf.int64, default_value=0),
    "image/segmentation/class/encoded": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/segmentation/class/format": tf.io.FixedLenFeature((), tf.string, default_value="png"),
}


class Record(NamedTuple):
    """One image and its mask, encoded as they go into the record."""

    filename: str  # the image id, e.g. "2007_000033" or "train2017/000000177254"
    image: bytes  # encoded JPEG or PNG
    image_format: str  # "jpeg" | "png"
    height: int
    width: int
    label: bytes  # single-channel PNG of class ids; 255 = ignore


def _bytes(value: bytes):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def encode_example(record: Record) -> bytes:
    """A serialized tf.Example with exactly the official builder's keys (`image_seg_to_tfexample`)."""
    feature = {
        "image/encoded": _bytes(record.image),
        "image/filename": _bytes(record.filename.encode()),
        "image/format": _bytes(record.image_format.encode()),
        "image/height": _int(record.height),
        "image/width": _int(record.width),
        "image/channels": _int(3),
        "image/segmentation/class/encoded": _bytes(record.label),
        "image/segmentation/class/format": _bytes(b"png"),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def encode_png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def shard_path(output_dir: str, split: str, index: int, num_shards: int) -> str:
    return os.path.join(output_dir, f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord")


def split_files(dataset_dir: str, split: str) -> list[str]:
    """The shards of `split`, sorted; a clear error when there are none."""
    if not tf.io.gfile.isdir(dataset_dir):
        raise FileNotFoundError(f"dataset_dir {dataset_dir!r} does not exist (no records for split {split!r})")
    files = sorted(tf.io.gfile.glob(os.path.join(dataset_dir, f"{split}-*")))
    if not files:
        present = sorted({os.path.basename(f).split("-")[0] for f in tf.io.gfile.glob(os.path.join(dataset_dir, "*.tfrecord"))})
        raise FileNotFoundError(f"no records for split {split!r} in {dataset_dir!r} (expected {split}-*.tfrecord); "
                                f"splits found there: {present or 'none'}")
    return files


class Progress:
    """A one-line progress report on stderr: count, rate and time left, at most every `every` seconds."""

    def __init__(self, what: str, total: Optional[int] = None, every: float = 2.0, stream=sys.stderr):
        self.what, self.total, self.every, self.stream = what, total, every, stream
        self.count, self.start, self.last = 0, time.time(), 0.0

    def update(self, n: int = 1):
        self.count += n
        now = time.time()
        if now - self.last >= self.every or (self.total and self.count == self.total):
            self.last = now
            rate = self.count / max(now - self.start, 1e-9)
            if self.total:
                left = (self.total - self.count) / max(rate, 1e-9)
                msg = f"{self.what}: {self.count}/{self.total} ({rate:.1f}/s, {left:.0f}s left)"
            else:
                msg = f"{self.what}: {self.count} ({rate:.1f}/s)"
            print(msg, file=self.stream, flush=True)

    def done(self):
        elapsed = time.time() - self.start
        print(f"{self.what}: {self.count} done in {elapsed:.1f}s", file=self.stream, flush=True)


def write_split(records: Iterable[Record], output_dir: str, split: str, num_shards: int = 4,
                total: Optional[int] = None) -> list[str]:
    """Writes records round-robin into `num_shards` shards of `split`; returns the shard paths.

    Shards are written to temporary names and renamed at the end, so an interrupted build never leaves a
    complete-looking split behind.
    """
    tf.io.gfile.makedirs(output_dir)
    paths = [shard_path(output_dir, split, i, num_shards) for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(p + ".incomplete") for p in paths]
    progress = Progress(f"writing {split}", total)
    complete = False
    try:
        for i, record in enumerate(records):
            writers[i % num_shards].write(encode_example(record))
            progress.update()
        complete = True
    finally:
        for w in writers:
            w.close()
        if not complete:  # a failed build leaves nothing that `{split}-*` would pick up
            for p in paths:
                if tf.io.gfile.exists(p + ".incomplete"):
                    tf.io.gfile.remove(p + ".incomplete")
    for p in paths:
        tf.io.gfile.rename(p + ".incomplete", p, overwrite=True)
    # Shards of an earlier build of this split with another shard count would also match `{split}-*`.
    for stale in tf.io.gfile.glob(os.path.join(output_dir, f"{split}-?????-of-?????.tfrecord")):
        if os.path.basename(stale) not in {os.path.basename(p) for p in paths}:
            tf.io.gfile.remove(stale)
    progress.done()
    return paths


STAGING_DIR = ".building"  # inside the output folder: same file system, and `{split}-*` never matches it

_SHARD_NAME = re.compile(r"^(?P<split>.+)-\d{5}-of-\d{5}\.tfrecord$")


class StagedBuild:
    """A record set built into `output_dir/.building/` and moved into `output_dir` only when every split and
    dataset_info.json are written: a build that fails part way leaves the earlier record set as it was, never
    new shards of some splits beside old ones and the old dataset_info.json.

        with StagedBuild(output_dir) as stage:
            paths = write_split(records, stage.path, "train")
            write_dataset_info(info, stage.path)
        paths = stage.final(paths)
    """

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, STAGING_DIR)

    def __enter__(self) -> "StagedBuild":
        if tf.io.gfile.exists(self.path):  # a build that was killed
            tf.io.gfile.rmtree(self.path)
        tf.io.gfile.makedirs(self.path)
        return self

    def __exit__(self, kind, value, traceback):
        if kind is not None:
            tf.io.gfile.rmtree(self.path)
            return False
        names = sorted(os.path.basename(p) for p in tf.io.gfile.listdir(self.path))
        for split in sorted({m.group("split") for m in map(_SHARD_NAME.match, names) if m}):
            for old in tf.io.gfile.glob(os.path.join(self.output_dir, f"{split}-?????-of-?????.tfrecord")):
                tf.io.gfile.remove(old)  # another shard count would leave some behind
        for name in names:
            tf.io.gfile.rename(os.path.join(self.path, name), os.path.join(self.output_dir, name), overwrite=True)
        tf.io.gfile.rmtree(self.path)
        return False

    def final(self, written):
        """Paths (a list, or a dict of lists) written into the stage, as they are after the move."""
        if isinstance(written, dict):
            return {k: self.final(v) for k, v in written.items()}
        return [os.path.join(self.output_dir, os.path.basename(p)) for p in written]


def print_written(written: dict, output_dir: str) -> None:
    """What a builder wrote: one line per split."""
    for split, paths in written.items():
        print(f"{split}: {len(paths)} shard(s) in {output_dir}")


def decode_image(content, channels: int):
    """JPEG or PNG by content, as the official `_decode_image` (uint8, static channel count)."""
    image = tf.cond(tf.io.is_jpeg(content),
                    lambda: tf.io.decode_jpeg(content, channels),
                    lambda: tf.io.decode_png(content, channels))
    image.set_shape([None, None, channels])
    return image


def parse_example(serialized) -> dict:
    """{"image": uint8 [H,W,3], "label": uint8 [H,W,1], "filename", "height", "width"} from one record."""
    parsed = tf.io.parse_single_example(serialized, FEATURES)
    return {
        "image": decode_image(parsed["image/encoded"], 3),
        "label": decode_image(parsed["image/segmentation/class/encoded"], 1),
        "filename": parsed["image/filename"],
        "height": parsed["image/height"],
        "width": parsed["image/width"],
    }
