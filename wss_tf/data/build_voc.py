r"""Builds PASCAL VOC 2012 segmentation records (DeepLab format) from a VOCdevkit folder.

  <voc_root>/JPEGImages/<id>.jpg
  <voc_root>/SegmentationClassAug/<id>.png   single-channel class ids (the 10582-image train_aug masks), or
  <voc_root>/SegmentationClass/<id>.png      palette PNGs: the palette INDEX is the class id, 255 = boundary
`voc_root` may also be the VOCdevkit folder holding VOC2012/. Splits are the shipped lists
(wss_tf/data/splits/pascal_voc_seg: train, train_aug, val, 2_clean, 4_clean, 8_clean, 16_clean_3/14/20) or
paths to .txt lists. JPEG bytes are copied as they are; masks are re-encoded as single-channel PNGs of ids.

  python -m wss_tf.data.build_voc --voc_root=VOCdevkit/VOC2012 --output_dir=records/voc \
      --splits=train_aug,val,16_clean_3

Another dataset in VOC's layout (its own classes, split lists as .txt paths) is built with --class_names (background
first): ids are then checked against that class count, and dataset_info.json (named --dataset_name) is written
beside the records, so training and evaluation know the dataset.

  python -m wss_tf.data.build_voc --voc_root=mine/VOC2012 --output_dir=records/mine --mask_dir=SegmentationClass \
      --splits=mine/VOC2012/ImageSets/Segmentation/train.txt --class_names=background,cat,dog --dataset_name=mine
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

from absl import flags

from wss_tf import app_runner
from wss_tf.data import checks
from wss_tf.data.build_folder import eval_crop_for
from wss_tf.data.datasets import PASCAL_VOC_SEG, DatasetInfo, write_dataset_info
from wss_tf.data.records import StagedBuild, print_written, write_split
from wss_tf.data.splits import SPLITS_DIR, read_split

DATASET = "pascal_voc_seg"
DEFAULT_SPLITS = ("train", "val", "train_aug")
DEFAULT_OTHER_NAME = "voc_layout"  # dataset_info.json's name for class_names without dataset_name


def resolve_root(voc_root: str) -> str:
    """The folder holding JPEGImages/: `voc_root` itself or its VOC2012/ sub-folder."""
    for root in (voc_root, os.path.join(voc_root, "VOC2012")):
        if os.path.isdir(os.path.join(root, "JPEGImages")):
            return root
    raise FileNotFoundError(f"no JPEGImages folder in {voc_root} (nor in {os.path.join(voc_root, 'VOC2012')}); "
                            f"--voc_root should be VOCdevkit/VOC2012")


def resolve_mask_dir(voc_root: str, root: str, mask_dir: str) -> str:
    candidates = [mask_dir] if os.path.isabs(mask_dir) else [os.path.join(root, mask_dir),
                                                             os.path.join(voc_root, mask_dir), mask_dir]
    for candidate in candidates:
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(f"mask folder {mask_dir!r} not found (looked in {', '.join(dict.fromkeys(candidates))})")


def build_voc(voc_root: str, output_dir: str, splits: Sequence[str] = DEFAULT_SPLITS, *,
              mask_dir: str = "SegmentationClassAug", num_shards: int = 4,
              class_names: Optional[Sequence[str]] = None,
              dataset_name: Optional[str] = None) -> dict[str, list[str]]:
    """Writes `{split}-NNNNN-of-NNNNN.tfrecord` for each split into `output_dir`; returns split -> shard paths.

    Every image and mask is checked first for presence, then (while writing) for decodability, equal sizes and
    ids < 21 or 255. VOC is a built-in dataset, so no dataset_info.json is written.

    Args:
      class_names: for another dataset in VOC's layout, its class names (background first, index = id). Ids are
        then checked against len(class_names), and dataset_info.json is written: `dataset_name` (default
        "voc_layout"), these classes, split sizes and as eval crop the smallest 16k+1 square holding every image.
      dataset_name: the name in dataset_info.json; needs class_names.
    """
    if class_names is None and dataset_name is not None:
        raise ValueError(f"dataset_name={dataset_name!r} needs class_names (without them the tree is PASCAL VOC)")
    if class_names is not None:
        class_names = tuple(class_names)
        if not 1 <= len(class_names) <= 255:
            raise ValueError(f"class_names must name 1..255 classes (255 is the ignore label), got "
                             f"{len(class_names)}")
    root = resolve_root(voc_root)
    masks = resolve_mask_dir(voc_root, root, mask_dir)
    images_dir = os.path.join(root, "JPEGImages")
    available = {name[:-4] for name in os.listdir(images_dir) if name.endswith(".jpg")}
    num_classes = PASCAL_VOC_SEG.num_classes if class_names is None else len(class_names)
    plan = {}
    for split in splits:
        ids = read_split(DATASET, split)
        list_name = split if split.endswith(".txt") else os.path.join(SPLITS_DIR, DATASET, f"{split}.txt")
        checks.check_split_ids(ids, available, list_name, images_dir)
        hint = ("; SegmentationClass holds masks for train/val only: train_aug and its subsets need "
                "SegmentationClassAug (--mask_dir)") if (class_names is None and os.path.basename(
                    masks.rstrip("/")) == "SegmentationClass") else ""
        checks.check_files_exist([os.path.join(masks, f"{i}.png") for i in ids], "mask", list_name, hint)
        plan[checks.split_name(split)] = ids

    max_side = 0

    def records(ids):
        nonlocal max_side
        for image_id in ids:
            record = checks.labeled_record(image_id, os.path.join(images_dir, f"{image_id}.jpg"),
                                           os.path.join(masks, f"{image_id}.png"), num_classes)
            max_side = max(max_side, record.height, record.width)
            yield record

    with StagedBuild(output_dir) as stage:  # all splits or none replace an earlier build
        written = {name: write_split(records(ids), stage.path, name, checks.shard_count(num_shards, len(ids)),
                                     total=len(ids))
                   for name, ids in plan.items()}
        if class_names is not None:
            crop = eval_crop_for(max_side)
            write_dataset_info(DatasetInfo(dataset_name or DEFAULT_OTHER_NAME, class_names, (crop, crop),
                                           split_sizes={name: len(ids) for name, ids in plan.items()}), stage.path)
    return stage.final(written)


FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("voc_root", None, "VOCdevkit/VOC2012 (holding JPEGImages/ and the mask folder).")
    flags.DEFINE_string("output_dir", None, "Where the records go.")
    flags.DEFINE_list("splits", list(DEFAULT_SPLITS), "Shipped split list names or paths to .txt lists.")
    flags.DEFINE_string("mask_dir", "SegmentationClassAug", "SegmentationClassAug (ids) or SegmentationClass "
                                                             "(palette PNGs); relative to --voc_root or absolute.")
    flags.DEFINE_integer("num_shards", 4, "Shards per split.")
    flags.DEFINE_list("class_names", None, "Another dataset in VOC's layout: its class names, background first "
                                           "(ids checked against them; dataset_info.json written). Default: VOC's 21.")
    flags.DEFINE_string("dataset_name", None, f"Name in dataset_info.json (needs --class_names; default "
                                              f"{DEFAULT_OTHER_NAME}).")
    flags.mark_flags_as_required(["voc_root", "output_dir"])


def main(argv):
    del argv
    written = build_voc(FLAGS.voc_root, FLAGS.output_dir, FLAGS.splits, mask_dir=FLAGS.mask_dir,
                        num_shards=FLAGS.num_shards, class_names=FLAGS.class_names, dataset_name=FLAGS.dataset_name)
    print_written(written, FLAGS.output_dir)


if __name__ == "__main__":
    define_flags()
    app_runner.run(main)
