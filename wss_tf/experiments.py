"""The paper experiments as data: one file per table cell in configs/paper/ (training settings, eval settings, the
table row and column it reproduces), and the published numbers beside them (configs/paper/published.json)."""
from __future__ import annotations

import dataclasses
import json
import os

from wss_tf.config import SUP_DEFAULTS, TrainConfig

PAPER_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "paper")
PUBLISHED_FILE = os.path.join(PAPER_DIR, "published.json")


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    table: str  # dataset: pascal_voc_seg or coco
    row: str  # method, as in published.json
    column: str  # the labeled split
    train: TrainConfig  # dataset_dir and train_logdir are filled in by the caller
    eval_split: str = "val"
    eval_crop_size: tuple[int, int] = (513, 513)
    eval_batch_size: int = 1


def experiment_names() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(PAPER_DIR) if f.endswith(".json") and f != "published.json")


def load_experiment(name_or_path: str) -> Experiment:
    """An experiment by name (configs/paper/<name>.json) or by path. Supervised experiments start from
    train_sup.py's defaults, PseudoSeg ones from train_wss.py's; the file's settings override them."""
    path = name_or_path if name_or_path.endswith(".json") else os.path.join(PAPER_DIR, f"{name_or_path}.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no experiment {name_or_path!r}; known: {', '.join(experiment_names())}")
    with open(path) as f:
        raw = json.load(f)
    train = raw["train"]
    defaults = SUP_DEFAULTS if train.get("mode") == "sup" else {}
    try:
        config = TrainConfig.from_dict({**defaults, **train})
    except (TypeError, ValueError) as e:
        raise ValueError(f"experiment {path}: {e}") from None
    evaluation = raw.get("eval", {})
    return Experiment(
        name=os.path.basename(path)[:-5], description=raw["description"], table=raw["table"], row=raw["row"],
        column=raw["column"], train=config, eval_split=evaluation.get("eval_split", "val"),
        eval_crop_size=tuple(evaluation.get("eval_crop_size", (513, 513))),
        eval_batch_size=evaluation.get("eval_batch_size", 1))


def published() -> dict:
    """{dataset: {"columns": {split: label}, "rows": {method: {split: mIoU}}}}."""
    with open(PUBLISHED_FILE) as f:
        numbers = json.load(f)
    return {k: v for k, v in numbers.items() if not k.startswith("_")}
