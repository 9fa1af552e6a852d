r"""Builds COCO 2017 semantic-segmentation records (DeepLab format) from instance annotations.

  <coco_root>/train2017/*.jpg, <coco_root>/val2017/*.jpg
  <coco_root>/annotations/instances_train2017.json, instances_val2017.json

Split ids look like "train2017/000000177254" (wss_tf/data/splits/coco: 32_all ... 512_all, val; or a path to a
.txt list); the special split "train" is every image of instances_train2017.json. The record's filename is the
id. JPEG bytes are copied as they are.

Semantic masks (81 classes for COCO 2017): the category ids, sorted ascending, become classes 1..N (COCO's 80
ids 1..90 with gaps -> 1..80); 0 is background (no instance, including images without annotations).
Overlaps: annotations are painted in the JSON order, so a later instance overwrites an earlier one where they
overlap; pixels of any crowd annotation (iscrowd=1) are then set to 255 (ignore), so crowd wins over every
instance regardless of order.

  python -m wss_tf.data.build_coco --coco_root=coco --output_dir=records/coco --splits=512_all,val
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from absl import flags

from wss_tf import app_runner
from wss_tf.data import checks
from wss_tf.data.build_folder import eval_crop_for
from wss_tf.data.datasets import COCO, DatasetInfo, write_dataset_info
from wss_tf.data.records import IGNORE_LABEL, StagedBuild, print_written, write_split
from wss_tf.data.splits import SPLITS_DIR, read_split

DATASET = "coco"
DEFAULT_SPLITS = ("512_all", "val")


class _Subsets:
    """Lazily loaded instances_<subset>.json files, with one category mapping shared by all."""

    def __init__(self, coco_root: str):
        self.coco_root = coco_root
        self.loaded = {}
        self.category_ids = None  # sorted

    def annotation_file(self, subset: str) -> str:
        return os.path.join(self.coco_root, "annotations", f"instances_{subset}.json")

    def get(self, subset: str, list_name: str):
        """(COCO api, {file stem: image id}) of `subset`."""
        if subset not in self.loaded:
            path = self.annotation_file(subset)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"annotation file {path} not found (needed by split list {list_name})")
            from pycocotools.coco import COCO as CocoApi  # noqa: N811
            try:
                api = CocoApi(path)
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"annotation file {path} is not a COCO instances file: {e}") from e
            category_ids = sorted(api.cats)
            if self.category_ids is None:
                self.category_ids = category_ids
                self.category_names = [api.cats[i]["name"] for i in category_ids]
            elif category_ids != self.category_ids:
                raise ValueError(f"{path} has other categories than the annotation files loaded before")
            stems = {os.path.splitext(img["file_name"])[0]: img_id for img_id, img in api.imgs.items()}
            self.loaded[subset] = (api, stems)
        return self.loaded[subset]

    @property
    def class_of(self) -> dict[int, int]:
        return {cat: i + 1 for i, cat in enumerate(self.category_ids)}


def render_mask(api, img_id: int, class_of: dict[int, int], annotation_file: str) -> np.ndarray:
    """uint8 [H, W] class ids of one image: later instances overwrite earlier ones, crowd pixels become 255."""
    img = api.imgs[img_id]
    mask = np.zeros((img["height"], img["width"]), np.uint8)
    crowd = np.zeros(mask.shape, bool)
    for ann in api.imgToAnns.get(img_id, []):
        if ann["category_id"] not in class_of:
            raise ValueError(f"{annotation_file}: annotation {ann.get('id')} of image {img['file_name']} has "
                             f"category_id {ann['category_id']}, which is not among the categories")
        pixels = api.annToMask(ann).astype(bool)
        if ann.get("iscrowd", 0):
            crowd |= pixels
        else:
            mask[pixels] = class_of[ann["category_id"]]
    mask[crowd] = IGNORE_LABEL
    return mask


def build_coco(coco_root: str, output_dir: str, splits: Sequence[str] = DEFAULT_SPLITS, *,
               num_shards: int = 4) -> dict[str, list[str]]:
    """Writes `{split}-NNNNN-of-NNNNN.tfrecord` for each split into `output_dir`; returns split -> shard paths.

    A dataset_info.json is written only when the annotation categories differ from COCO 2017's 80 (a
    COCO-format dataset of your own); real COCO uses the built-in description.
    """
    subsets = _Subsets(coco_root)
    plan = {}
    for split in splits:
        if split == "train":
            list_name = "train (every image of instances_train2017.json)"
            api, stems = subsets.get("train2017", list_name)
            ids = [f"train2017/{stem}" for stem, _ in sorted(stems.items(), key=lambda item: item[1])]
        else:
            ids = read_split(DATASET, split)
            list_name = split if split.endswith(".txt") else os.path.join(SPLITS_DIR, DATASET, f"{split}.txt")
        entries = []
        by_subset = {}
        for image_id in ids:
            subset, _, stem = image_id.partition("/")
            by_subset.setdefault(subset, []).append(image_id)
        for subset, subset_ids in by_subset.items():
            if not subset_ids[0].count("/"):
                raise ValueError(f"split list {list_name}: ids must look like train2017/000000177254, got "
                                 f"{subset_ids[0]!r}")
            api, stems = subsets.get(subset, list_name)
            checks.check_split_ids(subset_ids, {f"{subset}/{stem}" for stem in stems}, list_name,
                                   subsets.annotation_file(subset))
        for image_id in ids:
            subset, _, stem = image_id.partition("/")
            api, stems = subsets.get(subset, list_name)
            img = api.imgs[stems[stem]]
            entries.append((image_id, subset, img["id"], os.path.join(coco_root, subset, img["file_name"])))
        checks.check_files_exist([e[3] for e in entries], "image", list_name)
        plan[checks.split_name(split)] = entries
    if subsets.category_ids is None:
        return {}
    num_classes = len(subsets.category_ids) + 1
    if num_classes > IGNORE_LABEL:
        raise ValueError(f"{len(subsets.category_ids)} categories do not fit in 8-bit masks beside 255 = ignore")
    class_of = subsets.class_of
    max_side = [0]

    def records(entries):
        for image_id, subset, img_id, image_path in entries:
            api, _ = subsets.loaded[subset]
            ann_file = subsets.annotation_file(subset)
            mask = render_mask(api, img_id, class_of, ann_file)
            record = checks.labeled_record(image_id, image_path, mask, num_classes,
                                           mask_source=f"rendered from {ann_file} (image id {img_id})")
            max_side[0] = max(max_side[0], record.height, record.width)
            yield record

    with StagedBuild(output_dir) as stage:  # all splits or none replace an earlier build
        written = {name: write_split(records(entries), stage.path, name,
                                     checks.shard_count(num_shards, len(entries)), total=len(entries))
                   for name, entries in plan.items()}
        if tuple(subsets.category_names) != COCO.class_names[1:]:
            crop = max(COCO.eval_crop[0], eval_crop_for(max_side[0]))
            write_dataset_info(DatasetInfo(DATASET, ("background", *subsets.category_names), (crop, crop),
                                           split_sizes={name: len(e) for name, e in plan.items()}), stage.path)
    return stage.final(written)


FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("coco_root", None, "Folder with train2017/, val2017/ and annotations/.")
    flags.DEFINE_string("output_dir", None, "Where the records go.")
    flags.DEFINE_list("splits", list(DEFAULT_SPLITS), "Shipped split list names (32_all..512_all, val), "
                                                      "'train' (all of train2017) or paths to .txt lists.")
    flags.DEFINE_integer("num_shards", 4, "Shards per split.")
    flags.mark_flags_as_required(["coco_root", "output_dir"])


def main(argv):
    del argv
    written = build_coco(FLAGS.coco_root, FLAGS.output_dir, FLAGS.splits, num_shards=FLAGS.num_shards)
    print_written(written, FLAGS.output_dir)


if __name__ == "__main__":
    define_flags()
    app_runner.run(main)
