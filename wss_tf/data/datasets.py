"""What a dataset is: class count, class names, ignore label, eval crop. Built-in for VOC and COCO; a
`dataset_info.json` written by the builders beside the records describes any other (folder, generated)."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

from wss_tf.data.records import IGNORE_LABEL

INFO_FILE = "dataset_info.json"

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
# COCO 2017 thing categories in the order of their ids (1..90 with gaps), which become classes 1..80.
COCO_CLASSES = ("background", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
                "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
                "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie",
                "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
                "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon",
                "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
                "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
                "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
                "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    class_names: tuple[str, ...]  # index = class id; 0 is background
    eval_crop: tuple[int, int] = (513, 513)
    ignore_label: int = IGNORE_LABEL
    split_sizes: dict = dataclasses.field(default_factory=dict)  # informational: images per split

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> str:
        return json.dumps({**dataclasses.asdict(self), "num_classes": self.num_classes}, indent=2)


PASCAL_VOC_SEG = DatasetInfo(
    "pascal_voc_seg", VOC_CLASSES, (513, 513),
    split_sizes={"train": 1464, "train_aug": 10582, "trainval": 2913, "val": 1449, "2_clean": 732, "4_clean": 366,
                 "8_clean": 183, "16_clean_3": 92, "16_clean_14": 92, "16_clean_20": 92})
COCO = DatasetInfo(
    "coco", COCO_CLASSES, (641, 641),
    split_sizes={"train": 118287, "val": 5000, "32_all": 3697, "64_all": 1849, "128_all": 925, "256_all": 463,
                 "512_all": 232})
BUILT_IN = {d.name: d for d in (PASCAL_VOC_SEG, COCO)}


def write_dataset_info(info: DatasetInfo, dataset_dir: str) -> str:
    os.makedirs(dataset_dir, exist_ok=True)
    path = os.path.join(dataset_dir, INFO_FILE)
    with open(path, "w") as f:
        f.write(info.to_json() + "\n")
    return path


def load_dataset_info(name: str, dataset_dir: Optional[str] = None) -> DatasetInfo:
    """The description in `dataset_dir/dataset_info.json` if there is one, else the built-in one for `name`."""
    path = os.path.join(dataset_dir, INFO_FILE) if dataset_dir else None
    if path and os.path.exists(path):
        with open(path) as f:
            raw = json.load(f)
        info = DatasetInfo(raw["name"], tuple(raw["class_names"]), tuple(raw["eval_crop"]), raw["ignore_label"],
                           raw.get("split_sizes", {}))
        if name and name != info.name:  # a name that is not the records' would be written into config.json
            raise ValueError(f"--dataset={name} but {path} describes dataset {info.name!r}: pass "
                             f"--dataset={info.name}")
        return info
    if name in BUILT_IN:
        return BUILT_IN[name]
    where = f"{dataset_dir!r}" + ("" if not dataset_dir or os.path.isdir(dataset_dir) else ", which does not exist")
    raise ValueError(f"unknown dataset {name!r}: not one of {sorted(BUILT_IN)} and no {INFO_FILE} in "
                     f"{where} (the folder and generated-data builders write one)")
