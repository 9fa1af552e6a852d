r"""Checks every record of a split the way training will read it, and summarises the split.

  python -m wss_tf.data.validate --dataset_dir=records/voc --split=train_aug [--dataset=pascal_voc_seg]

Per record: the tf.Example parses with the DeepLab keys; the image decodes (as JPEG or PNG, by content) with
3 channels; the mask is a single-channel PNG (a palette or RGB mask would silently turn into grey levels when
the reader decodes it with 1 channel); mask and image have the same size, and image/height and image/width
match it; mask ids are classes (< num_classes) or 255. Each problem names the shard file, the record's index
in the shard and its image/filename. The summary counts records, labeled and unlabeled ones (unlabeled = mask
all 255) and the pixels of each class. The command exits non-zero when anything is wrong.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import sys
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
from absl import flags

from wss_tf import app_runner
from wss_tf.data.checks import bad_class_ids
from wss_tf.data.datasets import load_dataset_info
from wss_tf.data.records import FEATURES, IGNORE_LABEL, Progress, decode_image, split_files


@dataclasses.dataclass
class ValidationReport:
    dataset_dir: str
    split: str
    num_classes: int
    files: list[str]
    class_names: Optional[Sequence[str]] = None
    records: int = 0
    labeled: int = 0
    unlabeled: int = 0  # masks that are 255 everywhere
    histogram: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(256, np.int64))  # pixels per id
    problems: list[str] = dataclasses.field(default_factory=list)
    bad_records: list[str] = dataclasses.field(default_factory=list)  # "shard file name:record index"
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self, max_listed: int = 50) -> str:
        lines = [f"split {self.split!r} in {self.dataset_dir}: {len(self.files)} shard(s), {self.records} records "
                 f"({self.labeled} labeled, {self.unlabeled} unlabeled with all-255 masks), "
                 f"num_classes={self.num_classes}"]
        total = max(int(self.histogram.sum()), 1)
        lines.append("class pixels:")
        for i in np.nonzero(self.histogram)[0]:
            if i == IGNORE_LABEL:
                name = "ignore"
            elif self.class_names is not None and i < len(self.class_names):
                name = self.class_names[i]
            else:
                name = "(not a class)" if i >= self.num_classes else ""
            lines.append(f"  {i:>3} {name:<20} {int(self.histogram[i]):>14,d} {100 * self.histogram[i] / total:6.2f}%")
        absent = [i for i in range(self.num_classes) if self.histogram[i] == 0]
        if absent and self.records:
            lines.append(f"classes with no pixels: {absent}")
        for title, items in (("warnings", self.warnings), ("problems", self.problems)):
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines += [f"  {p}" for p in items[:max_listed]]
                if len(items) > max_listed:
                    lines.append(f"  ... and {len(items) - max_listed} more")
        lines.append("OK" if self.ok else f"FAILED: {len(self.problems)} problem(s)")
        return "\n".join(lines)


def _error_text(e: Exception) -> str:
    text = getattr(e, "message", None) or str(e)
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__


def check_record(serialized: bytes, num_classes: int) -> tuple[list[str], Optional[str], Optional[np.ndarray]]:
    """(problems, filename, mask ids [H, W] or None) of one serialized record."""
    try:
        parsed = tf.io.parse_single_example(serialized, FEATURES)
    except (tf.errors.OpError, ValueError) as e:
        return [f"not a DeepLab tf.Example: {_error_text(e)}"], None, None
    filename = parsed["image/filename"].numpy().decode(errors="replace")
    problems = []
    image_shape = None
    content = parsed["image/encoded"]
    if not content.numpy():
        problems.append("image/encoded is empty")
    else:
        try:
            image_shape = tuple(decode_image(content, 3).shape)
        except (tf.errors.OpError, ValueError) as e:
            problems.append(f"image does not decode as JPEG/PNG with 3 channels: {_error_text(e)}")
    if image_shape is not None:
        height, width = int(parsed["image/height"]), int(parsed["image/width"])
        if (height, width) != image_shape[:2]:
            problems.append(f"image/height,width = {height}x{width} but the image is "
                            f"{image_shape[0]}x{image_shape[1]}")
    mask = None
    label = parsed["image/segmentation/class/encoded"]
    if not label.numpy():
        problems.append("mask (image/segmentation/class/encoded) is empty")
    elif bool(tf.io.is_jpeg(label)):
        problems.append("mask is a JPEG: lossy compression corrupts class ids (use a single-channel PNG)")
    else:
        try:
            decoded = tf.io.decode_png(label, channels=0)
        except (tf.errors.OpError, ValueError) as e:
            problems.append(f"mask does not decode as PNG: {_error_text(e)}")
        else:
            if decoded.shape[-1] != 1:
                problems.append(f"mask PNG has {decoded.shape[-1]} channels (palette or colour PNG?); the reader "
                                f"decodes masks with 1 channel, which turns those into grey levels, not class ids")
            else:
                mask = decoded.numpy()[..., 0]
                if image_shape is not None and mask.shape != image_shape[:2]:
                    problems.append(f"mask is {mask.shape[0]}x{mask.shape[1]} but the image is "
                                    f"{image_shape[0]}x{image_shape[1]}")
                bad = bad_class_ids(mask, num_classes)
                if bad:
                    problems.append(f"mask has class ids {bad} >= num_classes={num_classes} (other than 255)")
    return problems, filename, mask


def validate(dataset_dir: str, split: str, num_classes: Optional[int] = None, *, dataset: Optional[str] = None,
             progress: bool = True) -> ValidationReport:
    """Reads and checks every record of `split` in `dataset_dir`; see the module doc.

    num_classes defaults to the dataset description: dataset_dir/dataset_info.json, else the built-in `dataset`.
    """
    class_names = None
    if num_classes is None or dataset is not None or os.path.exists(os.path.join(dataset_dir, "dataset_info.json")):
        try:
            info = load_dataset_info(dataset, dataset_dir)
        except ValueError as e:
            if num_classes is None:
                raise ValueError(f"cannot tell the number of classes of {dataset_dir}: {e}; pass num_classes "
                                 f"(--num_classes) or a built-in --dataset") from e
        else:
            class_names = info.class_names
            num_classes = num_classes or info.num_classes
            total = info.split_sizes.get(split)
    files = split_files(dataset_dir, split)
    report = ValidationReport(dataset_dir, split, num_classes, files, class_names)
    meter = Progress(f"validating {split}", total if class_names is not None else None) if progress else None
    seen = collections.Counter()
    for path in files:
        shard = os.path.basename(path)
        index = -1
        try:
            for index, serialized in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
                problems, filename, mask = check_record(serialized, num_classes)
                where = f"{shard} record {index} ({filename!r})"
                report.records += 1
                report.problems += [f"{where}: {p}" for p in problems]
                if problems:
                    report.bad_records.append(f"{shard}:{index}")
                if filename is not None:
                    seen[filename] += 1
                    if not filename:
                        report.warnings.append(f"{where}: image/filename is empty")
                if mask is not None:
                    report.histogram += np.bincount(mask.ravel(), minlength=256)
                    if np.all(mask == IGNORE_LABEL):
                        report.unlabeled += 1
                    else:
                        report.labeled += 1
                if meter:
                    meter.update()
        except tf.errors.OpError as e:
            report.problems.append(f"{shard}: unreadable after record {index} (truncated or corrupt TFRecord "
                                   f"file): {_error_text(e)}")
    repeated = [name for name, n in seen.items() if n > 1 and name]
    if repeated:
        report.warnings.append(f"{len(repeated)} filenames occur more than once in the split, e.g. {repeated[:5]}")
    if report.records == 0:
        report.problems.append(f"split {split!r} has no records ({len(files)} empty shard file(s))")
    if meter:
        meter.done()
    return report


FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("dataset_dir", None, "Folder with the {split}-*.tfrecord shards.")
    flags.DEFINE_string("split", None, "Split to check.")
    flags.DEFINE_string("dataset", None, "Built-in dataset (pascal_voc_seg, coco) when the folder has no "
                                         "dataset_info.json.")
    flags.DEFINE_integer("num_classes", None, "Overrides the dataset's class count.")
    flags.DEFINE_integer("max_listed", 50, "Problems listed in the summary.")
    flags.mark_flags_as_required(["dataset_dir", "split"])


def main(argv):
    del argv
    try:
        report = validate(FLAGS.dataset_dir, FLAGS.split, FLAGS.num_classes, dataset=FLAGS.dataset)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.summary(FLAGS.max_listed))
    return 0 if report.ok else 1


if __name__ == "__main__":
    define_flags()
    app_runner.run(main)
