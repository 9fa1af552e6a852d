r"""Builds DeepLab records from your own data in a folder.

Layout:
  <folder>/images/<id>.<jpg|jpeg|png>   (sub-folders allowed: the id is then "sub/name")
  <folder>/masks/<id>.png               single-channel class ids (255 = ignore), or a palette PNG whose indices
                                        are the class ids; optional per image
  <folder>/splits/<split>.txt           optional: one id per line; every list becomes a split
Without splits/ every image goes into one split named "train". An image without a mask becomes an unlabeled
record whose mask is all 255. dataset_info.json (class names, eval crop, split sizes) is written beside the
records.

  python -m wss_tf.data.build_folder --folder=my_data --output_dir=records/my_data --num_classes=3
"""
from __future__ import annotations

import math
import os
from typing import Mapping, Optional, Sequence

from absl import app, flags

from wss_tf import app_runner
from wss_tf.data import checks
from wss_tf.data.datasets import DatasetInfo, write_dataset_info
from wss_tf.data.records import StagedBuild, print_written, write_split
from wss_tf.data.splits import read_list

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
MIN_EVAL_CROP = 33


def eval_crop_for(max_side: int) -> int:
    """The smallest size of the form 16k+1 (DeepLab's crop sizes) that holds `max_side`, at least 33."""
    return max(MIN_EVAL_CROP, 16 * math.ceil(max(max_side - 1, 0) / 16) + 1)


def find_images(images_dir: str) -> dict[str, str]:
    """id -> path of every image under `images_dir`; ids are relative paths without extension, "/"-separated."""
    if not os.path.isdir(images_dir):
        raise FileNotFoundError(f"no images folder {images_dir} (expected <folder>/images/<id>.jpg|png)")
    found: dict[str, str] = {}
    for root, dirs, files in os.walk(images_dir):
        dirs.sort()
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in IMAGE_EXTENSIONS or name.startswith("."):
                continue
            path = os.path.join(root, name)
            image_id = os.path.relpath(os.path.join(root, stem), images_dir).replace(os.sep, "/")
            if image_id in found:
                raise ValueError(f"two images with id {image_id!r}: {found[image_id]} and {path}")
            found[image_id] = path
    if not found:
        raise FileNotFoundError(f"no .jpg/.jpeg/.png images in {images_dir}")
    return found


def find_splits(folder: str) -> Optional[dict[str, list[str]]]:
    splits_dir = os.path.join(folder, "splits")
    if not os.path.isdir(splits_dir):
        return None
    names = sorted(f for f in os.listdir(splits_dir) if f.endswith(".txt"))
    if not names:
        raise FileNotFoundError(f"{splits_dir} exists but holds no <split>.txt lists")
    return {name[:-4]: read_list(os.path.join(splits_dir, name)) for name in names}


def build_folder(folder: str, output_dir: str, *, num_classes: int, class_names: Sequence[str] | None = None,
                 dataset_name: str = "folder", splits: Mapping[str, Sequence[str]] | None = None,
                 eval_crop: tuple[int, int] | None = None, num_shards: int = 2) -> dict[str, list[str]]:
    """Writes `{split}-NNNNN-of-NNNNN.tfrecord` shards for every split and dataset_info.json into `output_dir`.

    `splits` (split -> ids) overrides <folder>/splits/*.txt; with neither, all images form split "train".
    Returns split -> shard paths.
    """
    if num_classes < 1 or num_classes > 255:
        raise ValueError(f"num_classes must be in 1..255 (255 is the ignore label), got {num_classes}")
    if class_names is None:
        class_names = ["background"] + [f"class_{i}" for i in range(1, num_classes)]
    class_names = tuple(class_names)
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names given for num_classes={num_classes}")
    images_dir, masks_dir = os.path.join(folder, "images"), os.path.join(folder, "masks")
    images = find_images(images_dir)
    masks: dict[str, str] = {}
    if os.path.isdir(masks_dir):
        for root, _, files in os.walk(masks_dir):
            for name in files:
                stem, ext = os.path.splitext(name)
                mask_id = os.path.relpath(os.path.join(root, stem), masks_dir).replace(os.sep, "/")
                if ext.lower() in (".jpg", ".jpeg"):
                    raise ValueError(f"mask {os.path.join(root, name)} is a JPEG: masks must be PNG (JPEG "
                                     f"compression corrupts class ids)")
                if ext.lower() == ".png":
                    if mask_id not in images:
                        raise ValueError(f"mask {os.path.join(root, name)} has no image {mask_id}.jpg|png in "
                                         f"{images_dir}")
                    masks[mask_id] = os.path.join(root, name)

    splits_dir = os.path.join(folder, "splits")
    if splits is not None:
        split_ids = {name: list(ids) for name, ids in splits.items()}
        list_names = {name: f"{name!r} (given as the splits argument)" for name in split_ids}
    elif (split_ids := find_splits(folder)) is not None:
        list_names = {name: os.path.join(splits_dir, f"{name}.txt") for name in split_ids}
    else:
        split_ids = {"train": sorted(images)}
        list_names = {"train": "train (every image)"}
    if not split_ids:
        raise ValueError("no splits to build")
    for name, ids in split_ids.items():
        checks.check_split_name(name)
        if len(ids) != len(set(ids)):
            raise ValueError(f"split list {list_names[name]} repeats image ids")
        checks.check_split_ids(ids, images, list_names[name], images_dir)

    max_side = [0]

    def records(ids):
        for image_id in ids:
            if image_id in masks:
                record = checks.labeled_record(image_id, images[image_id], masks[image_id], num_classes)
            else:
                record = checks.unlabeled_record(image_id, images[image_id])
            max_side[0] = max(max_side[0], record.height, record.width)
            yield record

    with StagedBuild(output_dir) as stage:  # all splits or none replace an earlier build
        written = {name: write_split(records(ids), stage.path, name, checks.shard_count(num_shards, len(ids)),
                                     total=len(ids))
                   for name, ids in split_ids.items()}
        if eval_crop is None:
            crop = eval_crop_for(max_side[0])
            eval_crop = (crop, crop)
        info = DatasetInfo(dataset_name, class_names, tuple(int(s) for s in eval_crop),
                           split_sizes={name: len(ids) for name, ids in split_ids.items()})
        write_dataset_info(info, stage.path)
    return stage.final(written)


FLAGS = flags.FLAGS


def define_flags():
    """Flags are defined only when run as a command, so importing build_folder never clashes with others."""
    flags.DEFINE_string("folder", None, "Folder with images/, optional masks/ and optional splits/.")
    flags.DEFINE_string("output_dir", None, "Where the records and dataset_info.json go.")
    flags.DEFINE_integer("num_classes", None, "Number of classes including background (ids 0..num_classes-1).")
    flags.DEFINE_list("class_names", None, "Comma-separated class names, background first (default class_i).")
    flags.DEFINE_string("dataset_name", "folder", "Name recorded in dataset_info.json.")
    flags.DEFINE_list("eval_crop", None, "Eval crop height,width (default: largest image side, as 16k+1).")
    flags.DEFINE_integer("num_shards", 2, "Shards per split.")
    flags.mark_flags_as_required(["folder", "output_dir", "num_classes"])


def main(argv):
    del argv
    crop = tuple(int(s) for s in FLAGS.eval_crop) if FLAGS.eval_crop else None
    if crop is not None and len(crop) != 2:
        raise app.UsageError("--eval_crop takes height,width")
    written = build_folder(FLAGS.folder, FLAGS.output_dir, num_classes=FLAGS.num_classes,
                           class_names=FLAGS.class_names, dataset_name=FLAGS.dataset_name, eval_crop=crop,
                           num_shards=FLAGS.num_shards)
    print_written(written, FLAGS.output_dir)


if __name__ == "__main__":
    define_flags()
    app_runner.run(main)
