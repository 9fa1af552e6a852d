"""What the generated datasets (synthetic_shapes, synthetic_objects) share: the description `generate` returns,
argument checks, the nested labeled subsets, image ids and the manifest that lets a second call reuse the data."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Optional, Sequence

import numpy as np

MANIFEST_FILE = "synthetic_manifest.json"
RAW_DIR = "raw"
# Seed streams of one generation: image i of a split is drawn from np.random.default_rng([seed, stream, i]).
SPLIT_STREAM = {"train": 1, "val": 2, "subsets": 3}


@dataclasses.dataclass(frozen=True)
class GeneratedDataset:
    output_dir: str  # records and dataset_info.json; raw files under output_dir/raw
    class_names: tuple[str, ...]
    split_sizes: dict  # split name -> number of images
    records: dict  # split name -> tfrecord shard paths
    eval_crop: tuple[int, int]
    train_pixel_fractions: dict  # class name -> fraction of the training pool's pixels
    reused: bool = False  # True when an existing complete dataset with the same parameters was kept
    dataset_name: str = "synthetic_shapes"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def split_names(self) -> tuple[str, ...]:
        return tuple(self.split_sizes)

    @property
    def raw_dir(self) -> str:
        return os.path.join(self.output_dir, RAW_DIR)


def checked_arguments(num_train: int, num_val: int, labeled_sizes: Sequence[int],
                      image_size_range: Sequence[int]) -> tuple[tuple[int, ...], int, int]:
    """(sorted distinct labeled sizes, low side, high side), or a ValueError naming the bad argument."""
    labeled_sizes = tuple(sorted({int(s) for s in labeled_sizes}))
    lo, hi = (int(v) for v in image_size_range)
    if not 16 <= lo <= hi:
        raise ValueError(f"image_size_range must be (low, high) with 16 <= low <= high, got {image_size_range}")
    if num_train < 1 or num_val < 1:
        raise ValueError(f"need at least one train and one val image, got num_train={num_train}, num_val={num_val}")
    if labeled_sizes and (labeled_sizes[0] < 1 or labeled_sizes[-1] > num_train):
        raise ValueError(f"labeled_sizes {labeled_sizes} must lie in 1..num_train={num_train}")
    return labeled_sizes, lo, hi


def image_id(split: str, index: int) -> str:
    return f"{split}_{index:05d}"


def choose_subsets(rng: np.random.Generator, classes_per_image: list[set], sizes: Sequence[int]) -> dict:
    """Nested random subsets of the pool (by index), each holding every foreground class: the first `size` images of
    a random order that puts all classes among the first min(sizes)."""
    everything = set().union(*classes_per_image) if classes_per_image else set()
    smallest = min(sizes)
    for _attempt in range(10000):
        order = rng.permutation(len(classes_per_image))
        if set().union(*(classes_per_image[i] for i in order[:smallest])) >= everything:
            return {size: sorted(int(i) for i in order[:size]) for size in sizes}
    raise RuntimeError(f"no random subset of {smallest} training images holds every class; use larger subsets")


def parameters(generator_version: int, dataset_name: str, class_names, seed, num_train, num_val, labeled_sizes,
               image_size_range, num_shards) -> dict:
    """What identifies a generation: a manifest with other parameters is not reused."""
    return {"generator_version": generator_version, "dataset_name": dataset_name, "class_names": list(class_names),
            "seed": int(seed), "num_train": int(num_train), "num_val": int(num_val),
            "labeled_sizes": [int(s) for s in labeled_sizes],
            "image_size_range": [int(v) for v in image_size_range], "num_shards": int(num_shards)}


def read_manifest(output_dir: str, parameters: dict, manifest_file: str = MANIFEST_FILE) -> Optional[dict]:
    """The manifest in output_dir if it was written for `parameters`, else None."""
    try:
        with open(os.path.join(output_dir, manifest_file)) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("parameters") == parameters else None


def from_manifest(output_dir: str, manifest: dict, class_names, dataset_name: str,
                  reused: bool) -> Optional[GeneratedDataset]:
    """The dataset a manifest describes, or None when one of its files is missing."""
    records = {split: [os.path.join(output_dir, p) for p in paths] for split, paths in manifest["records"].items()}
    needed = [p for paths in records.values() for p in paths] + [os.path.join(output_dir, "dataset_info.json")]
    if not all(os.path.exists(p) for p in needed):
        return None
    return GeneratedDataset(output_dir, tuple(class_names), dict(manifest["split_sizes"]), records,
                            tuple(manifest["eval_crop"]), dict(manifest["train_pixel_fractions"]), reused=reused,
                            dataset_name=dataset_name)


def write_manifest(output_dir: str, manifest: dict, manifest_file: str = MANIFEST_FILE) -> None:
    """Written last, atomically: its presence says the generation is complete."""
    tmp = os.path.join(output_dir, manifest_file + ".incomplete")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(tmp, os.path.join(output_dir, manifest_file))


def _ours(name: str, manifest_file: str) -> bool:
    """Whether a file name in output_dir is one `generate` writes."""
    if name in (RAW_DIR, manifest_file, manifest_file + ".incomplete", "dataset_info.json"):
        return True
    prefix = name.split("-")[0]
    return name.endswith((".tfrecord", ".tfrecord.incomplete")) and (
        prefix in ("train", "val") or prefix.startswith("labeled_"))


def clear_previous(output_dir: str, dataset_name: str, manifest_file: str, raw_folders: Sequence[str]) -> None:
    """Removes what an earlier (other or interrupted) generation left: manifest first, the raw folders, record
    shards. Refuses a directory holding anything else, so a mistyped --output_dir never deletes another dataset."""
    if not os.path.isdir(output_dir):
        return
    names = os.listdir(output_dir)
    foreign = sorted(n for n in names if not _ours(n, manifest_file))
    raw = os.path.join(output_dir, RAW_DIR)
    if not foreign and os.path.isdir(raw):
        foreign = [os.path.join(RAW_DIR, n) for n in sorted(os.listdir(raw)) if n not in raw_folders]
    info = os.path.join(output_dir, "dataset_info.json")
    if not foreign and os.path.exists(info):
        with open(info) as f:
            if json.load(f).get("name") != dataset_name:
                foreign = ["dataset_info.json (of another dataset)"]
    if foreign:
        raise FileExistsError(f"{output_dir} holds files that are not a {dataset_name} dataset "
                              f"({', '.join(foreign[:5])}); give an empty or new --output_dir")
    if manifest_file in names:
        os.remove(os.path.join(output_dir, manifest_file))
    for folder in raw_folders:
        shutil.rmtree(os.path.join(raw, folder), ignore_errors=True)
    for name in names:
        if name.endswith((".tfrecord", ".tfrecord.incomplete")):
            os.remove(os.path.join(output_dir, name))


def define_generation_flags(num_train: int, num_val: int, labeled_sizes, image_size_range) -> None:
    """The command-line flags of a generator's main, with that generator's defaults."""
    from absl import flags

    flags.DEFINE_string("output_dir", None, "Where to write the dataset (raw/ files, records, dataset_info.json).")
    flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives identical files.")
    flags.DEFINE_integer("num_train", num_train, "Images in the training pool (split `train`).")
    flags.DEFINE_integer("num_val", num_val, "Images in split `val`.")
    flags.DEFINE_list("labeled_sizes", [str(s) for s in labeled_sizes],
                      "Sizes of the labeled subsets of train, written as splits labeled_<n>.")
    flags.DEFINE_list("image_size_range", [str(s) for s in image_size_range],
                      "low,high: each image side is drawn uniformly from this range.")
    flags.DEFINE_integer("num_shards", 2, "Record shards per split (fewer for tiny splits).")
    flags.DEFINE_bool("force", False, "Regenerate even when a complete dataset with the same parameters exists.")
    flags.mark_flag_as_required("output_dir")
